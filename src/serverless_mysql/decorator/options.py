"""The decorator's options: the types its API names, and their resolution at decoration time.

What each option means, its default and its check are in the option specs (``Config``'s field metadata and
:data:`serverless_mysql._spec.DECORATOR_OPTIONS`); ``docs/options.md`` shows them. :class:`WithMySQLOptions`
(in :mod:`._types`) restates the names and types for type checkers, and ``tests/unit/test_options.py`` keeps it in step.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .._record import lazy_attributes
from .._spec import DECORATOR_OPTIONS
from ..client import ServerlessMySQL
from ..config import OPTION_NAMES, Config, parse_url
from ..env import read_env
from ..errors import ConfigError, ConfigTypeError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

    from ..config import CredentialsSource
    from ._types import LambdaContextLike, MetricsSink, MySQLHandler, WithMySQLOptions
else:
    # NOTE: the API's types are made by typing (Protocols, a TypedDict): loaded on first access only.
    __getattr__ = lazy_attributes(
        __name__, **dict.fromkeys(("LambdaContextLike", "MetricsSink", "MySQLHandler", "WithMySQLOptions"), "_types")
    )


__all__ = ["LambdaContextLike", "MetricsSink", "MySQLHandler", "Setup", "WithMySQLOptions"]

logger = logging.getLogger(__name__)

OWN_OPTIONS = frozenset(o.name for o in DECORATOR_OPTIONS)
"""The decorator's own options (every other option is the client's)."""
_OWN_CHECKS = tuple((o.name, o.check) for o in DECORATOR_OPTIONS if o.check is not None)
_OWN_DEFAULTS = {o.name: o.default for o in DECORATOR_OPTIONS}
_CREDENTIAL_OPTIONS = frozenset({"secret_id", "secret_max_age", "iam_auth", "region"})
_CLIENT_SIDE = OPTION_NAMES | _CREDENTIAL_OPTIONS  # what a client given with db= already decided


class Setup:
    """Options resolved at decoration time; :meth:`create` makes the decoration's own client."""

    # NOTE: a plain class, not a dataclass: generating a dataclass costs ~1 ms of import time.
    __slots__ = (
        "after",
        "client_options",
        "connect_on_init",
        "db",
        "deadline_margin",
        "env_sources",
        "iam_auth",
        "metrics",
        "reader_host",
        "region",
        "secret_id",
        "secret_max_age",
        "sigterm",
    )

    def __init__(self, *, client_options: Mapping[str, Any], env_sources: Mapping[str, str], **own: Any) -> None:
        self.client_options = client_options
        self.env_sources = env_sources
        self.db: ServerlessMySQL | None = own["db"]
        self.after: str = own["after"]
        self.deadline_margin: float = own["deadline_margin"]
        self.metrics: MetricsSink | None = own["metrics"]
        self.sigterm: bool = own["sigterm"]
        self.connect_on_init: bool = own["connect_on_init"]
        self.secret_id: str | None = own["secret_id"]
        self.secret_max_age: float | None = own["secret_max_age"]  # None: the provider's default
        self.iam_auth: bool = own["iam_auth"]
        self.region: str | None = own["region"]
        self.reader_host: str | None = own["reader_host"]

    @classmethod
    def build(cls, options: Mapping[str, Any]) -> Setup:
        """Check ``options``, merge the ``SERVERLESS_MYSQL_*`` variables under them, and validate the result."""
        unknown = sorted(set(options) - OPTION_NAMES - OWN_OPTIONS)
        if unknown:
            import difflib  # noqa: PLC0415 - only for the error message

            known = sorted(OPTION_NAMES | OWN_OPTIONS)
            hints = [f"{name!r}" + _suggest(difflib.get_close_matches(name, known, n=1)) for name in unknown]
            raise ConfigTypeError(f"with_mysql: unknown option(s) {', '.join(hints)}")
        env = read_env()
        db = options.get("db")
        if db is not None:
            if not isinstance(db, ServerlessMySQL):
                raise ConfigTypeError(f"option 'db' must be a ServerlessMySQL client, not {type(db).__name__}")
            clashing = sorted(set(options) & _CLIENT_SIDE)
            if clashing:
                raise ConfigTypeError(
                    f"with_mysql(db=...) uses a client built elsewhere: give {', '.join(map(repr, clashing))} to "
                    "ServerlessMySQL(...) when you build it, not to with_mysql"
                )
            ignored = sorted(var for option, (var, _) in env.items() if option in _CLIENT_SIDE)
            if ignored:
                logger.debug("db= given: ignoring client variables", extra={"event": "env_ignored", "vars": ignored})
            env = {option: source for option, source in env.items() if option not in _CLIENT_SIDE}
        env = _drop_overridden(env, options)
        merged = {option: value for option, (_, value) in env.items()} | dict(options)
        env_sources = {option: var for option, (var, _) in env.items()}
        own = dict(_OWN_DEFAULTS)
        for name, check in _OWN_CHECKS:
            if name in merged:
                try:
                    own[name] = check(name, merged[name])
                except ConfigError as exc:
                    raise _named(exc, env_sources) from None
        own["db"] = db
        setup = cls(
            client_options={k: v for k, v in merged.items() if k not in OWN_OPTIONS},
            env_sources=env_sources,
            **own,
        )
        setup._check_relations()
        return setup

    def _check_relations(self) -> None:
        given = [
            n
            for n, v in (("credentials", self.client_options.get("credentials")), ("secret_id", self.secret_id))
            if v is not None
        ]
        sources = given + (["iam_auth"] if self.iam_auth else [])
        if len(sources) > 1:
            raise self._error(ConfigError(f"options {' and '.join(map(repr, sources))} exclude each other"))
        if self.iam_auth and self.client_options.get("password") is not None:
            raise self._error(
                ConfigError("option 'password' cannot be used with option 'iam_auth' (the token is the password)")
            )

    def _error(self, exc: ConfigError) -> ConfigError:
        return _named(exc, self.env_sources)

    def create(self) -> ServerlessMySQL:
        """The decoration's client: the given ``db``, or a new one (at decoration time: Lambda's init phase)."""
        if self.db is not None:
            return self.db
        options = dict(self.client_options)
        try:
            if self.secret_id is not None:
                from ..secrets import SecretsManagerCredentials  # noqa: PLC0415

                if self.secret_max_age is None:  # not given: the provider's default
                    options["credentials"] = SecretsManagerCredentials(self.secret_id, region=self.region)
                else:
                    options["credentials"] = SecretsManagerCredentials(
                        self.secret_id, max_age=self.secret_max_age, region=self.region
                    )
            elif self.iam_auth:
                options["credentials"] = self._iam_credentials(options)
            return ServerlessMySQL(**options)
        except ConfigError as exc:
            raise self._error(exc) from None

    def create_reader(self, db: ServerlessMySQL) -> ServerlessMySQL:
        """The reader client of ``reader_host``: ``db``'s options and credentials, the host replaced."""
        from .reader import reader_client  # noqa: PLC0415 - only with reader_host

        assert self.reader_host is not None
        try:
            iam = self._iam_credentials if self.iam_auth and self.db is None else None
            return reader_client(db, self.reader_host, iam_credentials=iam)
        except ConfigError as exc:
            raise self._error(exc) from None

    def _iam_credentials(self, options: Mapping[str, Any]) -> CredentialsSource:
        from ..iam import TLS_ARGS, IamAuthCredentials, verified_tls  # noqa: PLC0415

        config = Config.from_options(**options)
        if "host" not in config.explicit:
            raise ConfigError("option 'iam_auth' needs option 'host' (the endpoint the token is signed for)")
        if config.user is None:
            raise ConfigError("option 'iam_auth' needs option 'user' (the IAM-enabled database user)")
        # Checked here to name connect_args (or the URL / variable it came from) rather than the provider's tls.
        given = {k: v for k, v in config.connect_args.items() if k in TLS_ARGS or k == "ssl_disabled"}
        tls = verified_tls(given, where="connect_args")
        tls.pop("ssl_disabled", None)  # present only as False here
        return IamAuthCredentials(host=config.host, user=config.user, port=config.port, region=self.region, tls=tls)


def _named(exc: ConfigError, env_sources: Mapping[str, str]) -> ConfigError:
    """``exc`` with the environment variable(s) behind the named option(s) added to the message."""
    text = str(exc)
    named = [var for option, var in env_sources.items() if f"'{option}'" in text]
    if not named:
        return exc
    return type(exc)(f"{text} (set by environment variable {', '.join(named)})")


def _suggest(matches: list[str]) -> str:
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def _drop_overridden(env: dict[str, tuple[str, Any]], explicit: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    """Environment values that an explicit option overrides, even indirectly, are dropped."""
    dropped: set[str] = set(explicit)
    if explicit.get("url") is not None:
        # An explicit URL beats the variables for the parts it sets (a variable would otherwise win as a keyword).
        dropped |= set(parse_url(explicit["url"]))
    if any(explicit.get(n) for n in ("credentials", "secret_id", "iam_auth")):
        dropped |= {"credentials", "secret_id", "iam_auth"}  # one credential source; the explicit one wins
    return {o: src for o, src in env.items() if o not in dropped}
