"""Where ``end()`` housekeeping reads the processlist, and how it counts it: the statement, or ``SHOW PROCESSLIST``.

A leaf module of :mod:`~serverless_mysql.housekeeping` (which re-exports these names).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

__all__ = [
    "INFORMATION_SCHEMA_PROCESSLIST",
    "PERFORMANCE_SCHEMA_PROCESSLIST",
    "PROCESSLIST_FALLBACK_ERRORS",
    "SHOW_PROCESSLIST_COLUMNS",
    "SHOW_PROCESSLIST_MAX",
    "has_performance_schema_processlist",
    "usage_row",
    "usage_sql",
]

# The user actually logged in as (even after rotation), as the processlist's USER column shows it. USER() is
# 'name@client-host'; a host never contains '@' but a name may ('svc@corp'), so cut at the *last* '@'.
# (CURRENT_USER() is the matched account instead: '' for an anonymous account, never what the processlist shows.)
_USER = "LEFT(USER(), CHAR_LENGTH(USER()) - LOCATE('@', REVERSE(USER())))"
# Threads that are no client's connection, whichever way the processlist is read: never counted.
_SYSTEM_COMMANDS = ("Daemon", "Binlog Dump", "Binlog Dump GTID")
_SYSTEM_USERS = ("system user", "event_scheduler")
_EXCLUDED = (
    f"p.COMMAND NOT IN ({', '.join(repr(c) for c in _SYSTEM_COMMANDS)}) "
    f"AND p.USER NOT IN ({', '.join(repr(u) for u in _SYSTEM_USERS)})"
)
# Literals are single-quoted: servers running ANSI_QUOTES reject double quotes (serverless-mysql #66).
# ``self_seen`` is 1 when the table shows this very connection: 0 means the source is not usable (MySQL's
# performance_schema.processlist exists but is empty while the Performance Schema is off).
_USAGE_SQL = (
    "SELECT {limits}COUNT(*) AS total, "
    f"COALESCE(SUM(p.USER = {_USER}), 0) AS user_total, "
    "COALESCE(SUM(p.ID = CONNECTION_ID()), 0) AS self_seen, "
    f"COALESCE(SUM(p.USER = {_USER} AND p.COMMAND <> 'Sleep'), 0) AS user_running, "
    f"GROUP_CONCAT(IF(p.USER = {_USER} AND p.COMMAND = 'Sleep' AND p.ID <> CONNECTION_ID() AND p.TIME >= %s, "
    "CONCAT(p.ID, ':', p.TIME), NULL) ORDER BY p.TIME DESC SEPARATOR ',') AS zombies "
    f"FROM {{processlist}} p WHERE {_EXCLUDED}"
)
_LIMITS = "@@max_connections AS max_connections, @@max_user_connections AS max_user_connections, "

# Same columns (ID, USER, HOST, DB, COMMAND, TIME, STATE, INFO) and the same visibility rules (PROCESS shows every
# user's threads). information_schema.PROCESSLIST is deprecated from MySQL 8.0.35 and walks all threads under a
# global mutex, on a busy server exactly when the fleet is under pressure; performance_schema.processlist does not.
INFORMATION_SCHEMA_PROCESSLIST = "information_schema.PROCESSLIST"
PERFORMANCE_SCHEMA_PROCESSLIST = "performance_schema.processlist"

PROCESSLIST_FALLBACK_ERRORS = frozenset({1044, 1054, 1142, 1146})
"""Errors of the statement on performance_schema.processlist that mean "not usable here, read information_schema":
access denied to the database (1044) or table (1142), unknown column (1054), no such table (1146)."""


def usage_sql(*, with_limits: bool, performance_schema: bool = False) -> str:
    """The housekeeping statement; its one parameter is ``zombie_min_timeout`` in whole seconds.

    Parameters
    ----------
    with_limits
        Also read ``@@max_connections`` and ``@@max_user_connections`` (when the cached limits are stale).
    performance_schema
        Read ``performance_schema.processlist`` instead of ``information_schema.PROCESSLIST``.

    Returns
    -------
    str
        One ``SELECT`` returning one row: ``total``, ``user_total``, ``self_seen``, ``zombies`` (and the limits).
    """
    source = PERFORMANCE_SCHEMA_PROCESSLIST if performance_schema else INFORMATION_SCHEMA_PROCESSLIST
    return _USAGE_SQL.format(limits=_LIMITS if with_limits else "", processlist=source)


SHOW_PROCESSLIST_MAX = 200
"""Up to this ``max_connections`` a scan reads ``SHOW PROCESSLIST`` and counts here (:func:`usage_row`).

On MariaDB with 41 connections it costs the server 50-60 us where the statement on ``information_schema.PROCESSLIST``
costs 340-650 us (that one fills a temporary table first), and the client 190-200 us instead of 110 us (the rows read
by :meth:`~serverless_mysql._driver.DriverConnection.columns`: 320-350 us decoded by PyMySQL); at 151 connections the
server 170 us against 1,300, the client 730 us against 160; at 1,000 connections the server 570-730 us against
2,100-2,500, but the client 3.7 ms: larger servers get the statement. (``bench/server_cost.py``.)"""


SHOW_PROCESSLIST_COLUMNS = ("Id", "User", "Command", "Time")
"""The columns of ``SHOW PROCESSLIST`` that :func:`usage_row` counts, in this order."""
_SYSTEM_COMMAND_BYTES = frozenset(c.encode() for c in _SYSTEM_COMMANDS)
_SYSTEM_USER_BYTES = frozenset(u.encode() for u in _SYSTEM_USERS)


def usage_row(rows: Sequence[Sequence[bytes | None]], own_id: int, zombie_min_timeout: int) -> dict[str, Any]:
    """The housekeeping statement's row (without the limits), counted from ``SHOW PROCESSLIST``'s ``rows``.

    Each row holds :data:`SHOW_PROCESSLIST_COLUMNS` as the server sent them (bytes, NULL as ``None``). The user is
    the one of this connection's own row (``own_id``), as ``USER()`` is in the statement; system threads never
    count, nor do rows without a user or a command (the statement's ``NOT IN`` drops a NULL); zombies are the
    user's other ``Sleep`` connections idle ``zombie_min_timeout`` seconds or more, oldest first.
    """
    own = str(own_id).encode()
    user = next((row[1] for row in rows if row[0] == own), None)
    total = user_total = running = 0
    zombies: list[tuple[int, int]] = []
    for thread_id, name, command, idle in rows:
        if name is None or command is None or name in _SYSTEM_USER_BYTES or command in _SYSTEM_COMMAND_BYTES:
            continue
        total += 1
        if user is None or name != user:
            continue
        user_total += 1
        if command != b"Sleep":
            running += 1
        elif thread_id != own and (seconds := int(idle or 0)) >= zombie_min_timeout:
            zombies.append((seconds, int(thread_id or 0)))
    zombies.sort(reverse=True)
    text = ",".join(f"{thread_id}:{seconds}" for seconds, thread_id in zombies) or None
    return {
        "total": total,
        "user_total": user_total,
        "self_seen": int(user is not None),
        "user_running": running,
        "zombies": text,
    }


def has_performance_schema_processlist(server_version: str) -> bool:
    """Whether a server reporting ``server_version`` (the handshake's) has ``performance_schema.processlist``.

    MySQL has it from 5.7.39 in the 5.7 series and from 8.0.22 on; MariaDB's performance_schema has none. Whether
    it is *usable* (the Performance Schema on, the table readable) is told by the statement itself: see
    :data:`PROCESSLIST_FALLBACK_ERRORS` and ``self_seen``.

    Parameters
    ----------
    server_version
        For example ``"8.0.35"``, ``"8.0.28-0ubuntu0.20.04.3"`` or ``"5.5.5-10.11.6-MariaDB"``.

    Returns
    -------
    bool
        False for MariaDB, older MySQL and anything unparsable.
    """
    if "mariadb" in server_version.lower():
        return False
    try:
        version = tuple(int(part) for part in server_version.split("-", 1)[0].split(".")[:3])  # "8.0.28-log"
    except ValueError:
        return False
    return len(version) == 3 and ((5, 7, 39) <= version < (8, 0, 0) or version >= (8, 0, 22))
