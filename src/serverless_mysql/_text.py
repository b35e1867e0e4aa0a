"""Option values from text: ``SERVERLESS_MYSQL_*`` variables and ``mysql://`` URL query parameters.

The one place that says which words are true, false and "no value", so that a variable and a URL parameter of
the same option read the same text the same way.
"""

from __future__ import annotations

import math

from .errors import ConfigError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FALSE_WORDS", "NONE_WORDS", "TRUE_WORDS", "from_text", "parse_bool"]

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
NONE_WORDS = frozenset({"", "none", "null", "auto"})
"""Words an optional value (a kind ending in ``?``) reads as ``None``."""


def parse_bool(text: str) -> bool | None:
    """``True``/``False`` for the words of :data:`TRUE_WORDS`/:data:`FALSE_WORDS` (any case), else ``None``."""
    low = text.strip().lower()
    if low in TRUE_WORDS:
        return True
    if low in FALSE_WORDS:
        return False
    return None


def from_text(kind: str, raw: str, *, what: str, show: bool = True) -> Any:
    """``raw`` converted to the option kind ``kind``; a bad value raises :class:`ConfigError` naming ``what``.

    Parameters
    ----------
    kind
        ``str``, ``int``, ``float``, ``bool``, one of those with ``?`` (also takes a word of :data:`NONE_WORDS`),
        ``json`` (an object) or ``choice:a,b`` (case-insensitive).
    raw
        The text as given.
    what
        Names the source in messages: ``"environment variable SERVERLESS_MYSQL_PORT"``, ``"url parameter 'port'"``.
    show
        Whether the message may quote ``raw`` (never for secrets).
    """
    text = raw.strip()
    shown = f", not {raw!r}" if show else ""
    optional = kind.endswith("?")
    if optional:
        if text.lower() in NONE_WORDS:
            return None
        kind = kind[:-1]
    if kind == "str":
        return raw
    if kind == "bool":
        value = parse_bool(text)
        if value is None:
            extra = ", or none/auto" if optional else ""
            raise ConfigError(f"{what} must be a boolean (true/false, 1/0, yes/no or on/off{extra}){shown}")
        return value
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{what} must be an integer{shown}") from None
    if kind == "float":
        try:
            number = float(text)
        except ValueError:
            raise ConfigError(f"{what} must be a number (seconds or ratio){shown}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{what} must be a finite number{shown}")
        return number
    if kind == "json":
        return _json_object(raw, what)
    if kind.startswith("choice:"):
        choices = kind.split(":", 1)[1].split(",")
        if text.lower() not in choices:
            raise ConfigError(f"{what} must be one of {', '.join(choices)}{shown}")
        return text.lower()
    raise AssertionError(f"unknown kind {kind!r}")  # pragma: no cover - kinds come from the option table


def _json_object(raw: str, what: str) -> dict[str, Any]:
    import json  # noqa: PLC0415 - only when such a value is given

    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        # NOTE: position only: the message of a JSON error may quote the text (a password in connect_args).
        raise ConfigError(f"{what} must be a JSON object (error at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a JSON object, not a JSON {type(value).__name__}")
    return value
