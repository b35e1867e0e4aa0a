"""SQLAlchemy (Core and ORM) on the client's managed connection: ``create_engine(db)``.

Needs the ``sqlalchemy`` extra (``pip install 'serverless-mysql[sqlalchemy]'``); ``import serverless_mysql`` does
not import it. See docs/sqlalchemy.md for a complete ORM handler.

How it fits together:

* **One server connection.** Every checkout gets a stand-in for the client (:class:`ClientConnection`, one per
  checked-out connection, so that each SQLAlchemy connection keeps its own autocommit mode and isolation level;
  a checked-in one is reused, after SQLAlchemy's reset, so the pool's ``connect`` event runs once per stand-in
  made, not per checkout); every ``Session``
  and ``engine.connect()`` of a client uses the client's one server connection. Every checkout runs the client's
  liveness check (and its reconnect, connect retries and deadline) unless a transaction is open; check-in never
  closes anything.
* **Statements** go through the client like ``db.query()``: the liveness check, the re-run rules after a lost
  connection, the retries of deadlocks outside transactions and the invocation's deadline all apply.
* **Transactions.** The managed connection runs with autocommit on, and SQLAlchemy's MySQL dialects send no
  BEGIN. So an engine transaction (``engine.begin()``, a ``Session``'s) is made real by sending
  ``START TRANSACTION`` when SQLAlchemy begins it (in practice right before its first statement: SQLAlchemy begins
  lazily) and ``COMMIT``/``ROLLBACK`` when it ends: two statements per transaction, none for a transaction that
  never ran a statement, none for the pool's reset on check-in. The transaction holds the client like
  ``db.transaction()`` does (the client's rules hold: a connection lost inside it raises
  :class:`~serverless_mysql.TransactionAbortedError`, never a silent reconnect; ``@with_mysql`` rolls back one left
  open). ``db.query()`` in the same thread while it is open runs inside it. ``isolation_level="AUTOCOMMIT"``
  (engine or execution option) runs statements without a transaction: no extra statement at all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy
from pymysql.constants import CLIENT
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.mysql.pymysql import MySQLDialect_pymysql
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import Pool

from ._sqla_connection import ClientConnection
from .client import ServerlessMySQL
from .errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.engine.interfaces import (
        DBAPIConnection,
        DBAPICursor,
        ExecutionContext,
        IsolationLevel,
        _DBAPIMultiExecuteParams,
        _DBAPISingleExecuteParams,
    )
    from sqlalchemy.pool import ConnectionPoolEntry

__all__ = ["ClientConnection", "ServerlessMySQLDialect", "create_engine"]

logger = logging.getLogger(__name__)

# Arguments that would configure a second, SQLAlchemy-made connection: the client's options do that.
# fmt: off
_REFUSED = frozenset({
    "async_creator", "connect_args", "creator", "echo_pool", "max_overflow", "module", "pool", "poolclass",
    "pool_logging_name", "pool_pre_ping", "pool_recycle", "pool_reset_on_return", "pool_size", "pool_timeout",
    "pool_use_lifo",
})
# fmt: on
_ENGINE_ATTR = "_serverless_mysql_engine"  # (engine, its arguments) on the client: one engine per client
_engines_lock = threading.Lock()


def _client_connection(dbapi_connection: object) -> ClientConnection:
    """The :class:`ClientConnection` behind a pool proxy (or the object itself)."""
    raw = getattr(dbapi_connection, "dbapi_connection", dbapi_connection)
    if not isinstance(raw, ClientConnection):
        raise TypeError("not a connection of serverless_mysql.sqlalchemy.create_engine(db)")
    return raw


class ServerlessMySQLDialect(MySQLDialect_pymysql):
    """SQLAlchemy's PyMySQL dialect on the client's managed connection, with real transactions (see the module)."""

    driver = "serverless_mysql"
    supports_statement_cache = True
    supports_server_side_cursors = False  # rows are read in full; stream_results / yield_per still work
    supports_sane_rowcount = True  # set per engine: only with CLIENT.FOUND_ROWS (see create_engine)
    supports_sane_multi_rowcount = True

    def connect(self, *cargs: Any, **cparams: Any) -> DBAPIConnection:
        """Refused: the engine's only connection is the client's."""
        raise TypeError("use serverless_mysql.sqlalchemy.create_engine(db): the connection is the client's")

    def on_connect(self) -> None:  # type: ignore[override]
        """Nothing (the PyMySQL dialect sends SET NAMES; the client's handshake already chose the character set)."""
        return

    # ---- first use: SQLAlchemy's checks of the server, in one statement instead of five (once per environment) --
    _startup: dict[str, Any] | None = None  # the settings initialize() reads, fetched on first need while it runs

    def initialize(self, connection: Connection) -> None:
        """SQLAlchemy's first-connect checks; the settings they read come from one statement."""
        self._startup = {}
        try:
            super().initialize(connection)
        finally:
            self._startup = None

    def _startup_value(self, dbapi_connection: Any, name: str) -> Any:
        startup = self._startup
        assert startup is not None
        if not startup:
            # the variable SQLAlchemy's own get_isolation_level() reads
            new = self._is_mysql and self.server_version_info >= (5, 7, 20)
            variable = "transaction_isolation" if new else "tx_isolation"
            cursor = dbapi_connection.cursor()
            cursor.execute(f"SELECT DATABASE(), @@{variable}, @@sql_mode, @@lower_case_table_names")
            row = cursor.fetchone()
            startup.update(zip(("database", "isolation", "sql_mode", "lower_case_table_names"), row, strict=True))
        return startup[name]

    def _get_server_version_info(self, connection: Any) -> tuple[int, ...]:
        """From the handshake (PyMySQL's dialect asks with ``SELECT VERSION()``)."""
        return self._parse_server_version(_client_connection(connection.connection).get_server_info())

    def _get_default_schema_name(self, connection: Connection) -> str:
        if self._startup is None:
            return super()._get_default_schema_name(connection)
        return self._startup_value(connection.connection, "database")  # type: ignore[no-any-return]

    def get_default_isolation_level(self, dbapi_conn: DBAPIConnection) -> IsolationLevel:
        """The server's default level (read with the other first-use settings)."""
        if self._startup is None:
            return super().get_default_isolation_level(dbapi_conn)  # type: ignore[no-untyped-call,no-any-return]
        value = self._startup_value(dbapi_conn, "isolation")
        text = value.decode() if isinstance(value, bytes) else str(value)
        return text.upper().replace("-", " ")  # type: ignore[return-value]  # REPEATABLE-READ -> REPEATABLE READ

    def _fetch_setting(self, connection: Connection, setting_name: str) -> str | None:
        if self._startup is None or setting_name not in ("sql_mode", "lower_case_table_names"):
            return super()._fetch_setting(connection, setting_name)
        value = self._startup_value(connection.connection, setting_name)
        return None if value is None else (value.decode() if isinstance(value, bytes) else str(value))

    # ---- transactions ------------------------------------------------------------------------------------------
    def do_begin(self, dbapi_connection: Any) -> None:
        """START TRANSACTION (the managed connection autocommits outside transactions)."""
        _client_connection(dbapi_connection).begin()

    def do_commit(self, dbapi_connection: Any) -> None:
        """COMMIT the transaction this SQLAlchemy connection began (nothing when it began none)."""
        _client_connection(dbapi_connection).end(commit=True)

    def do_rollback(self, dbapi_connection: Any) -> None:
        """ROLLBACK the transaction this SQLAlchemy connection began (nothing when it began none)."""
        _client_connection(dbapi_connection).end(commit=False)

    def do_close(self, dbapi_connection: DBAPIConnection) -> None:
        """Nothing: the connection is the client's."""

    def do_terminate(self, dbapi_connection: DBAPIConnection) -> None:
        """Nothing: the connection is the client's."""

    def do_begin_twophase(self, connection: Any, xid: Any) -> None:
        """Refused: XA transactions cannot survive the client's reconnects."""
        raise NotImplementedError("two-phase (XA) transactions are not supported on the managed connection")

    def set_isolation_level(self, dbapi_connection: DBAPIConnection, level: IsolationLevel) -> None:
        """Remember the level, for this SQLAlchemy connection only (no statement; AUTOCOMMIT: no transactions)."""
        conn = _client_connection(dbapi_connection)
        conn.autocommit_mode = level == "AUTOCOMMIT"
        default = getattr(self, "default_isolation_level", None)  # unknown before the first connect's checks
        conn.isolation = None if level in ("AUTOCOMMIT", default) else level

    def get_isolation_level(self, dbapi_connection: DBAPIConnection) -> IsolationLevel:
        """The level the next transaction gets (the server's default unless one was set)."""
        conn = _client_connection(dbapi_connection)
        if conn.autocommit_mode:
            return "AUTOCOMMIT"
        if conn.isolation is not None:
            return conn.isolation  # type: ignore[return-value]  # validated by SQLAlchemy
        return super().get_isolation_level(dbapi_connection)

    def detect_autocommit_setting(self, dbapi_conn: DBAPIConnection) -> bool:
        """True when the connection runs without transactions (``isolation_level="AUTOCOMMIT"``)."""
        return _client_connection(dbapi_conn).autocommit_mode

    # ---- statements --------------------------------------------------------------------------------------------
    def do_execute(
        self,
        cursor: DBAPICursor,
        statement: str,
        parameters: _DBAPISingleExecuteParams | None,
        context: ExecutionContext | None = None,
    ) -> None:
        """Run one statement, after checking that its transaction is still the client's."""
        _check(context)
        cursor.execute(statement, parameters)

    def do_execute_no_params(
        self, cursor: DBAPICursor, statement: str, context: ExecutionContext | None = None
    ) -> None:
        """Run one statement without parameters, after the same check."""
        _check(context)
        cursor.execute(statement)

    def do_executemany(
        self,
        cursor: DBAPICursor,
        statement: str,
        parameters: _DBAPIMultiExecuteParams,
        context: ExecutionContext | None = None,
    ) -> None:
        """Run a statement per parameter set, after the same check."""
        _check(context)
        super().do_executemany(cursor, statement, parameters, context)


def _check(context: ExecutionContext | None) -> None:
    root = getattr(context, "root_connection", None)
    owner = getattr(root, "connection", None) if root is not None else None
    if owner is not None:
        _client_connection(owner).check()


registry.register("mysql.serverless_mysql", __name__, "ServerlessMySQLDialect")


class ClientPool(Pool):
    """The engine's pool: a :class:`ClientConnection` of the client per checked-out connection, nothing ever closed.

    Not SQLAlchemy's ``StaticPool``, which hands every checkout the same DB-API connection: SQLAlchemy sets the
    isolation level (and AUTOCOMMIT) on the DB-API connection, so one connection's setting would be every other's.
    Checked-in stand-ins are kept and handed out again (SQLAlchemy resets their isolation level at check-in): a new
    one, and the pool's ``connect`` event, only when every one is checked out.
    """

    def __init__(self, client: ServerlessMySQL, **kwargs: Any) -> None:
        self._client = client
        self._idle: list[ConnectionPoolEntry] = []  # checked in; list.pop/append are atomic
        super().__init__(lambda: ClientConnection(client), **kwargs)  # type: ignore[arg-type]  # a stand-in

    def status(self) -> str:
        """A one-line description (SQLAlchemy's pool API)."""
        return f"ClientPool: the managed connection of {self._client!r}"

    def recreate(self) -> ClientPool:
        """The same pool again (``engine.dispose()``): it still holds nothing of its own."""
        return self.__class__(
            self._client,
            reset_on_return=self._reset_on_return,
            echo=self.echo,
            logging_name=self._orig_logging_name,
            _dispatch=self.dispatch,
            dialect=self._dialect,
        )

    def dispose(self) -> None:
        """Forget the checked-in stand-ins; nothing is closed: the connection is the client's."""
        self._idle.clear()

    def _do_get(self) -> ConnectionPoolEntry:
        client = self._client
        if not client.in_transaction:  # inside one, a lost connection must fail its next statement instead
            client.connect()  # the liveness check; a reconnect with the client's retries, within the deadline
        try:
            return self._idle.pop()
        except IndexError:  # every stand-in is checked out
            return self._create_connection()

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        self._idle.append(record)


def create_engine(db: ServerlessMySQL, **engine_kwargs: Any) -> Engine:
    """The SQLAlchemy engine whose only connection is ``db``'s managed connection; the same engine every call.

    ``engine_kwargs`` go to :func:`sqlalchemy.create_engine` (``echo``, ``isolation_level``,
    ``execution_options``, ``json_serializer``, ...), except the pool and connection arguments: the client's
    options configure the connection. A second call for the same client must pass the same arguments.
    Cheap after the first call (a lookup), so a handler may call it on every invocation.

    Raises
    ------
    ConfigError
        A pool or connection argument, or arguments that differ from the first call's (the message names them).
    """
    if not isinstance(db, ServerlessMySQL):
        raise TypeError(f"create_engine() takes a ServerlessMySQL client, not {type(db).__name__}")
    refused = sorted(_REFUSED.intersection(engine_kwargs))
    if refused:
        raise ConfigError(
            f"create_engine(db) does not take {', '.join(refused)}: the engine's only connection is the client's "
            "managed connection (configure it with the client's options)"
        )
    with _engines_lock:
        known: tuple[Engine, dict[str, Any]] | None = getattr(db, _ENGINE_ATTR, None)
        if known is not None:
            engine, given = known
            differ = _differing(given, engine_kwargs)
            if differ:
                raise ConfigError(
                    f"create_engine() was called for this client before with other engine arguments "
                    f"({', '.join(differ)}); a client has one engine: pass the same arguments (or derive one with "
                    "engine.execution_options(...))"
                )
            return engine
        engine = _build(db, engine_kwargs)
        setattr(db, _ENGINE_ATTR, (engine, dict(engine_kwargs)))
        return engine


def _differing(first: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    names = set(first) | set(now)
    missing = object()
    out = []
    for name in sorted(names):
        a, b = first.get(name, missing), now.get(name, missing)
        if a is b:
            continue
        try:
            same = bool(a == b)
        except Exception:  # an argument whose == raises counts as different
            same = False
        if not same:
            out.append(name)
    return out


def _build(db: ServerlessMySQL, engine_kwargs: dict[str, Any]) -> Engine:
    config = db.get_config()
    url = URL.create("mysql+serverless_mysql", host=config.get("host"), database=config.get("database"))
    engine = sqlalchemy.create_engine(url, pool=ClientPool(db), **engine_kwargs)
    # The ORM checks "rows matched" of its UPDATEs and DELETEs; MySQL reports rows *changed* unless the connection
    # was opened with CLIENT.FOUND_ROWS (which the client does not set: it would change db.query()'s counts).
    flags = int((config.get("connect_args") or {}).get("client_flag", 0) or 0)
    sane = bool(flags & CLIENT.FOUND_ROWS)
    engine.dialect.supports_sane_rowcount = sane
    engine.dialect.supports_sane_multi_rowcount = sane
    logger.debug("engine created", extra={"event": "sqlalchemy_engine", "sane_rowcount": sane})
    return engine
