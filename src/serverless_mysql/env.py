"""Configuration of ``@with_mysql`` from environment variables ``SERVERLESS_MYSQL_<OPTION>``.

Every scalar option (of :class:`~serverless_mysql.ServerlessMySQL` and of the decorator) has a variable named
``SERVERLESS_MYSQL_`` + the option name in upper case, e.g. ``SERVERLESS_MYSQL_HOST``,
``SERVERLESS_MYSQL_CONN_UTILIZATION``, ``SERVERLESS_MYSQL_SECRET_ID``. Values are converted to the option's type;
a bad value raises :class:`~serverless_mysql.ConfigError` naming the variable. An empty variable counts as unset.
An option given explicitly to the decorator always beats its variable. The README's table is generated from
:func:`env_vars` (``python -m serverless_mysql.env``), and a test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
import warnings
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from .config import Config
from .errors import ConfigError

__all__ = [
    "DECORATOR_DEFAULTS",
    "PREFIX",
    "EnvVar",
    "EnvVarWarning",
    "env_name",
    "env_vars",
    "markdown_table",
    "read_env",
]

PREFIX = "SERVERLESS_MYSQL_"

DECORATOR_DEFAULTS: Mapping[str, Any] = {
    "secret_id": None,
    "secret_max_age": 300.0,
    "iam_auth": False,
    "region": None,
    "after": "end",
    "deadline_margin": 0.5,
    "sigterm": True,
    "connect_on_init": False,
}
"""The decorator's own scalar options and their defaults (``metrics`` and ``db`` are objects: no variable)."""

_DECORATOR_KINDS: Mapping[str, str] = {
    "secret_id": "str",
    "secret_max_age": "float",
    "iam_auth": "bool",
    "region": "str",
    "after": "choice:end,quit",
    "deadline_margin": "float",
    "sigterm": "bool",
    "connect_on_init": "bool",
}

_DESCRIPTIONS: Mapping[str, str] = {
    # decorator
    "secret_id": "Secrets Manager secret (name or ARN) in RDS JSON format; fetched with Powertools, cached",
    "secret_max_age": "Seconds a fetched secret is cached; on access denied (1045) it is re-fetched once",
    "iam_auth": "Connect with an RDS IAM auth token over verified TLS (`ssl_ca` in the URL or `CONNECT_ARGS`)",
    "region": "AWS Region of the secret / database for IAM tokens (default: boto3's, `AWS_REGION`)",
    "after": "After each invocation: `end` (housekeeping, keep the connection) or `quit` (close it)",
    "deadline_margin": "Seconds kept free before Lambda's timeout; every wait ends by then with DeadlineExceededError",
    "sigterm": "Close the connection (COM_QUIT) on SIGTERM when the environment shuts down",
    "connect_on_init": "Connect during the init phase (not with SnapStart); failures are logged and retried lazily",
    # client
    "host": "Server host name or address",
    "port": "Server port",
    "user": "Database user",
    "password": "Database password (prefer `SECRET_ID` or `IAM_AUTH`)",
    "database": "Default database",
    "url": "`mysql://user:pass@host:port/db?option=value`; other variables beat its parts",
    "connect_args": 'JSON object of extra `pymysql.connect` arguments, e.g. `{"ssl_ca": "/opt/ca.pem"}`',
    "connect_timeout": "Seconds per connect attempt (also bounded by the deadline)",
    "read_timeout": "Seconds a statement may wait for the server (`none` = no limit but the deadline)",
    "write_timeout": "Seconds a write to the server may block (`none` = no limit but the deadline)",
    "ping_after_idle": "Ping a reused connection idle at least this many seconds (`none` = never)",
    "manage_conns": "Run housekeeping (utilization, zombie kills) in `end()`",
    "conn_utilization": "Utilization (0-1] above which `end()` frees connections",
    "max_conns_freq": "Seconds the server's connection limit is cached",
    "used_conns_freq": "Seconds between utilization measurements (`none` = adaptive)",
    "zombie_min_timeout": "Under pressure, idle seconds before a sleeping connection of the user may be killed",
    "zombie_max_timeout": "Idle seconds after which the user's sleeping connections are killed anyway",
    "max_kills": "Most zombie connections killed per `end()`",
    "rds_proxy": "RDS Proxy mode, no processlist/KILL (`auto` = detect from the host name)",
    "backoff": "Waits between connect attempts: `paced` (server-aware), or `full` / `decorrelated` jitter",
    "base": "Shortest wait between connect attempts, in seconds",
    "cap": "Longest wait between connect attempts (`paced`: full server waits average `cap`/2 to `cap`/4)",
    "max_retries": "Safety bound on connect retries; with `paced`, time (deadline, `MAX_CONNECT_WAIT`) ends waits",
    "max_connect_wait": "Seconds one connect may wait for a slot (`none` = until the deadline, or 30 s without one)",
    "pressure_idle_timeout": "Session `wait_timeout` while the server is at `CONN_UTILIZATION` (`none` = never set)",
    "max_query_retries": "Retries of transient query errors (deadlock, lock wait timeout, ...)",
    "query_retry_backoff": "Query retry backoff: `full` or `decorrelated`",
}

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_NONE = frozenset({"none", "null", "auto"})


class EnvVarWarning(UserWarning):
    """A ``SERVERLESS_MYSQL_*`` variable that no option reads (probably a typo)."""


class EnvVar(NamedTuple):
    """One environment variable: its name, the option it sets, how its text is converted, and its default."""

    name: str
    option: str
    kind: str
    """``str``, ``int``, ``float``, ``bool``, ``float?``/``bool?`` (may be ``none``), ``json`` or ``choice:a,b``."""
    default: Any
    description: str
    client: bool
    """True for :class:`ServerlessMySQL` options, False for the decorator's own."""

    @property
    def secret(self) -> bool:
        """Whether the value must never be echoed (password, URL with credentials, connect args)."""
        return self.option in ("password", "url", "connect_args")


def env_name(option: str) -> str:
    """``SERVERLESS_MYSQL_`` + the option name in upper case."""
    return PREFIX + option.upper()


def _client_kind(hint: Any) -> str | None:
    """The conversion for a :class:`Config` field's type, or ``None`` when it cannot come from text."""
    args = set(typing.get_args(hint))
    optional = type(None) in args
    plain = {a for a in args if a is not type(None)} if args else {hint}
    if plain == {str}:
        return "str"
    if plain == {int}:
        return "int?" if optional else "int"
    if plain == {float}:
        return "float?" if optional else "float"
    if plain == {bool}:
        return "bool?" if optional else "bool"
    if str in plain and all(a is str or typing.get_origin(a) is not None for a in plain):
        return "str"  # e.g. backoff: 'full' | 'decorrelated' | a callable (only the names come from text)
    if typing.get_origin(hint) is Mapping or hint is Mapping:
        return "json"
    return None


@lru_cache(maxsize=1)
def env_vars() -> tuple[EnvVar, ...]:
    """Every variable the decorator reads, in documentation order (client options, then the decorator's)."""
    hints = typing.get_type_hints(Config)
    out: list[EnvVar] = []
    for f in dataclasses.fields(Config):
        if f.name in ("explicit", "credentials"):
            continue
        kind = _client_kind(hints[f.name])
        if kind is None:
            continue
        default: Any = f.default if f.default is not dataclasses.MISSING else None
        description = _DESCRIPTIONS.get(f.name, "See the options table")
        out.append(EnvVar(env_name(f.name), f.name, kind, default, description, client=True))
    for name, default in DECORATOR_DEFAULTS.items():
        out.append(EnvVar(env_name(name), name, _DECORATOR_KINDS[name], default, _DESCRIPTIONS[name], client=False))
    return tuple(out)


def _convert(var: EnvVar, raw: str) -> Any:
    text = raw.strip()
    shown = "" if var.secret else f", not {raw!r}"
    kind = var.kind
    if kind.endswith("?"):
        if text.lower() in _NONE:
            return None
        kind = kind[:-1]
    if kind == "str":
        return raw
    if kind == "bool":
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        extra = ", or none/auto" if var.kind.endswith("?") else ""
        raise ConfigError(f"environment variable {var.name} must be true/false, 1/0, yes/no or on/off{extra}{shown}")
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"environment variable {var.name} must be an integer{shown}") from None
    if kind == "float":
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"environment variable {var.name} must be a number (seconds or ratio){shown}") from None
        if not math.isfinite(value):
            raise ConfigError(f"environment variable {var.name} must be a finite number{shown}")
        return value
    if kind == "json":
        import json  # noqa: PLC0415 - only when the variable is set

        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"environment variable {var.name} must be a JSON object (error at line {exc.lineno} column {exc.colno})"
            ) from None
        if not isinstance(value, dict):
            raise ConfigError(
                f"environment variable {var.name} must be a JSON object, not a JSON {type(value).__name__}"
            )
        return value
    if kind.startswith("choice:"):
        choices = kind.split(":", 1)[1].split(",")
        if text.lower() not in choices:
            raise ConfigError(f"environment variable {var.name} must be one of {', '.join(choices)}{shown}")
        return text.lower()
    raise AssertionError(f"unknown kind {kind!r}")  # pragma: no cover


def read_env(environ: Mapping[str, str] | None = None) -> dict[str, tuple[str, Any]]:
    """Read every ``SERVERLESS_MYSQL_*`` variable that is set and not empty.

    Parameters
    ----------
    environ : Mapping[str, str], optional
        The environment (default ``os.environ``).

    Returns
    -------
    dict[str, tuple[str, Any]]
        Option name -> (variable name, converted value).

    Raises
    ------
    ConfigError
        A value cannot be converted; the message names the variable (and never echoes a password or URL).

    Warns
    -----
    EnvVarWarning
        For a ``SERVERLESS_MYSQL_*`` variable no option reads, with the closest known name.
    """
    env = os.environ if environ is None else environ
    by_name = {var.name: var for var in env_vars()}
    out: dict[str, tuple[str, Any]] = {}
    for name, raw in env.items():
        if not name.startswith(PREFIX):
            continue
        var = by_name.get(name)
        if var is None:
            import difflib  # noqa: PLC0415 - only for the warning

            close = difflib.get_close_matches(name, by_name, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            warnings.warn(f"environment variable {name} is not read by serverless_mysql{hint}", EnvVarWarning, 2)
            continue
        if raw.strip() == "":
            continue
        out[var.option] = (name, _convert(var, raw))
    return out


def markdown_table() -> str:
    """The README table of variables (``python -m serverless_mysql.env`` prints it)."""
    lines = ["| Variable | Option | Type | Default | Meaning |", "|---|---|---|---|---|"]
    lines += [
        f"| `{var.name}` | `{var.option}` | {_kind_doc(var.kind)} | {_default_doc(var)} | {var.description} |"
        for var in env_vars()
    ]
    return "\n".join(lines)


def _kind_doc(kind: str) -> str:
    if kind.startswith("choice:"):
        return " \\| ".join(f"`{c}`" for c in kind.split(":", 1)[1].split(","))
    return {"str": "text", "json": "JSON object", "float?": "float or `none`", "bool?": "bool or `auto`"}.get(
        kind, kind
    )


def _default_doc(var: EnvVar) -> str:
    if var.default is None:
        return "`auto`" if var.kind == "bool?" else "—"
    if isinstance(var.default, bool):
        return f"`{str(var.default).lower()}`"
    if isinstance(var.default, float) and var.default.is_integer():
        return f"`{var.default:g}`"
    return f"`{var.default}`"


if __name__ == "__main__":  # pragma: no cover
    print(markdown_table())
