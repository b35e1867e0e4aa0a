"""Checks of option values: each returns the value (normalized) or raises an error naming the option.

A check also knows how its option reads from text (:attr:`Check.kind`) and how its range reads in the docs
(:meth:`Check.describe`), so the validation, the ``SERVERLESS_MYSQL_*`` variables, the URL parameters and
``docs/options.md`` cannot disagree.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError, ConfigTypeError

__all__ = [
    "RESERVED_CONNECT_ARGS",
    "Backoff",
    "Callback",
    "Check",
    "Choice",
    "ConnectArgs",
    "Duck",
    "Flag",
    "Number",
    "RandomGenerator",
    "Text",
    "check_tls_kept",
]


class Check:
    """Validates one option's value: returns it (normalized) or raises an error naming the option."""

    __slots__ = ()

    @property
    def kind(self) -> str | None:
        """How the value reads from text; ``None``: an object, never from text.

        ``str``, ``int``, ``float``, ``bool`` (with ``?``: or a none-word), ``json`` or ``choice:a,b``.
        """
        return None

    def __call__(self, name: str, value: Any) -> Any:
        """``value`` checked (and normalized, e.g. an int duration to float) for option ``name``."""
        raise NotImplementedError

    def describe(self) -> str:
        """Unit and range for the docs (Markdown), or ``""``."""
        return ""


class Number(Check):
    """An int or float in a range; ``unit`` (``s``, ``ratio``, ``count``) is for the docs only."""

    __slots__ = ("at_most", "high", "integer", "low", "low_open", "optional", "unit")

    def __init__(
        self,
        *,
        low: float,
        high: float = math.inf,
        low_open: bool = False,
        integer: bool = False,
        optional: bool = False,
        unit: str = "",
        at_most: str | None = None,
    ) -> None:
        self.low, self.high, self.low_open, self.integer = low, high, low_open, integer
        self.optional, self.unit, self.at_most = optional, unit, at_most

    @property
    def kind(self) -> str:
        """``int`` or ``float``, with ``?`` when ``None`` is allowed."""
        return ("int" if self.integer else "float") + ("?" if self.optional else "")

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        integer = self.integer
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            expected = "an int" if integer else "a number"
            raise ConfigTypeError(f"option {name!r} must be {expected}, not {type(value).__name__} ({value!r})")
        if not math.isfinite(value):
            raise ConfigError(f"option {name!r} must be a finite number, not {value!r}")
        if (value <= self.low if self.low_open else value < self.low) or value > self.high:
            bound = f"> {_num(self.low)}" if self.low_open else f">= {_num(self.low)}"
            upper = f" and <= {_num(self.high)}" if self.high != math.inf else ""
            raise ConfigError(f"option {name!r} must be {bound}{upper}, not {value!r}")
        return int(value) if integer else float(value)

    def describe(self) -> str:
        low, high = _num(self.low), _num(self.high)
        if self.high == math.inf:
            bounds = f"> {low}" if self.low_open else f"≥ {low}"
        else:
            bounds = f"({low}, {high}]" if self.low_open else f"{low}\N{EN DASH}{high}"
        parts = [p for p in (self.unit, bounds) if p]
        if self.at_most:
            parts.append(f"≤ `{self.at_most}`")
        if self.optional:
            parts.append("or `None`")
        return ", ".join(parts)


def _num(value: float) -> str:
    return str(int(value)) if 1e6 <= value < math.inf else f"{value:g}"


class Text(Check):
    """A str without NUL; ``nonempty`` (what it must be, for the message) refuses a blank one."""

    __slots__ = ("blank_error", "nonempty", "optional", "secret", "strip")

    @property
    def kind(self) -> str:
        """``str``."""
        return "str"

    def __init__(
        self,
        *,
        optional: bool = True,
        secret: bool = False,
        nonempty: str = "",
        strip: bool = False,
        blank_error: type[ConfigError] = ConfigError,
    ) -> None:
        self.optional, self.secret, self.nonempty, self.strip, self.blank_error = (
            optional,
            secret,
            nonempty,
            strip,
            blank_error,
        )

    def __call__(self, name: str, value: Any) -> Any:
        if value is None:
            if self.optional:
                return None
            raise self.blank_error(f"option {name!r} must be {self.nonempty or 'a str'}, not None")
        if not isinstance(value, str):
            shown = "" if self.secret else f" ({value!r})"
            raise ConfigTypeError(f"option {name!r} must be a str, not {type(value).__name__}{shown}")
        if self.nonempty and not (value.strip() if self.strip else value):
            raise self.blank_error(f"option {name!r} must be {self.nonempty}, not {value!r}")
        if "\x00" in value:
            raise ConfigError(f"option {name!r} must not contain a NUL character")
        return value


class Flag(Check):
    """``True`` or ``False`` (``optional``: or ``None``, "decide for me")."""

    __slots__ = ("optional",)

    def __init__(self, *, optional: bool = False) -> None:
        self.optional = optional

    @property
    def kind(self) -> str:
        """``bool``, or ``bool?``."""
        return "bool?" if self.optional else "bool"

    def __call__(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if not isinstance(value, bool):
            expected = "True, False or None" if self.optional else "True or False"
            raise ConfigTypeError(f"option {name!r} must be {expected}, not {type(value).__name__} ({value!r})")
        return value


class Choice(Check):
    """One of a few strings, exactly as written."""

    __slots__ = ("choices",)

    def __init__(self, *choices: str) -> None:
        self.choices = choices

    @property
    def kind(self) -> str:
        """``choice:`` + the choices."""
        return "choice:" + ",".join(self.choices)

    def __call__(self, name: str, value: Any) -> Any:
        if value not in self.choices:
            expected = " or ".join(repr(c) for c in self.choices)
            raise ConfigError(f"option {name!r} must be {expected}, not {value!r}")
        return value

    def describe(self) -> str:
        return " | ".join(f'`"{c}"`' for c in self.choices)  # the table escapes the bars


class Backoff(Check):
    """A backoff strategy by name (any case) or a callable ``(attempt, previous_delay) -> delay``."""

    __slots__ = ("names",)

    @property
    def kind(self) -> str:
        """``str``: only the names come from text."""
        return "str"

    def __init__(self, *names: str) -> None:
        self.names = names

    def __call__(self, name: str, value: Any) -> Any:
        if callable(value):
            return value
        if isinstance(value, str) and value.lower() in self.names:
            return value.lower()
        expected = ", ".join(repr(n) for n in self.names)
        raise ConfigError(
            f"option {name!r} must be {expected} or a callable (attempt, previous) -> delay, not {value!r}"
        )

    def describe(self) -> str:
        return ", ".join(f'`"{n}"`' for n in self.names) + ", a callable"


class Callback(Check):
    """A callable or ``None``."""

    __slots__ = ()

    def __call__(self, name: str, value: Any) -> Any:
        if value is not None and not callable(value):
            raise ConfigTypeError(f"option {name!r} must be callable or None, not {type(value).__name__}")
        return value


class Duck(Check):
    """An object with the method ``method`` (or ``None``); ``what`` names it in the message."""

    __slots__ = ("method", "what")

    def __init__(self, method: str, what: str) -> None:
        self.method, self.what = method, what

    def __call__(self, name: str, value: Any) -> Any:
        if value is not None and not callable(getattr(value, self.method, None)):
            raise ConfigTypeError(f"option {name!r} must be {self.what}, not {type(value).__name__}")
        return value


class RandomGenerator(Check):
    """A :class:`random.Random` or ``None``."""

    __slots__ = ()

    def __call__(self, name: str, value: Any) -> Any:
        if value is not None and not isinstance(value, random.Random):
            raise ConfigTypeError(f"option {name!r} must be a random.Random, not {type(value).__name__}")
        return value


# pymysql.connect arguments the library sets itself; each maps to the option to use instead.
RESERVED_CONNECT_ARGS = {
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


class ConnectArgs(Check):
    """A dict of ``pymysql.connect`` arguments the library does not manage itself."""

    __slots__ = ()

    @property
    def kind(self) -> str:
        """``json``: an object."""
        return "json"

    def __call__(self, name: str, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigTypeError(f"option {name!r} must be a dict, not {type(value).__name__}")
        import inspect  # noqa: PLC0415 - only needed when connect_args are given

        import pymysql  # noqa: PLC0415

        known = set(inspect.signature(pymysql.connections.Connection.__init__).parameters) - {"self"}
        for key in value:
            if not isinstance(key, str):
                raise ConfigTypeError(f"option {name!r} keys must be str, not {type(key).__name__}")
            if key in RESERVED_CONNECT_ARGS:
                instead = RESERVED_CONNECT_ARGS[key]
                raise ConfigError(f"{name}[{key!r}] is managed by the library; use the option {instead!r}")
            if key not in known:
                raise ConfigError(f"{name}[{key!r}] is not an argument of pymysql.connect")
        return dict(value)


_OFF: tuple[object, ...] = (None, False, "", {})  # values that leave a pymysql.connect TLS argument unset


def check_tls_kept(provider: str, tls: Mapping[str, Any], connect_args: Mapping[str, Any]) -> None:
    """Refuse ``connect_args`` that would switch off or weaken the TLS a credentials provider requires.

    ``connect_args`` are merged over the provider's arguments (``tls``); an IAM token travels as a clear-text
    password, so they must not weaken it. ``provider`` names the provider's class in the message.
    """
    for key, value in connect_args.items():
        if (key == "ssl_disabled" and value) or (key in tls and tls[key] not in _OFF and value in _OFF):
            raise ConfigError(
                f"connect_args[{key!r}]={value!r} would weaken the TLS that option 'credentials' ({provider}) "
                "requires (its token is sent as a clear-text password); remove it from connect_args"
            )
    from .iam import tls_weakness  # noqa: PLC0415 - only with a credentials provider that requires TLS

    if tls_weakness(tls) is None:  # the provider verifies the server: so must the merged arguments
        problem = tls_weakness({**tls, **connect_args})
        if problem is not None:
            key, why = problem
            raise ConfigError(
                f"connect_args[{key!r}] {why}: it would weaken the verified TLS that option 'credentials' "
                f"({provider}) requires (its token is sent as a clear-text password); remove it from connect_args"
            )
