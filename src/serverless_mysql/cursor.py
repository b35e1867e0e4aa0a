"""``db.cursor()``: a DB-API 2.0 cursor on the managed connection, for code written against PyMySQL's.

Every ``execute()`` is one :meth:`ServerlessMySQL.query`-like statement: the liveness check (and a reconnect when
the connection died while idle), the re-run rules after a lost connection, the retries of deadlocks and lock
waits outside transactions, and the deadline all apply. The rows are read in full (PyMySQL's default, buffered
cursor does the same), so the connection is free again as soon as ``execute()`` returns and ``fetch*()`` never
touches the network. Rows are dicts, like :meth:`~ServerlessMySQL.query`'s; :class:`TupleCursor` gives tuples.

Inside :meth:`~ServerlessMySQL.transaction` (or an engine transaction, :mod:`serverless_mysql.sqlalchemy`) the
cursor's statements are part of the transaction, like ``db.query()``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import pymysql.cursors

from ._escape import bind as _bind  # PyMySQL's cursor rule for binding one parameter set, as db.query() uses it

if TYPE_CHECKING:
    from pymysql.connections import Connection

    from ._driver import DriverConnection
    from ._txcontrol import TransactionControl

__all__ = ["Cursor", "TupleCursor"]

_MAX_STATEMENT = pymysql.cursors.Cursor.max_stmt_length  # bytes per multi-row INSERT, PyMySQL's (1,024,000)


class _Result:
    """What one statement returned, read in full on the connection."""

    __slots__ = ("description", "lastrowid", "rowcount", "rows")

    def __init__(self, rows: list[Any], rowcount: int, lastrowid: int, description: Any) -> None:
        self.rows = rows
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        self.description = description


class Cursor:
    """A PyMySQL-compatible cursor on the client's managed connection (dict rows); get one with ``db.cursor()``.

    Supports ``execute``, ``executemany``, ``fetchone``, ``fetchmany``, ``fetchall``, iteration, ``rowcount``,
    ``lastrowid``, ``description``, ``rownumber``, ``arraysize``, ``close`` and ``with db.cursor() as cur:``.
    One result set per statement (no ``callproc``/``nextset`` results).
    """

    _pymysql_cursor: ClassVar[type[pymysql.cursors.Cursor]] = pymysql.cursors.DictCursor

    def __init__(self, client: TransactionControl) -> None:
        self._client = client
        self._rows: list[Any] = []
        self.rownumber = 0
        self.arraysize = 1
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.description: tuple[tuple[Any, ...], ...] | None = None
        self._is_closed = False

    @property
    def connection(self) -> TransactionControl:
        """The client this cursor runs its statements on."""
        return self._client

    # ---------------------------------------------------------------------------------------------- statements
    def execute(self, query: str, args: Any = None) -> int:
        """Run one statement (``%s`` / ``%(name)s`` placeholders); returns the affected (or returned) row count."""
        self._check_open()
        result = self._client._tx_host.statement(query, args, self._run, idempotent=None)
        self._store(result)
        return result.rowcount

    def executemany(self, query: str, args: Iterable[Any]) -> int | None:
        """Run ``query`` once per parameter set, exactly as PyMySQL's ``executemany`` does; returns the rows.

        ``INSERT``/``REPLACE ... VALUES (...)`` goes as multi-row statements of at most 1,024,000 bytes each, the
        statement's text outside the ``VALUES`` row formatted with no arguments (``%%`` is ``%``); anything else
        runs statement by statement. Each statement follows the client's rules on its own: after a lost
        connection, statements already done stay done (autocommit) and the error names the one that failed.
        """
        self._check_open()
        params = list(args)
        if not params:
            return None
        match = pymysql.cursors.RE_INSERT_VALUES.match(query)  # INSERT ... VALUES (...) [AS ...] [ON DUPLICATE ...]
        if match is None:
            self.rowcount = sum(self.execute(query, one) for one in params)
            return self.rowcount
        prefix, values, postfix = match.group(1) % (), match.group(2).rstrip(), (match.group(3) or "") % ()
        run = self._run_rows(prefix, values, postfix, params)
        total = start = 0
        while start < len(params):
            result, start = self._client._tx_host.statement(prefix, start, run, idempotent=False)
            self._store(result)
            total += result.rowcount
        self.rowcount = total
        return total

    def _run(self, conn: Connection[Any], sql: str, args: Any) -> _Result:
        with conn.cursor(self._pymysql_cursor) as cur:
            cur.execute(sql, args)
            return _Result(list(cur.fetchall()), cur.rowcount, cur.lastrowid, cur.description)

    def _run_rows(
        self, prefix: str, values: str, postfix: str, params: list[Any]
    ) -> Callable[[DriverConnection, str, int], tuple[_Result, int]]:
        """One multi-row statement from ``params[start]`` on, cut where PyMySQL cuts it; returns where it stopped."""

        def run(conn: DriverConnection, sql: str, start: int) -> tuple[_Result, int]:
            encoding = conn.encoding
            tail = postfix.encode(encoding)
            statement = bytearray(prefix.encode(encoding))
            statement += _bind(conn, values, params[start]).encode(encoding)
            end = start + 1
            while end < len(params):
                row = _bind(conn, values, params[end]).encode(encoding)
                if len(statement) + len(row) + len(tail) + 1 > _MAX_STATEMENT:
                    break
                statement += b"," + row
                end += 1
            with conn.cursor(self._pymysql_cursor) as cur:
                cur.execute(bytes(statement + tail))  # type: ignore[call-overload]  # bytes go as they are (as PyMySQL's)
                return _Result(list(cur.fetchall()), cur.rowcount, cur.lastrowid, cur.description), end

        return run

    def _store(self, result: _Result) -> None:
        self._rows = result.rows
        self.rownumber = 0
        self.rowcount = result.rowcount
        self.lastrowid = result.lastrowid
        self.description = result.description

    # ---------------------------------------------------------------------------------------------- rows
    def fetchone(self) -> Any:
        """The next row, or ``None``."""
        self._check_open()
        if self.rownumber >= len(self._rows):
            return None
        row = self._rows[self.rownumber]
        self.rownumber += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[Any]:
        """Up to ``size`` (default ``arraysize``) more rows."""
        self._check_open()
        end = self.rownumber + (self.arraysize if size is None else size)
        rows = self._rows[self.rownumber : end]
        self.rownumber = min(end, len(self._rows))
        return rows

    def fetchall(self) -> list[Any]:
        """Every remaining row."""
        self._check_open()
        rows = self._rows[self.rownumber :]
        self.rownumber = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchone, None)

    def nextset(self) -> None:
        """No further result sets: one statement, one result."""
        self._check_open()

    def setinputsizes(self, *args: Any) -> None:
        """Does nothing (DB-API)."""

    def setoutputsizes(self, *args: Any) -> None:
        """Does nothing (DB-API)."""

    # ---------------------------------------------------------------------------------------------- life
    def close(self) -> None:
        """Drop the rows; the connection stays open (it is the client's)."""
        self._is_closed = True
        self._rows = []

    def __enter__(self) -> Cursor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._is_closed:
            raise pymysql.err.ProgrammingError("Cursor closed")


class TupleCursor(Cursor):
    """Like :class:`Cursor`, with rows as tuples (what SQLAlchemy expects of a DB-API cursor)."""

    _pymysql_cursor = pymysql.cursors.Cursor
