"""``mysql://user:pass@host:port/db?option=value`` URLs: split, percent-decoded, typed, never echoing a password.

Loaded only when a URL is given. Which of our options a URL may set, and their types, come from the option
table (:data:`serverless_mysql.config.URL_OPTION_KINDS`); the ``pymysql.connect`` arguments it may carry are
listed here.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from ._text import from_text
from .errors import ConfigError, ConfigTypeError

__all__ = ["URL_CONNECT_ARGS", "parse_url", "redact_url"]

URL_CONNECT_ARGS: Mapping[str, str] = {
    "charset": "str",
    "collation": "str",
    "sql_mode": "str",
    "init_command": "str",
    "autocommit": "bool",
    "local_infile": "bool",
    "max_allowed_packet": "int",
    "program_name": "str",
    "unix_socket": "str",
    "bind_address": "str",
    "ssl_ca": "str",
    "ssl_cert": "str",
    "ssl_key": "str",
    "ssl_disabled": "bool",
    "ssl_verify_cert": "bool",
    "ssl_verify_identity": "bool",
}
"""The ``pymysql.connect`` arguments a URL query string may carry, with the kind their text converts to."""

_ENCODE_HINT = "percent-encode '/', '?', '#' and '@' in the user name and password (as %2F, %3F, %23 and %40)"
# An '@' after the end of urllib's host part, followed by what looks like the real host[:port]: the user info
# held a '/', '?' or '#' (an '@' in a value such as init_command=SET @x=1 is not followed by a host and a delimiter).
_SPLIT_USERINFO = re.compile(r"@(?:[\w.~%-]+|\[[^\]/?#@]*\])(?::\d*)?(?:[/?#]|$)")


def parse_url(url: object, option_kinds: Mapping[str, str], option_names: Collection[str]) -> dict[str, Any]:
    """Parse ``mysql://user:pass@host:port/db?option=value`` into options.

    Credentials and database are percent-decoded. A query parameter is either one of our options named in
    ``option_kinds`` (converted to its kind) or a ``pymysql.connect`` argument of :data:`URL_CONNECT_ARGS` (it
    goes to ``connect_args``); another of ``option_names`` is refused as "not in a URL".

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
    for key, raw in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        what = f"url parameter {key!r}"
        if key in option_kinds:
            out[key] = from_text(option_kinds[key], raw, what=what, show="@" not in raw)
        elif key in URL_CONNECT_ARGS:
            connect_args[key] = from_text(URL_CONNECT_ARGS[key], raw, what=what, show="@" not in raw)
        elif key in option_names:
            raise ConfigError(f"{what} cannot be set in a URL; pass it as a keyword option")
        elif "@" in key:  # no parameter name has one: rather a piece of a password
            raise ConfigError(f"option 'url' has a parameter name with an '@'; {_ENCODE_HINT}")
        else:
            raise ConfigError(f"{what} is not an option of serverless_mysql nor of pymysql.connect")
    if connect_args:
        out["connect_args"] = connect_args
    return out


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``****``."""
    from urllib.parse import urlsplit  # noqa: PLC0415 - only with a URL: keeps `import serverless_mysql` light

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:****@{netloc}").geturl()


def _password_split(url: str) -> bool:
    _, sep, rest = url.partition("//")
    if not sep:
        return False
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    return bool(ends) and _SPLIT_USERINFO.search(rest, min(ends)) is not None


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
