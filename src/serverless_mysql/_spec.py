"""The description of every option, written once: what it means, how it is checked, how it reads from text.

:class:`~serverless_mysql.config.Config` carries an :class:`OptionSpec` in each field's metadata; the decorator's
own options are :data:`DECORATOR_OPTIONS`. From them come the validation of ``ServerlessMySQL(**options)`` and of
``@with_mysql(**options)``, the types of ``mysql://`` URL parameters and ``SERVERLESS_MYSQL_*`` variables, and the
tables of ``docs/options.md`` (``python -m serverless_mysql.options``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any, TypeVar

from ._checks import Check, Choice, Duck, Flag, Number, Text
from .errors import ConfigTypeError

__all__ = ["DECORATOR_OPTIONS", "INIT_CONNECT_BUDGET", "OptionSpec", "option", "spec"]

T = TypeVar("T")


class OptionSpec:
    """One option: its doc text, its check, and (for a ``SERVERLESS_MYSQL_*`` variable) a one-line summary.

    ``name`` and ``default`` are filled from the dataclass field for :class:`~serverless_mysql.config.Config`.
    """

    __slots__ = ("check", "default", "default_from", "doc", "env_doc", "name", "secret", "type")

    def __init__(
        self,
        doc: str,
        check: Check | None,
        *,
        env_doc: str = "",
        secret: bool = False,
        name: str = "",
        default: Any = None,
        type: str = "",  # the annotation, as written in WithMySQLOptions
        default_from: str = "",
    ) -> None:
        self.doc, self.check, self.env_doc, self.secret = doc, check, env_doc, secret
        self.name, self.default, self.type = name, default, type
        self.default_from = default_from
        """``module:NAME`` of the constant that is the default, when the default is another module's (docs only)."""

    @property
    def kind(self) -> str | None:
        """How the option reads from text (``None``: never; no variable, no URL parameter)."""
        return None if self.check is None or not self.env_doc else self.check.kind

    def resolved_default(self) -> Any:
        """The default, looking up :attr:`default_from` (an import: for the docs, not at decoration time)."""
        if not self.default_from:
            return self.default
        import importlib  # noqa: PLC0415 - docs only

        module, _, name = self.default_from.partition(":")
        return getattr(importlib.import_module(module), name)

    def __repr__(self) -> str:
        return f"OptionSpec({self.name!r})"


def spec(doc: str, check: Check, *, env: str = "", secret: bool = False) -> Mapping[str, Any]:
    """Field metadata of a :class:`~serverless_mysql.config.Config` option (``env``: its variable's summary)."""
    return {"option": OptionSpec(doc, check, env_doc=env, secret=secret)}


_SECONDS = Number(low=0, unit="s")

INIT_CONNECT_BUDGET = 5.0
"""Seconds ``connect_on_init`` may spend (Lambda's init phase has 10 s, and a failure only delays the connect)."""

DECORATOR_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "A `ServerlessMySQL` built elsewhere; then no client or credential option may be given, and their "
        "variables are ignored.",
        None,  # an isinstance check of the client class: done by the decorator, which imports it
        name="db",
        type="ServerlessMySQL",
    ),
    OptionSpec(
        "Secrets Manager secret (name or ARN) in RDS JSON format, fetched with Powertools and cached; excludes "
        "`credentials` and `iam_auth`.",
        Text(nonempty="a non-empty str (a secret name or ARN) or None", strip=True, blank_error=ConfigTypeError),
        env_doc="Secrets Manager secret (name or ARN) in RDS JSON format; fetched with Powertools, cached",
        name="secret_id",
        type="str | None",
    ),
    OptionSpec(
        "How long a fetched secret is cached (rounded up to whole seconds; `0` = fetch for every new connection); "
        "on access denied (1045) it is re-fetched once.",
        _SECONDS,
        env_doc="Seconds a fetched secret is cached; on access denied (1045) it is re-fetched once",
        name="secret_max_age",
        default=None,  # None: not passed on, so the provider's own default applies (written there only)
        default_from="serverless_mysql.secrets:DEFAULT_MAX_AGE",
        type="float",
    ),
    OptionSpec(
        "Connect with RDS IAM auth tokens. Needs `host` and `user`; the token goes only over verified TLS (`ssl_ca` "
        "in `connect_args` or the URL, else the system CA store); excludes `password`, `credentials`, `secret_id`.",
        Flag(),
        env_doc="Connect with an RDS IAM auth token over verified TLS (`ssl_ca` in the URL or `CONNECT_ARGS`)",
        name="iam_auth",
        default=False,
        type="bool",
    ),
    OptionSpec(
        "AWS Region of the secret or of the database for IAM tokens (default: boto3's, `AWS_REGION` on Lambda).",
        Text(
            nonempty="a non-empty str (an AWS Region, e.g. 'eu-west-1') or None",
            strip=True,
            blank_error=ConfigTypeError,
        ),
        env_doc="AWS Region of the secret / database for IAM tokens (default: boto3's, `AWS_REGION`)",
        name="region",
        type="str | None",
    ),
    OptionSpec(
        'After each invocation: `"end"` (housekeeping, keep the connection for the next one) or `"quit"` (close it).',
        Choice("end", "quit"),
        env_doc="After each invocation: `end` (housekeeping, keep the connection) or `quit` (close it)",
        name="after",
        default="end",
        type="str",
    ),
    OptionSpec(
        "Time kept free before Lambda's timeout: every wait of the client ends by then with `DeadlineExceededError`.",
        _SECONDS,
        env_doc="Seconds kept free before Lambda's timeout; every wait ends by then with DeadlineExceededError",
        name="deadline_margin",
        default=0.5,
        type="float",
    ),
    OptionSpec(
        "A Powertools `Metrics` object: each invocation adds `ConnectRetries`, `ZombiesKilled`, `HousekeepingTime` "
        "(ms), `ConnectionUtilization` (%, when measured) and `ConnectionReused` (0/1, when the database was used); "
        "flush them with `@metrics.log_metrics`.",
        Duck("add_metric", "a Powertools Metrics object (add_metric)"),
        name="metrics",
        type="MetricsSink | None",
    ),
    OptionSpec(
        "Install the SIGTERM handler that closes the connection (COM_QUIT) when the environment shuts down.",
        Flag(),
        env_doc="Close the connection (COM_QUIT) on SIGTERM when the environment shuts down",
        name="sigterm",
        default=True,
        type="bool",
    ),
    OptionSpec(
        'A reader endpoint (`host` or `host:port`, default port the writer\'s), or `"auto"`: the `.cluster-ro-` '
        "endpoint of a `.cluster-` writer host (option or secret). A handler with a `reader` parameter gets a "
        'second client there: same credentials and options, `server_role="reader"`, managed like `db` '
        "([docs/aurora.md](aurora.md)).",
        Text(nonempty="a non-empty host, host:port or 'auto'", strip=True),
        env_doc="Reader endpoint (`host[:port]`, or `auto`: the `.cluster-ro-` endpoint of a cluster host)",
        name="reader_host",
        type="str | None",
    ),
    OptionSpec(
        f"Connect during the init phase ({INIT_CONNECT_BUDGET:g} s budget; a failure is logged and the connect "
        "retried lazily). Not with SnapStart (the connection is closed before the snapshot: wasted).",
        Flag(),
        env_doc="Connect during the init phase (not with SnapStart); failures are logged and retried lazily",
        name="connect_on_init",
        default=False,
        type="bool",
    ),
)
"""The decorator's own options (``@with_mysql`` also takes every option of ``ServerlessMySQL``)."""


def option(default: T, doc: str, check: Check, *, env: str = "", secret: bool = False) -> T:
    """A :class:`~serverless_mysql.config.Config` field: its default and its spec (``env``: its variable's summary).

    A secret option is left out of the dataclass's ``repr``.
    """
    return field(default=default, repr=not secret, metadata=spec(doc, check, env=env, secret=secret))
