"""Options of :class:`~serverless_mysql.ServerlessMySQL`: defaults, validation and ``mysql://`` URLs.

Every duration is in seconds (floats allowed). A wrong option name or type raises :class:`ConfigTypeError`
(a ``TypeError``), a wrong value :class:`ConfigError` (a ``ValueError``); both name the option and never echo a
password. Nothing falls back silently to a default.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ConfigError, ConfigTypeError

__all__ = ["CONNECTION_OPTIONS", "EVENT_NAMES", "Config", "detect_rds_proxy", "parse_url"]

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

# pymysql.connect arguments the library sets itself; each maps to the option to use instead.
_RESERVED_CONNECT_ARGS = {
    "host": "host",
    "port": "port",
    "user": "user",
    "password": "password",
    "passwd": "password",
    "database": "database",
    "db": "database",
    "connect_timeout": "connect_timeout",
    "read_timeout": "read_timeout",
    "write_timeout": "write_timeout",
    "cursorclass": "(rows are always dicts)",
    "defer_connect": "(connecting is always lazy)",
}
# Types of the pymysql.connect arguments a URL query string may carry.
_URL_CONNECT_ARGS: dict[str, type] = {
    "charset": str,
    "collation": str,
    "sql_mode": str,
    "init_command": str,
    "autocommit": bool,
    "local_infile": bool,
    "max_allowed_packet": int,
    "program_name": str,
    "unix_socket": str,
    "bind_address": str,
    "ssl_ca": str,
    "ssl_cert": str,
    "ssl_key": str,
    "ssl_disabled": bool,
    "ssl_verify_cert": bool,
    "ssl_verify_identity": bool,
}
_OFF: tuple[object, ...] = (None, False, "", {})  # values that leave a pymysql.connect TLS argument unset
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _mask(value: object) -> str:
    return "****" if value else repr(value)


@dataclass(frozen=True)
class Config:
    """Validated, immutable options. Build it with :meth:`Config.from_options`."""

    host: str = "localhost"
    port: int = 3306
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    database: str | None = None
    url: str | None = field(default=None, repr=False)
    connect_args: Mapping[str, Any] = field(default_factory=dict, repr=False)
    connect_timeout: float = 5.0
    read_timeout: float | None = None
    write_timeout: float | None = None
    ping_after_idle: float | None = None
    manage_conns: bool = True
    conn_utilization: float = 0.8
    max_conns_freq: float = 15.0
    used_conns_freq: float | None = None
    zombie_min_timeout: float = 3.0
    zombie_max_timeout: float = 900.0
    max_kills: int = 10
    rds_proxy: bool | None = None
    backoff: str | Callable[[int, float], float] = "paced"
    base: float = 0.05
    cap: float = 1.0
    max_retries: int = 10_000
    max_connect_wait: float | None = None
    pressure_idle_timeout: float | None = 3.0
    max_query_retries: int = 0
    query_retry_backoff: str | Callable[[int, float], float] = "full"
    credentials: Any = None
    on_connect: Callable[..., Any] | None = None
    on_connect_error: Callable[..., Any] | None = None
    on_retry: Callable[..., Any] | None = None
    on_close: Callable[..., Any] | None = None
    on_error: Callable[..., Any] | None = None
    on_kill: Callable[..., Any] | None = None
    on_kill_error: Callable[..., Any] | None = None
    on_query_retry: Callable[..., Any] | None = None
    clock: Callable[[], float] | None = None
    sleep: Callable[[float], None] | None = None
    random: random.Random | None = None
    explicit: frozenset[str] = field(default=frozenset(), repr=False)
    """Names of the connection options given explicitly (they beat a secret's fields)."""

    @classmethod
    def option_names(cls) -> frozenset[str]:
        """Every option name :meth:`from_options` accepts."""
        return frozenset(f.name for f in fields(cls)) - {"explicit"}

    @classmethod
    def from_options(cls, **options: Any) -> Config:
        """Validate ``options`` and return a :class:`Config`.

        Options given in ``url`` are overridden by the same options given as keywords.
        """
        unknown = sorted(set(options) - cls.option_names())
        if unknown:
            hint = " (durations are in seconds; there is no 'config' option, pass options as keywords)"
            raise ConfigTypeError(f"unknown option(s) {', '.join(map(repr, unknown))}{hint if unknown else ''}")
        merged: dict[str, Any] = {}
        url = options.get("url")
        if url is not None:
            merged.update(parse_url(url))
        merged.update({k: v for k, v in options.items() if k != "url"})
        # connect_args from the URL and from the keyword are merged; the keyword's keys win.
        if url is not None and "connect_args" in options:
            merged["connect_args"] = {**parse_url(url).get("connect_args", {}), **(options["connect_args"] or {})}
        explicit = frozenset(k for k in CONNECTION_OPTIONS if merged.get(k) is not None)
        values = {name: _validate(name, value) for name, value in merged.items()}
        config = cls(**values, url=url, explicit=explicit)
        config._check_relations()
        return config

    def _check_relations(self) -> None:
        tls = getattr(self.credentials, "tls", None)
        if isinstance(tls, Mapping) and tls:
            self._check_tls_kept(tls)
        if self.base > self.cap:
            raise ConfigError(f"option 'base' ({self.base}) must not exceed option 'cap' ({self.cap})")
        if self.zombie_min_timeout > self.zombie_max_timeout:
            raise ConfigError(
                f"option 'zombie_min_timeout' ({self.zombie_min_timeout}) must not exceed "
                f"option 'zombie_max_timeout' ({self.zombie_max_timeout})"
            )

    def _check_tls_kept(self, tls: Mapping[str, Any]) -> None:
        # connect_args are merged over the provider's arguments: they must not switch its TLS off or weaken it
        # (an IAM token travels as a clear-text password).
        provider = type(self.credentials).__name__
        for key, value in self.connect_args.items():
            if (key == "ssl_disabled" and value) or (key in tls and tls[key] not in _OFF and value in _OFF):
                raise ConfigError(
                    f"connect_args[{key!r}]={value!r} would weaken the TLS that option 'credentials' ({provider}) "
                    "requires (its token is sent as a clear-text password); remove it from connect_args"
                )
        from .iam import tls_weakness  # noqa: PLC0415 - only with a credentials provider that requires TLS

        if tls_weakness(tls) is None:  # the provider verifies the server: so must the merged arguments
            problem = tls_weakness({**tls, **self.connect_args})
            if problem is not None:
                key, why = problem
                raise ConfigError(
                    f"connect_args[{key!r}] {why}: it would weaken the verified TLS that option 'credentials' "
                    f"({provider}) requires (its token is sent as a clear-text password); remove it from connect_args"
                )

    @property
    def is_rds_proxy(self) -> bool:
        """Whether ``host`` is an RDS Proxy endpoint (``rds_proxy`` beats detection from the host name)."""
        return self.rds_proxy_for(self.host)

    def rds_proxy_for(self, host: str) -> bool:
        """Whether a connection to ``host`` goes through RDS Proxy.

        Parameters
        ----------
        host
            The host actually connected to: the configured one, or the one a credentials provider (a secret)
            supplied, which the configured default ``localhost`` says nothing about.

        Returns
        -------
        bool
            ``rds_proxy`` when it is set explicitly, otherwise :func:`detect_rds_proxy` of ``host``.
        """
        return detect_rds_proxy(host) if self.rds_proxy is None else self.rds_proxy

    def public_dict(self) -> dict[str, Any]:
        """All options as a plain dict, with the password and any URL credentials masked."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "explicit"}
        out["password"] = _mask(self.password)
        if self.url is not None:
            out["url"] = _redact_url(self.url)
        out["connect_args"] = {
            k: (_mask(v) if "password" in k or "key" in k else v) for k, v in self.connect_args.items()
        }
        return out


def detect_rds_proxy(host: str) -> bool:
    """True for RDS Proxy endpoints (``<name>.proxy-<id>.<region>.rds.amazonaws.com``)."""
    host = host.lower().rstrip(".")
    return ".proxy-" in host and (host.endswith(".rds.amazonaws.com") or host.endswith(".rds.amazonaws.com.cn"))


def _redact_url(url: str) -> str:
    from urllib.parse import urlsplit  # noqa: PLC0415 - only with a URL: keeps `import serverless_mysql` light

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:****@{netloc}").geturl()


def parse_url(url: object) -> dict[str, Any]:
    """Parse ``mysql://user:pass@host:port/db?option=value`` into options.

    Credentials and database are percent-decoded. A query parameter is either one of our options (converted
    to that option's type) or a ``pymysql.connect`` argument (it goes to ``connect_args``).

    Error messages never quote the user info, the path or anything that may be a piece of the password (a
    password with an unencoded ``/``, ``?`` or ``#`` makes urllib split the URL inside it).
    """
    if not isinstance(url, str):
        raise ConfigTypeError(f"option 'url' must be a str, not {type(url).__name__}")
    from urllib.parse import parse_qsl, unquote, urlsplit  # noqa: PLC0415 - only with a URL

    if _password_split(url):
        raise ConfigError(
            "option 'url' has an '@' after the host, as when the password holds an unencoded '/', '?' or '#'; "
            f"{_ENCODE_HINT} (an '@' in a parameter value as %40)"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        # NOTE: from None: urllib's message may quote the netloc, which holds the password.
        raise ConfigError(f"option 'url' is not a valid URL: {_url_problem(exc)}; {_ENCODE_HINT}") from None
    if parts.scheme.lower() not in ("mysql", "mariadb"):
        if not parts.scheme or "://" not in url:
            raise ConfigError("option 'url' must start with the mysql:// scheme: mysql://user:password@host:3306/db")
        raise ConfigError(f"option 'url' must use the mysql:// scheme, not {parts.scheme}://")
    if "#" in url:
        raise ConfigError(f"option 'url' must not contain a '#' fragment; {_ENCODE_HINT}")
    if not parts.hostname:
        raise ConfigError("option 'url' has no host name")
    out: dict[str, Any] = {"host": unquote(parts.hostname)}
    if port is not None:
        out["port"] = port
    if parts.username:
        out["user"] = unquote(parts.username)
    if parts.password is not None:
        out["password"] = unquote(parts.password)
    database = unquote(parts.path.lstrip("/"))
    if "/" in database:
        raise ConfigError(
            "option 'url' has a path of several segments; only a database name may follow the host "
            "(percent-encode '/' in it as %2F)"
        )
    if database:
        out["database"] = database
    connect_args: dict[str, Any] = {}
    scalar_options = {f.name: f for f in fields(Config)}
    for key, raw in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if key in _URL_OPTION_TYPES:
            out[key] = _convert(f"url parameter {key!r}", raw, _URL_OPTION_TYPES[key], show="@" not in raw)
        elif key in _URL_CONNECT_ARGS:
            connect_args[key] = _convert(f"url parameter {key!r}", raw, _URL_CONNECT_ARGS[key], show="@" not in raw)
        elif key in scalar_options:
            raise ConfigError(f"url parameter {key!r} cannot be set in a URL; pass it as a keyword option")
        elif "@" in key:  # no parameter name has one: rather a piece of a password
            raise ConfigError(f"option 'url' has a parameter name with an '@'; {_ENCODE_HINT}")
        else:
            raise ConfigError(f"url parameter {key!r} is not an option of serverless_mysql nor of pymysql.connect")
    if connect_args:
        out["connect_args"] = connect_args
    return out


_ENCODE_HINT = "percent-encode '/', '?', '#' and '@' in the user name and password (as %2F, %3F, %23 and %40)"
# An '@' after the end of urllib's host part, followed by what looks like the real host[:port]: the user info
# held a '/', '?' or '#' (an '@' in a value such as init_command=SET @x=1 is not followed by a host and a delimiter).
_SPLIT_USERINFO = r"@(?:[\w.~%-]+|\[[^\]/?#@]*\])(?::\d*)?(?:[/?#]|$)"


def _password_split(url: str) -> bool:
    _, sep, rest = url.partition("//")
    if not sep:
        return False
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    return bool(ends) and re.compile(_SPLIT_USERINFO).search(rest, min(ends)) is not None  # compiled once, cached


def _url_problem(exc: ValueError) -> str:
    # Named from urllib's message, never quoting it (it may quote the netloc).
    text = str(exc)
    if "out of range" in text:
        return "the port is out of range (0-65535)"
    if "Port" in text:
        return "the port is not a number"
    if "Invalid IPv6" in text:
        return "a '[' or ']' in the host is unbalanced"
    if "IPv6" in text:
        return "the host in brackets is not an IP address"
    return "malformed host or port"


def _convert(what: str, raw: str, kind: type, *, show: bool = True) -> Any:
    if kind is bool:
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"{what} must be a boolean (true/false, 1/0, yes/no, on/off){_shown(raw, show)}")
    if kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            raise ConfigError(f"{what} must be a {kind.__name__}{_shown(raw, show)}") from None
    if kind is type(None):  # optional float
        if raw.strip().lower() in ("", "none", "null"):
            return None
        return _convert(what, raw, float, show=show)
    return raw


def _shown(raw: str, show: bool) -> str:
    return f", not {raw!r}" if show else ""


# Our options a URL may set, with the type its text converts to (type(None) = optional float).
_URL_OPTION_TYPES: dict[str, type] = {
    "connect_timeout": float,
    "read_timeout": type(None),
    "write_timeout": type(None),
    "ping_after_idle": type(None),
    "manage_conns": bool,
    "conn_utilization": float,
    "max_conns_freq": float,
    "used_conns_freq": type(None),
    "zombie_min_timeout": float,
    "zombie_max_timeout": float,
    "max_kills": int,
    "rds_proxy": bool,
    "backoff": str,
    "base": float,
    "cap": float,
    "max_retries": int,
    "max_connect_wait": type(None),
    "pressure_idle_timeout": type(None),
    "max_query_retries": int,
    "query_retry_backoff": str,
}


# ---------------------------------------------------------------------------------------------- validation
def _number(
    name: str, value: object, *, low: float, high: float = math.inf, low_open: bool = False, integer: bool = False
) -> float:
    kind = "an int" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise ConfigTypeError(f"option {name!r} must be {kind}, not {type(value).__name__} ({value!r})")
    if not math.isfinite(value):
        raise ConfigError(f"option {name!r} must be a finite number, not {value!r}")
    if (value <= low if low_open else value < low) or value > high:
        bound = f"> {low}" if low_open else f">= {low}"
        upper = f" and <= {high}" if high != math.inf else ""
        raise ConfigError(f"option {name!r} must be {bound}{upper}, not {value!r}")
    return value


def _optional_str(name: str, value: object, *, secret: bool = False) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        shown = "" if secret else f" ({value!r})"
        raise ConfigTypeError(f"option {name!r} must be a str, not {type(value).__name__}{shown}")
    if "\x00" in value:
        raise ConfigError(f"option {name!r} must not contain a NUL character")
    return value


def _bool(name: str, value: object, *, optional: bool = False) -> bool | None:
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        expected = "True, False or None" if optional else "True or False"
        raise ConfigTypeError(f"option {name!r} must be {expected}, not {type(value).__name__} ({value!r})")
    return value


def _backoff(name: str, value: object) -> object:
    if callable(value):
        return value
    names = ("paced", "full", "decorrelated") if name == "backoff" else ("full", "decorrelated")
    if isinstance(value, str) and value.lower() in names:
        return value.lower()
    expected = ", ".join(repr(n) for n in names)
    raise ConfigError(f"option {name!r} must be {expected} or a callable (attempt, previous) -> delay, not {value!r}")


def _connect_args(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigTypeError(f"option 'connect_args' must be a dict, not {type(value).__name__}")
    import inspect  # noqa: PLC0415 - only needed when connect_args are given

    import pymysql  # noqa: PLC0415

    known = set(inspect.signature(pymysql.connections.Connection.__init__).parameters) - {"self"}
    for key in value:
        if not isinstance(key, str):
            raise ConfigTypeError(f"option 'connect_args' keys must be str, not {type(key).__name__}")
        if key in _RESERVED_CONNECT_ARGS:
            instead = _RESERVED_CONNECT_ARGS[key]
            raise ConfigError(f"connect_args[{key!r}] is managed by the library; use the option {instead!r}")
        if key not in known:
            raise ConfigError(f"connect_args[{key!r}] is not an argument of pymysql.connect")
    return dict(value)


def _validate(name: str, value: Any) -> Any:
    if name in ("host",):
        host = _optional_str(name, value)
        if not host:
            raise ConfigError("option 'host' must be a non-empty host name or address")
        return host
    if name in ("user", "database"):
        return _optional_str(name, value)
    if name == "password":
        return _optional_str(name, value, secret=True)
    if name == "port":
        return int(_number(name, value, low=1, high=65535, integer=True))
    if name == "connect_args":
        return _connect_args(value)
    if name in ("connect_timeout",):
        return float(_number(name, value, low=0, low_open=True))
    if name in ("read_timeout", "write_timeout", "ping_after_idle"):
        return None if value is None else float(_number(name, value, low=0, low_open=name != "ping_after_idle"))
    if name in ("manage_conns",):
        return _bool(name, value)
    if name == "rds_proxy":
        return _bool(name, value, optional=True)
    if name == "conn_utilization":
        return float(_number(name, value, low=0, high=1, low_open=True))
    if name in ("max_conns_freq", "zombie_min_timeout", "zombie_max_timeout", "base", "cap"):
        return float(_number(name, value, low=0))
    if name == "used_conns_freq":
        return None if value is None else float(_number(name, value, low=0))
    if name in ("max_retries", "max_query_retries"):
        return int(_number(name, value, low=0, high=100_000, integer=True))
    if name == "max_connect_wait":
        return None if value is None else float(_number(name, value, low=0, low_open=True))
    if name == "pressure_idle_timeout":
        # the server's wait_timeout is whole seconds, at least 1
        return None if value is None else float(_number(name, value, low=1, high=31_536_000))
    if name == "max_kills":
        return int(_number(name, value, low=0, high=10_000, integer=True))
    if name in ("backoff", "query_retry_backoff"):
        return _backoff(name, value)
    if name == "credentials":
        if value is not None and not callable(getattr(value, "get_credentials", None)):
            raise ConfigTypeError("option 'credentials' must have a get_credentials(refresh: bool) method")
        return value
    if name in EVENT_NAMES or name in ("clock", "sleep"):
        if value is not None and not callable(value):
            raise ConfigTypeError(f"option {name!r} must be callable or None, not {type(value).__name__}")
        return value
    if name == "random":
        if value is not None and not isinstance(value, random.Random):
            raise ConfigTypeError(f"option 'random' must be a random.Random, not {type(value).__name__}")
        return value
    raise ConfigTypeError(f"unknown option {name!r}")  # pragma: no cover - from_options filters names first
