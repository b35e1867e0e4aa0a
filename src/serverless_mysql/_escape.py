"""Statement text without a round trip: placeholders bound as PyMySQL's cursor binds them, and SQL literals.

:func:`escape_any_mode` gives a literal that reads the same under any ``sql_mode`` (no connection needed).
"""

from __future__ import annotations

import re
import warnings

import pymysql
import pymysql.converters

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (loaded in Lambda's init phase)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["bind", "escape_any_mode"]


def bind(conn: Any, sql: str, args: Any) -> str:
    """``sql % escaped(args)`` with PyMySQL cursor's rules: a mapping for ``%(name)s``, a sequence for ``%s``."""
    escape = conn.escape
    if isinstance(args, dict):
        bound: Any = {key: escape(item) for key, item in args.items()}
    elif isinstance(args, list | tuple):
        bound = tuple(map(escape, args))
    else:
        warnings.warn(  # as PyMySQL's cursor, whose rule this is
            "single argument is deprecated and will be removed in the next version.", DeprecationWarning, stacklevel=4
        )
        bound = escape(args)
    try:
        return str(sql % bound)
    except TypeError as exc:
        raise pymysql.err.ProgrammingError(str(exc)) from exc


_PLAIN_TEXT = re.compile(r"[^\\\x00-\x1f]*")  # no backslash, no control character


def escape_any_mode(value: object) -> str:
    """An SQL literal that means the same whether or not the session has ``NO_BACKSLASH_ESCAPES``."""
    if isinstance(value, str):
        if _PLAIN_TEXT.fullmatch(value):
            return "'" + value.replace("'", "''") + "'"  # doubled quotes work in both modes
        return "_utf8mb4 X'" + value.encode("utf-8").hex() + "'"
    if isinstance(value, bytes | bytearray | memoryview):
        return "X'" + bytes(value).hex() + "'"
    if isinstance(value, list | tuple | set | frozenset):
        return "(" + ",".join(escape_any_mode(item) for item in value) + ")"
    return str(pymysql.converters.escape_item(value, "utf8mb4"))  # numbers, None, dates: no backslashes
