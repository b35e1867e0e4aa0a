"""The managed client: one lazily opened PyMySQL connection per instance, kept alive across warm invocations.

The public API lives here; the layers under it each have a module of their own (dependencies run one way, down):

- :mod:`serverless_mysql._txcontrol`: transactions on the session (START, COMMIT, ROLLBACK, exclusivity);
- :mod:`serverless_mysql._session`: the connection state, the lock, the deadline, and the layers a statement goes
  through (transaction guard, lost-connection re-run, transient retry, deadline, execute);
- :mod:`serverless_mysql._connect`: opening a connection (credentials, waiting for a slot, timeouts);
- :mod:`serverless_mysql._housekeeping_io`: the statements ``end()`` runs (measure, kill, idle timeout);
- :mod:`serverless_mysql.retry` and :mod:`serverless_mysql.pressure`: the policies (what to retry, how long to wait);
- :mod:`serverless_mysql._driver`: PyMySQL, the only module that touches its internals.
"""

from __future__ import annotations

import logging

from ._connect import describe
from ._driver import DriverConnection, escape_any_mode
from ._housekeeping_io import HousekeepingIO
from ._record import replace
from ._txcontrol import TransactionControl
from .results import Rows, Stats

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

    from pymysql.connections import Connection

    from .cursor import Cursor
    from .transactions import Transaction

__all__ = ["Rows", "ServerlessMySQL", "Stats", "is_plain_read"]

logger = logging.getLogger(__name__)

_RUN = DriverConnection.run  # how query() runs a statement (a cursor or the SQLAlchemy engine bring their own)


def is_plain_read(sql: str, server: str | None = None) -> bool:
    """True for a statement that provably has no side effect, so running it twice is harmless.

    A ``SELECT``/``SHOW``/``DESCRIBE``/``EXPLAIN`` without locking clauses or ``INTO`` that calls no function but
    side-effect-free built-ins of ``server`` (its version string, as ``get_client().get_server_info()`` gives it;
    ``None``: built-ins every supported server has), see :mod:`serverless_mysql._statements`.
    """
    from ._statements import is_plain_read as classify  # noqa: PLC0415 - only needed after a lost connection

    return classify(sql, server)


class ServerlessMySQL(TransactionControl):
    """A MySQL/MariaDB client made for AWS Lambda; every option is in docs/options.md.

    Example:
    -------
    >>> db = ServerlessMySQL(host="db.example.com", user="app", password="...", database="shop")  # doctest: +SKIP
    >>> rows = db.query("SELECT id, name FROM items WHERE id = %s", (42,))  # doctest: +SKIP
    >>> db.end()  # doctest: +SKIP
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._housekeeping = HousekeepingIO(
            self._config,
            housekeeper=self._housekeeper,
            pressure=self._pressure,
            stats=self._stats,
            events=self._events,
            clock=self._clock,
            prepare=self._prepare,
            discard=self._discard,
        )

    # ------------------------------------------------------------------------------------------ public API
    def connect(self) -> None:
        """Open the connection now if there is none (or it died); otherwise do nothing."""
        with self._locked():
            self._ensure_connection()

    def query(self, sql: str, args: Any = None, *, idempotent: bool | None = None) -> Rows:
        """Run one statement and return its rows as dicts.

        Parameters
        ----------
        sql
            The statement, with PyMySQL placeholders: ``%s`` (``args`` a sequence) or ``%(name)s`` (a mapping).
        args
            Values for the placeholders; escaped by PyMySQL, never interpolated by hand.
        idempotent
            Whether the statement may run twice. ``None`` (the default) treats plain reads as idempotent. After
            the connection is lost mid-statement, only idempotent statements outside transactions are re-run.

        Raises
        ------
        ConnectionLostError
            The connection was lost and the statement may have run; it was not re-run.
        TransactionAbortedError
            The connection was lost inside a transaction (nothing of it was committed).
        DeadlineExceededError
            The time budget from :meth:`set_deadline` ran out.
        pymysql.MySQLError
            Errors of the statement itself (syntax, duplicate key, ...) pass through unchanged.
        """
        if self._deadline is None:
            self._lock.acquire()  # _acquire() without a deadline: this is every statement's path
        else:
            self._acquire()
        try:
            return self._run(sql, args, idempotent, _RUN)
        finally:
            self._lock.release()

    def cursor(self) -> Cursor:
        """A DB-API 2.0 cursor (PyMySQL-compatible, dict rows) on the managed connection; see :mod:`.cursor`."""
        from .cursor import Cursor  # noqa: PLC0415 - only for code that wants a cursor

        return Cursor(self)

    def end(self) -> None:
        """Per-invocation housekeeping; the connection normally stays open for the next invocation.

        Rolls back a transaction left open, then (every so often, see docs/connection-management.md) measures
        utilization, kills the user's zombie connections, and gives this connection back while someone is refused a
        slot. Closes (COM_QUIT) a connection older than ``max_connection_age``. Never opens a connection, and
        never raises for a housekeeping failure (it is logged, counted in :meth:`get_stats` and passed to
        ``on_error``).

        Raises
        ------
        RuntimeError
            Called inside an open :meth:`transaction` (its ``with`` block or chain decides its fate); the
            transaction is left as it was.
        """
        self._lock.acquire()  # _acquire(deadline=False): end() runs after every invocation
        try:
            if self._tx is not None:
                self._refuse_inside_transaction("end()")
            conn = self._conn
            # The invocation is over, and with it any transaction it left: nothing of it reaches the next one.
            self._lost_transaction = False
            if conn is None:
                return
            self._counter += 1
            # The liveness poll only before something is sent: with nothing to do, a connection that died since
            # its last statement is found (and replaced) by the next statement's own check.
            if conn.in_transaction and not (self._alive_at_end(conn) and self._rollback_leftover(conn, "end()")):
                return
            if self._max_age is not None and self._clock() >= self._retire_at:
                # max_connection_age: the next invocation connects through DNS again (a new reader, a new writer).
                logger.debug("connection retired by age", extra={"event": "age_quit"})
                self._stats.age_quits += 1
                self._close(conn)
                return
            if self._config.manage_conns and not self._rds_proxy:
                self._end_housekeeping(conn)
        finally:
            self._lock.release()

    def quit(self) -> None:
        """Close the connection gracefully (COM_QUIT), rolling back an open transaction first.

        Raises
        ------
        RuntimeError
            Called inside an open :meth:`transaction`; the transaction is left as it was.
        """
        with self._locked(deadline=False):
            self._refuse_inside_transaction("quit()")
            conn = self._conn
            self._lost_transaction = False  # closing ends any transaction on purpose
            if conn is None:
                return
            if self._alive(conn):
                self._rollback_leftover(conn, "quit()")
            self._close(self._conn)

    def terminate(self) -> None:
        """Close the connection at once, without housekeeping or waiting for locks (safe in a signal handler)."""
        owned = self._lock.acquire(blocking=False)
        try:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close_quietly()
                logger.debug("connection terminated", extra={"event": "terminate"})
        finally:
            if owned:
                self._lock.release()

    def reseed(self) -> None:
        """Draw fresh entropy (``os.urandom``) for this client's random choices: backoff jitter, housekeeping.

        For a process copied from one that already held the client, as a SnapStart restore does: every copy
        would otherwise draw the same delays (a synchronized retry herd). ``@with_mysql`` calls it after each
        restore. A ``random`` generator passed as an option is the caller's and is left alone.
        """
        if not self._rng_given:
            self._rng.seed()  # seed(None) reads os.urandom

    def transaction(self, *, isolation_level: str | None = None, read_only: bool = False) -> Transaction:
        """A transaction: ``with db.transaction() as tx: tx.query(...)``, or the serverless-mysql chain form.

        See :class:`~serverless_mysql.transactions.Transaction`.
        """
        from .transactions import Transaction  # noqa: PLC0415 - its Protocols need typing: loaded on first use

        return Transaction(self._tx_host, isolation_level=isolation_level, read_only=read_only)

    def escape(self, value: object) -> str:
        """Escape ``value`` as an SQL literal (prefer placeholders in :meth:`query`).

        Connected, it escapes for the session's ``sql_mode``. Before the first connect the mode is unknown, so
        the literal is one that reads the same with and without ``NO_BACKSLASH_ESCAPES``.
        """
        conn = self._conn
        if conn is not None and conn.open:
            return conn.escape(value)
        return escape_any_mode(value)

    @staticmethod
    def escape_id(name: str) -> str:
        """Quote an identifier (table or column name) with backticks."""
        if not isinstance(name, str) or not name or "\x00" in name:
            raise ValueError("an identifier must be a non-empty str without NUL characters")
        return "`" + name.replace("`", "``") + "`"

    def set_deadline(self, seconds: float | None) -> None:
        """Bound every wait from now on by ``seconds`` (``None`` removes the bound).

        Connect retries, backoff sleeps, reconnects, query retries, housekeeping and socket reads all stop in
        time to raise :class:`DeadlineExceededError` before the budget is spent.
        """
        self._deadline = None if seconds is None else self._clock() + max(0.0, seconds)
        conn = self._conn
        if conn is not None:  # a read in progress in another thread keeps its bound; the next one gets the new one
            conn.set_deadline(self._deadline)

    @property
    def in_transaction(self) -> bool:
        """True while a transaction is open on the connection."""
        conn = self._conn
        return self._tx is not None or (conn is not None and conn.open and conn.in_transaction)

    def get_client(self) -> Connection[Any] | None:
        """The underlying PyMySQL connection, or ``None``."""
        return self._conn

    def get_counter(self) -> int:
        """How many times :meth:`end` ran on the current connection."""
        return self._counter

    def get_error_count(self) -> int:
        """Connection errors over this instance's lifetime (failed connects, lost connections)."""
        return self._lost_count + self._connector.errors

    def get_config(self) -> dict[str, Any]:
        """A copy of the options, password masked; ``server_role`` is the resolved role (of the last host)."""
        out = self._config.public_dict()
        out["server_role"] = self._role
        return out

    def get_stats(self) -> Stats:
        """A snapshot of the cumulative counters."""
        return replace(self._stats, last_utilization=self._housekeeper.last_utilization)

    def __repr__(self) -> str:
        state = "connected" if self._conn is not None else "not connected"
        return f"<ServerlessMySQL {self._config.host}:{self._config.port} user={self._config.user!r} {state}>"

    # ------------------------------------------------------------------------------------------ housekeeping
    def _on_connected(self, conn: DriverConnection, limits: tuple[int, int] | None) -> None:
        if limits is not None:
            self._housekeeper.store_limits(self._clock(), *limits)
        self._housekeeping.connected(conn)

    def _alive_at_end(self, conn: DriverConnection) -> bool:
        """The liveness check before end() sends anything; a dead connection is dropped (never replaced here)."""
        if self._alive(conn):
            return True
        self._discard(conn, "dead at end()", mark_lost_tx=False)
        return False

    def _end_housekeeping(self, conn: DriverConnection) -> None:
        """Measure, kill zombies, and give the connection back while someone is refused a slot."""
        now = self._clock()
        # While someone is refused a slot, and after it had to wait for its own, housekeeping runs at every end(): it
        # is the one who can kill the zombies holding the slots (scanning by lot unless its own recent scan found
        # some), and it decides whether to give its own back.
        pressed = self._pressure.under_pressure(now)
        waited, self._waited = self._waited, False
        # A new connection is measured at its first end(): its session has the server's idle timeout until a
        # measurement lowers it, and a stale reading taken on a quiet server (before a restart, a KILL) must not
        # leave a slot that may be held for good with it.
        first = self._config.used_conns_freq is None and not self._housekeeping.measured
        if not (pressed or waited or first or self._housekeeper.due(now)) or not self._alive_at_end(conn):
            return
        freed, keep = 0, False
        try:
            freed, _, keep = self._housekeeping.run(
                conn, now, waited=waited, first=first and not (pressed or waited), member=self._member
            )
        except Exception as exc:
            self._stats.housekeeping_errors += 1
            logger.warning("housekeeping failed: %s", describe(exc), extra={"event": "housekeeping_error"})
            self._events.error(exc)
        finally:
            self._stats.housekeeping_seconds += self._clock() - now
        # Someone is refused a slot: the zombies it killed are theirs; if it killed none, its own is, unless it keeps
        # it (it got it without waiting, and the user's slots are not all in use: idle holders will be killed).
        if conn is self._conn and not freed and not keep and self._pressure.under_pressure(self._clock()):
            logger.debug("giving the connection back under pressure", extra={"event": "pressure_quit"})
            self._stats.pressure_quits += 1
            self._gave_back_at = self._clock()
            self._close(conn)
