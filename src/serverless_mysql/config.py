"""Options of :class:`~serverless_mysql.ServerlessMySQL`: defaults, documentation, validation and ``mysql://`` URLs.

Each option is described once, in its field's metadata (an :class:`~serverless_mysql._spec.OptionSpec`): its
doc text, its check (which also says how it reads from text and its range for the docs) and, for options a
``SERVERLESS_MYSQL_*`` variable may set, the variable's summary. ``docs/options.md`` is generated from it
(``python -m serverless_mysql.options``).

Every duration is in seconds (floats allowed). A wrong option name or type raises :class:`ConfigTypeError`
(a ``TypeError``), a wrong value :class:`ConfigError` (a ``ValueError``); both name the option and never echo a
password. Nothing falls back silently to a default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ._checks import Backoff, Callback, Check, ConnectArgs, Duck, Flag, Number, RandomGenerator, Text, check_tls_kept
from ._cluster import ROLE_CHECK, detect_rds_proxy
from ._record import MISSING, field, fields, lazy_attributes, record
from ._spec import OptionSpec, option, spec
from .errors import ConfigError, ConfigTypeError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    import random
    from typing import Any

    from .credentials import CredentialsSource
else:
    __getattr__ = lazy_attributes(__name__, CredentialsSource="credentials")  # a typing.Protocol: on first access


__all__ = [
    "CLIENT_OPTIONS",
    "CONNECTION_OPTIONS",
    "EVENT_NAMES",
    "OPTION_NAMES",
    "URL_OPTION_KINDS",
    "Config",
    "CredentialsSource",
    "detect_rds_proxy",
    "parse_url",
]

EVENT_NAMES = (
    "on_connect",
    "on_connect_error",
    "on_retry",
    "on_close",
    "on_error",
    "on_kill",
    "on_kill_error",
    "on_query_retry",
)
CONNECTION_OPTIONS = ("host", "port", "user", "password", "database")


_S_POSITIVE = Number(low=0, low_open=True, unit="s")
_S = Number(low=0, unit="s")
_S_OPTIONAL = Number(low=0, unit="s", optional=True)
_S_POSITIVE_OPTIONAL = Number(low=0, low_open=True, unit="s", optional=True)
_COUNT = Number(low=0, high=100_000, integer=True, unit="count")
_CALLBACK = Callback()
_BACKOFF_FORMS = "same forms as `backoff`"


@record(frozen=True, eq=False)  # compared by identity; a record, not a dataclass: see _record
class Config:
    """Validated, immutable options. Build it with :meth:`Config.from_options`."""

    host: str = option(
        "localhost",
        "Server host name or address.",
        Text(optional=False, nonempty="a non-empty host name or address"),
        env="Server host name or address",
    )
    port: int = option(3306, "Server port.", Number(low=1, high=65535, integer=True), env="Server port")
    user: str | None = option(None, "User name.", Text(), env="Database user")
    password: str | None = option(
        None,
        "Password; never shown in `repr`, `get_config()`, logs or error messages.",
        Text(secret=True),
        env="Database password (prefer `SECRET_ID` or `IAM_AUTH`)",
        secret=True,
    )
    database: str | None = option(None, "Default database.", Text(), env="Default database")
    url: str | None = option(
        None,
        "`mysql://user:pass@host:port/db?name=value` (or `mariadb://`): credentials and database are "
        "percent-decoded; a query parameter is one of the [URL parameters](#url-parameters), converted to its "
        "type; anything else, other schemes and a `#` fragment are rejected. Percent-encode `/`, `?`, `#` and "
        "`@` in the user name and password (`%2F`, `%3F`, `%23`, `%40`); error messages never quote the user "
        "info. Keyword options beat the URL's; `connect_args` keys are merged, the keyword's winning.",
        Text(),
        env="`mysql://user:pass@host:port/db?option=value`; other variables beat its parts",
        secret=True,
    )
    connect_args: Mapping[str, Any] = field(
        default_factory=dict,
        repr=False,
        metadata=spec(
            "Extra `pymysql.connect` arguments (`ssl_ca`, `ssl_verify_identity`, `ssl`, `charset`, `init_command`, "
            "...). Arguments the library manages (`host`, `port`, `user`, `password`, `database`, the timeouts, "
            "`cursorclass`, `defer_connect`) are rejected naming the option to use, and so are names "
            "`pymysql.connect` does not know.",
            ConnectArgs(),
            env='JSON object of extra `pymysql.connect` arguments, e.g. `{"ssl_ca": "/opt/ca.pem"}`',
            secret=True,
        ),
    )
    connect_timeout: float = option(
        5.0,
        "Limit of one connect attempt (TCP connect and handshake), cut to the deadline.",
        _S_POSITIVE,
        env="Seconds per connect attempt (also bounded by the deadline)",
    )
    read_timeout: float | None = option(
        None,
        "Socket read limit while waiting for a statement's answer, cut to the deadline. `None` = no limit but "
        "the deadline, and **none at all without one**. A statement that times out is not re-run.",
        _S_POSITIVE_OPTIONAL,
        env="Seconds a statement may wait for the server (`none` = no limit but the deadline)",
    )
    write_timeout: float | None = option(
        None,
        "Socket write limit of a statement, likewise.",
        _S_POSITIVE_OPTIONAL,
        env="Seconds a write to the server may block (`none` = no limit but the deadline)",
    )
    ping_after_idle: float | None = option(
        None,
        "Also `COM_PING` a connection idle this long before reusing it (`None` = socket check only); the ping "
        "waits at most `min(connect_timeout, 1 s, half the time left)`.",
        _S_OPTIONAL,
        env="Ping a reused connection idle at least this many seconds (`none` = never)",
    )
    manage_conns: bool = option(
        True, "Run `end()` housekeeping at all.", Flag(), env="Run housekeeping (utilization, zombie kills) in `end()`"
    )
    conn_utilization: float = option(
        0.8,
        "The threshold: from 75% of it `end()` kills zombies; at it, it lowers the session's idle timeout and "
        "checks whether anyone is refused a slot.",
        Number(low=0, high=1, low_open=True, unit="ratio"),
        env="Utilization (0-1] above which `end()` frees connections",
    )
    max_conns_freq: float = option(
        15.0,
        "How long the server's limits (`max_connections`, `max_user_connections`) are cached.",
        _S,
        env="Seconds the server's connection limit is cached",
    )
    used_conns_freq: float | None = option(
        None,
        "How often `end()` measures utilization: `None` = adaptive, a number = at most every N s (`0` = always).",
        _S_OPTIONAL,
        env="Seconds between utilization measurements (`none` = adaptive)",
    )
    # 1 s, not serverless-mysql's 3 s: under pressure the slots the waiters need are mostly held by environments that
    # are no longer invoked (docs/overload-log.md, "Idle slots to the waiters").
    zombie_min_timeout: float = option(
        1.0,
        "Under pressure, a sleeping connection of the same user idle this long may be killed (compared in "
        "whole seconds).",
        Number(low=0, unit="s", at_most="zombie_max_timeout"),
        env="Under pressure, idle seconds before a sleeping connection of the user may be killed",
    )
    zombie_max_timeout: float = option(
        900.0,
        "Sleeping connections of the same user idle this long are killed even without pressure.",
        _S,
        env="Idle seconds after which the user's sleeping connections are killed anyway",
    )
    max_kills: int = option(
        10,
        "At most this many KILLs per `end()`.",
        Number(low=0, high=10_000, integer=True, unit="count"),
        env="Most zombie connections killed per `end()`",
    )
    rds_proxy: bool | None = option(
        None,
        "`True`/`False` = behind RDS Proxy or not; `None` = detect from the host actually connected to (a "
        "secret's or provider's `host` counts), for each connection.",
        Flag(optional=True),
        env="RDS Proxy mode, no processlist/KILL (`auto` = detect from the host name)",
    )
    server_role: str = option(
        "auto",
        'The role the client needs: `"writer"` (waits for a writable server, re-runs a statement a read-only one '
        'refused), `"reader"`, `"any"` (drops a connection refused as read-only), or `"auto"`: from the host '
        "actually connected to (`.cluster-` endpoint: writer, `.cluster-ro-`: reader, else any). "
        "See [docs/aurora.md](aurora.md).",
        ROLE_CHECK,
        env="`writer`, `reader`, `any` or `auto` (from the host name: Aurora cluster/reader endpoint)",
    )
    max_connection_age: float | None = option(
        None,
        "At `end()`, outside a transaction, close (COM_QUIT) a connection older than this, cut by up to 10% per "
        "connection; the next invocation connects through DNS again. `None` = never.",
        _S_POSITIVE_OPTIONAL,
        env="Seconds after which `end()` closes the connection (`none` = never)",
    )
    backoff: str | Callable[[int, float], float] = option(
        "paced",
        'Waits between connect attempts: `"paced"` (tells a full server from a down one), or serverless-mysql\'s '
        '`"full"`, `"decorrelated"` or a callable `(attempt, previous_delay) -> delay` returning seconds ≥ 0.',
        Backoff("paced", "full", "decorrelated"),
        env="Waits between connect attempts: `paced` (server-aware), or `full` / `decorrelated` jitter",
    )
    base: float = option(
        0.05,
        "Shortest wait (connect and query retries).",
        Number(low=0, unit="s", at_most="cap"),
        env="Shortest wait between connect attempts, in seconds",
    )
    cap: float = option(
        1.0,
        "Longest wait of a down-server retry (a read-only server's waits are spread evenly up to 2 s instead); a "
        "full server is retried after `0.75 * cap` on average at first, then after half the time waited so far, "
        "up to `1.5 * cap`, and at most 15% of the time left before the deadline (not under `0.4 * cap`); also "
        "the query-retry ceiling.",
        _S,
        env="Longest wait between connect attempts (`paced`: a full server's waits average `0.4 * cap` to `1.5 * cap`)",
    )
    max_retries: int = option(
        10_000,
        "Safety bound on connect retries per `connect()`; time ends waits (the deadline, `max_connect_wait`).",
        _COUNT,
        env="Safety bound on connect retries; with `paced`, time (deadline, `MAX_CONNECT_WAIT`) ends waits",
    )
    max_connect_wait: float | None = option(
        None,
        "How long one connect may wait for a slot: `None` = until the deadline, or 30 s without one.",
        _S_POSITIVE_OPTIONAL,
        env="Seconds one connect may wait for a slot (`none` = until the deadline, or 30 s without one)",
    )
    pressure_idle_timeout: float | None = option(
        3.0,
        "Session `wait_timeout` while the server is at `conn_utilization` or above, others are refused a slot, "
        "or the connection had to wait for its own (restored below 75% of the threshold); `None` = never set.",
        # the server's wait_timeout is whole seconds, at least 1
        Number(low=1, high=31_536_000, unit="s", optional=True),
        env="Session `wait_timeout` while the server is at `CONN_UTILIZATION` (`none` = never set)",
    )
    max_query_retries: int = option(
        0,
        "Retries of a statement that failed with 1213, 1205, 1317, 3132 or 3133, outside transactions only.",
        _COUNT,
        env="Retries of transient query errors (deadlock, lock wait timeout, ...)",
    )
    query_retry_backoff: str | Callable[[int, float], float] = option(
        "full",
        f"Backoff of those retries: {_BACKOFF_FORMS} but `paced`, with its own attempt count per statement.",
        Backoff("full", "decorrelated"),
        env="Query retry backoff: `full` or `decorrelated`",
    )
    credentials: CredentialsSource | None = option(
        None,
        "A credentials provider (an object with `get_credentials(refresh=False) -> Credentials`, `refreshable "
        "= True` if a refetch can fix a 1045, and optionally a `tls` mapping of TLS arguments that "
        "`connect_args` may not weaken), asked before every new connection; explicit options beat its fields. "
        "`SecretsManagerCredentials` and `IamAuthCredentials` are provided; `@with_mysql(secret_id=...)` / "
        "`iam_auth=True` set them up.",
        Duck("get_credentials", "a credentials provider with a get_credentials(refresh: bool) method"),
    )
    on_connect: Callable[..., Any] | None = option(None, "`fn(connection)` after each successful connect.", _CALLBACK)
    on_connect_error: Callable[..., Any] | None = option(
        None, "`fn(error)` when connecting finally fails (not retryable, or retries exhausted).", _CALLBACK
    )
    on_retry: Callable[..., Any] | None = option(
        None,
        '`fn(error, attempt, delay, strategy)` before each connect retry; `delay` in s; `strategy` is `"paced"`, '
        '`"full"`, `"decorrelated"` or `"custom"`.',
        _CALLBACK,
    )
    on_close: Callable[..., Any] | None = option(
        None, "`fn()` when the connection is closed by `quit()` or given up by housekeeping.", _CALLBACK
    )
    on_error: Callable[..., Any] | None = option(
        None, "`fn(error)` for housekeeping failures and failed rollbacks (errors the caller does not see).", _CALLBACK
    )
    on_kill: Callable[..., Any] | None = option(
        None, "`fn(thread_id, idle_seconds)` for each zombie killed.", _CALLBACK
    )
    on_kill_error: Callable[..., Any] | None = option(
        None, "`fn(error, thread_id)` when a KILL fails (other than 1094).", _CALLBACK
    )
    on_query_retry: Callable[..., Any] | None = option(
        None, "`fn(error, attempt, delay, strategy)` before each statement retry.", _CALLBACK
    )
    clock: Callable[[], float] | None = option(
        None, "Monotonic clock (default `time.monotonic`); for tests and simulations.", _CALLBACK
    )
    sleep: Callable[[float], None] | None = option(
        None, "Sleep function (default `time.sleep`); for tests and simulations.", _CALLBACK
    )
    random: random.Random | None = option(
        None,
        "Random generator for jitter and housekeeping (default: a new `random.Random`); for tests and simulations.",
        RandomGenerator(),
    )
    explicit: frozenset[str] = field(default=frozenset(), repr=False)
    """Names of the connection options given explicitly (they beat a secret's fields)."""

    @classmethod
    def option_names(cls) -> frozenset[str]:
        """Every option name :meth:`from_options` accepts."""
        return OPTION_NAMES

    @classmethod
    def from_options(cls, **options: Any) -> Config:
        """Validate ``options`` and return a :class:`Config`.

        Options given in ``url`` are overridden by the same options given as keywords.
        """
        unknown = sorted(set(options) - OPTION_NAMES)
        if unknown:
            hint = " (durations are in seconds; there is no 'config' option, pass options as keywords)"
            raise ConfigTypeError(f"unknown option(s) {', '.join(map(repr, unknown))}{hint}")
        merged: dict[str, Any] = {}
        url = options.get("url")
        if url is not None:
            merged.update(parse_url(url))
        merged.update({k: v for k, v in options.items() if k != "url"})
        # connect_args from the URL and from the keyword are merged; the keyword's keys win.
        if url is not None and "connect_args" in options:
            merged["connect_args"] = {**parse_url(url).get("connect_args", {}), **(options["connect_args"] or {})}
        explicit = frozenset(k for k in CONNECTION_OPTIONS if merged.get(k) is not None)
        values = {name: _CHECKS[name](name, value) for name, value in merged.items()}
        config = cls(**values, url=url, explicit=explicit)
        config._check_relations()
        return config

    def _check_relations(self) -> None:
        tls = getattr(self.credentials, "tls", None)
        if isinstance(tls, Mapping) and tls:
            check_tls_kept(type(self.credentials).__name__, tls, self.connect_args)
        for name, other in _AT_MOST:
            value, limit = getattr(self, name), getattr(self, other)
            if value > limit:
                raise ConfigError(f"option {name!r} ({value}) must not exceed option {other!r} ({limit})")

    @property
    def is_rds_proxy(self) -> bool:
        """Whether ``host`` is an RDS Proxy endpoint (``rds_proxy`` beats detection from the host name)."""
        return self.rds_proxy_for(self.host)

    def rds_proxy_for(self, host: str) -> bool:
        """``rds_proxy`` when set, else detected from ``host``: the host connected to (maybe a secret's)."""
        return detect_rds_proxy(host) if self.rds_proxy is None else self.rds_proxy

    def public_dict(self) -> dict[str, Any]:
        """All options as a plain dict, with the password, URL credentials and secrets in ``connect_args`` masked."""
        from ._redact import masked  # noqa: PLC0415 - only for get_config()

        out = {name: getattr(self, name) for name in _NAMES_IN_ORDER}
        out["password"] = masked(self.password, "password")
        if self.url is not None:
            from ._url import redact_url  # noqa: PLC0415 - only with a URL

            out["url"] = redact_url(self.url)
        out["connect_args"] = masked(self.connect_args)
        return out


def _bind_specs() -> tuple[OptionSpec, ...]:
    """The options' specs in field order, with their names and defaults filled from the fields."""
    out = []
    for f in fields(Config):
        option: OptionSpec | None = f.metadata.get("option")
        if option is None:
            continue
        option.name = f.name
        option.default = f.default_factory() if f.default_factory is not MISSING else f.default
        option.type = str(f.type)
        out.append(option)
    return tuple(out)


CLIENT_OPTIONS: tuple[OptionSpec, ...] = _bind_specs()
"""Every option of ``ServerlessMySQL(**options)``, in documentation order."""
OPTION_NAMES = frozenset(o.name for o in CLIENT_OPTIONS)
_NAMES_IN_ORDER = tuple(o.name for o in CLIENT_OPTIONS)
_CHECKS: Mapping[str, Check] = {o.name: o.check for o in CLIENT_OPTIONS if o.check is not None}
_AT_MOST = tuple(
    (o.name, o.check.at_most) for o in CLIENT_OPTIONS if isinstance(o.check, Number) and o.check.at_most is not None
)
URL_OPTION_KINDS: Mapping[str, str] = {
    o.name: o.kind
    for o in CLIENT_OPTIONS
    if o.kind is not None and o.name not in CONNECTION_OPTIONS and o.name not in ("url", "connect_args")
}
"""Our options a URL query parameter may set (the URL's own parts aside), with the kind their text converts to."""


def parse_url(url: object) -> dict[str, Any]:
    """Parse ``mysql://user:pass@host:port/db?option=value`` into options (see :mod:`serverless_mysql._url`)."""
    from ._url import parse_url as parse  # noqa: PLC0415 - only with a URL: keeps `import serverless_mysql` light

    return parse(url, URL_OPTION_KINDS, OPTION_NAMES)
