"""The connection state of one client and the layers a statement goes through.

``query`` -> :meth:`Session._run` (transaction guard) -> :meth:`Session._rerun_lost` (a lost connection, or a
statement a read-only server refused: re-run on a new one when the :class:`~serverless_mysql.retry.RetryPolicy`
allows) -> :meth:`Session._retry_transient` (a statement the server rolled back: retry with backoff) ->
:meth:`Session._bounded` (deadline) -> :meth:`~serverless_mysql._driver.DriverConnection.run`. Each layer does
one thing; the common path (no error) costs one call per layer.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pymysql

from ._cluster import connection_retire_at, resolve_role
from ._connect import Connector, describe
from ._driver import DriverConnection
from ._events import Events
from .backoff import RetryBudget, make_backoff
from .config import Config
from .errors import ConnectionLostError, DeadlineExceededError, TransactionAbortedError
from .housekeeping import Housekeeper
from .pressure import Pressure
from .results import Stats
from .retry import RetryPolicy

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any, TypeVar

__all__ = ["Session", "became_read_only"]  # Execute: an alias for type checkers only

if TYPE_CHECKING:  # for type checkers only: no typing at runtime
    R = TypeVar("R")
    Execute = Callable[[DriverConnection, str, Any], R]
    """Runs one statement on a live connection: :meth:`DriverConnection.run` for ``query()``, a DB-API cursor's
    own execute for ``cursor()`` and the SQLAlchemy engine (which want tuple rows and ``description``)."""

logger = logging.getLogger("serverless_mysql.client")

_PING_TIMEOUT = 1.0  # seconds a liveness ping may wait (ping_after_idle)


class Session:
    """One lazily opened connection, its lock, its deadline and its transaction state."""

    def __init__(self, **options: Any) -> None:
        self._config = cfg = Config.from_options(**options)
        self._clock: Callable[[], float] = cfg.clock or time.monotonic
        self._sleep: Callable[[float], None] = cfg.sleep or time.sleep
        import random as _random  # noqa: PLC0415 - the default jitter source

        rng = cfg.random or _random.Random()
        self._rng = rng  # shared by every random choice below; reseed() renews it
        self._rng_given = cfg.random is not None
        backoff = None if cfg.backoff == "paced" else make_backoff(cfg.backoff, base=cfg.base, cap=cfg.cap, rng=rng)
        self._pressure = Pressure(backoff=backoff, base=cfg.base, cap=cfg.cap, rng=rng)
        query_backoff = make_backoff(cfg.query_retry_backoff, base=cfg.base, cap=cfg.cap, rng=rng)
        self._policy = RetryPolicy(query_backoff=query_backoff, max_query_retries=cfg.max_query_retries)
        self._housekeeper = Housekeeper(
            conn_utilization=cfg.conn_utilization,
            used_conns_freq=cfg.used_conns_freq,
            max_conns_freq=cfg.max_conns_freq,
            rng=rng,
        )
        self._stats = Stats()
        self._events = Events(cfg)
        self._connector = Connector(
            cfg,
            pressure=self._pressure,
            policy=self._policy,
            stats=self._stats,
            events=self._events,
            clock=self._clock,
            sleep=self._sleep,
        )
        self._rds_proxy = cfg.is_rds_proxy
        self._role = resolve_role(cfg.server_role, cfg.host)  # then from the host of each new connection
        self._max_age = cfg.max_connection_age
        self._retire_at = math.inf  # when end() closes the current connection (max_connection_age)
        self._lock = threading.RLock()
        self._conn: DriverConnection | None = None
        self._last_used = 0.0
        self._ping_after = cfg.ping_after_idle
        self._track_idle = self._ping_after is not None  # only then is _last_used read
        self._counter = 0
        self._lost_count = 0  # connections discarded (the connector counts failed connects)
        self._deadline: float | None = None
        self._tx: object | None = None  # who opened the transaction: a Transaction or a SQLAlchemy connection
        self._tx_thread = 0  # the thread that opened self._tx (it holds the lock until the transaction ends)
        self._tx_conn: DriverConnection | None = None  # the connection self._tx began on: its statements run there
        self._lost_transaction = False
        self._budget: RetryBudget | None = None  # the retry budget of the statement running (built on its first error)
        self._waited = False  # the current connection was refused a slot before it got one
        self._member = False  # the current connection is the rotation's: it waited, or queued behind a give-back
        self._gave_back_at = -math.inf  # when end() last gave the connection back because others were refused
        self._waiting_since: float | None = None  # a statement re-run after read-only refusals: when it began waiting

    # ------------------------------------------------------------------------------------------ locking
    def _acquire(self, *, deadline: bool = True) -> None:
        """Take the instance lock; waiting for it is bounded by the deadline."""
        if self._deadline is None or not deadline:
            self._lock.acquire()
            return
        left = self._deadline - self._clock()
        if left <= 0 or not self._lock.acquire(timeout=left):
            raise DeadlineExceededError(
                "deadline reached while waiting for the connection (another thread holds it)", waited=max(0.0, left)
            )

    @contextmanager
    def _locked(self, *, deadline: bool = True) -> Iterator[None]:
        self._acquire(deadline=deadline)
        try:
            yield
        finally:
            self._lock.release()

    def remaining(self) -> float | None:
        """Seconds left before the deadline, or ``None`` without one."""
        return None if self._deadline is None else self._deadline - self._clock()

    # ------------------------------------------------------------------------------------------ connection
    def _ensure_connection(self) -> DriverConnection:
        conn = self._conn
        if conn is not None and (conn.alive() if self._ping_after is None else self._alive(conn)):
            return conn
        if self._tx is not None:  # a new connection now would run the rest of the transaction in autocommit
            self._discard(conn, "lost inside a transaction")
            raise TransactionAbortedError(
                "the connection was lost inside a transaction; it was rolled back on the server"
            )
        return self._replace(conn)

    def _replace(self, dead: DriverConnection | None) -> DriverConnection:
        """A new connection instead of ``dead`` (found dead before use, or none yet)."""
        if dead is not None:
            self._discard(dead, "found dead before use")
            self._stats.reconnects += 1
        return self._open()

    def _alive(self, conn: DriverConnection) -> bool:
        if not conn.alive():
            return False
        ping_after = self._ping_after
        if ping_after is not None and self._clock() - self._last_used >= ping_after:
            # A live server answers at once; a silently dropped connection never does. Wait briefly and leave
            # most of the time left for the reconnect.
            left = self.remaining()
            wait = max(0.001, min(self._config.connect_timeout, _PING_TIMEOUT, math.inf if left is None else left / 2))
            conn.set_io_limits(wait, wait, self._deadline)  # reset by _prepare before the next statement
            try:
                conn.ping(reconnect=False)
            except pymysql.MySQLError:
                return False
        return True

    def _open(self) -> DriverConnection:
        connected = self._connector.open(
            self._deadline, gave_back_at=self._gave_back_at, waiting_since=self._waiting_since
        )
        conn = connected.conn
        cfg = self._config
        self._conn = conn
        # Decided on the host actually connected to: with a secret the configured host is only "localhost".
        self._rds_proxy = cfg.rds_proxy_for(connected.host)
        self._role = resolve_role(cfg.server_role, connected.host)
        self._counter = 0
        self._last_used = self._clock()
        if self._max_age is not None:
            self._retire_at = connection_retire_at(self._last_used, self._max_age, self._rng)
        self._waited = connected.waited_for_slot  # then its end() reads the counters and may kill zombies
        self._member = connected.member
        self._on_connected(conn, connected.limits)
        self._events.connect(conn)
        return conn

    def _on_connected(self, conn: DriverConnection, limits: tuple[int, int] | None) -> None:
        """Hook for what a new connection needs beyond the session's state (the client's housekeeping).

        ``limits``: the server's ``(max_connections, max_user_connections)`` when the connect read them.
        """

    def _prepare(self, conn: DriverConnection) -> None:
        """Check that time is left, and bound every socket operation of the next statement by the deadline."""
        deadline = self._deadline
        if deadline is not None and deadline - self._clock() <= 0.001:
            raise DeadlineExceededError("deadline reached before the statement could be sent", waited=0.0)
        cfg = self._config
        conn.set_io_limits(cfg.read_timeout, cfg.write_timeout, deadline)

    def _discard(self, conn: DriverConnection | None, reason: str, *, mark_lost_tx: bool = True) -> None:
        if conn is None:
            return
        if mark_lost_tx and (conn.in_transaction or self._tx is not None):
            self._lost_transaction = True  # the next statement must not silently run in autocommit
        conn.close_quietly()
        if self._conn is conn:
            self._conn = None
            self._counter = 0
        self._lost_count += 1
        logger.debug("connection discarded", extra={"event": "discard", "reason": reason})

    def _close(self, conn: DriverConnection | None) -> None:
        if conn is None:
            return
        conn.close_quietly()
        if self._conn is conn:
            self._conn = None
            self._counter = 0
        logger.debug("connection closed", extra={"event": "close"})
        self._events.close()

    def _raise_if_deadline(self, exc: BaseException) -> None:
        left = self.remaining()
        if left is not None and left <= 0.01:
            raise DeadlineExceededError(
                f"deadline reached during a statement ({describe(exc)})", waited=0.0, last_error=exc
            ) from exc

    # ------------------------------------------------------------------------------------------ statements
    def _run(self, sql: str, args: Any, idempotent: bool | None, execute: Execute[R]) -> R:
        """Transaction guard: inside a transaction its connection or nothing; outside, never a lost one's tail."""
        if not isinstance(sql, str):
            raise TypeError(f"sql must be a str, not {type(sql).__name__}")
        if self._tx is None:
            return self._rerun_lost(sql, args, idempotent, execute)
        conn = self._conn
        if conn is None or conn is not self._tx_conn or not self._alive(conn):
            self._discard(conn, "lost inside a transaction")
            raise TransactionAbortedError(
                "the connection was lost inside a transaction; it was rolled back on the server"
            )
        try:
            return self._bounded(conn, sql, args, execute)
        except pymysql.MySQLError as exc:
            if self._policy.is_lost(exc):
                self._discard(conn, "lost during a statement", mark_lost_tx=False)
                self._raise_if_deadline(exc)
                raise _lost_in_transaction(exc) from exc
            action = self._policy.after_read_only(exc, sql, role=self._role, in_transaction=True, reruns=0)
            if action != "keep":
                self._discard(conn, "the server is read-only", mark_lost_tx=False)
                if action == "abort":
                    raise became_read_only(exc) from exc
            raise

    def _rerun_lost(self, sql: str, args: Any, idempotent: bool | None, execute: Execute[R]) -> R:
        """A connection lost during the statement, or a read-only server's refusal: re-run when the policy allows."""
        reruns = read_only_reruns = 0
        self._budget = None  # one retry budget per statement, across re-runs
        try:
            while True:
                try:
                    return self._retry_transient(sql, args, execute)
                except pymysql.MySQLError as exc:  # noqa: PERF203 - the loop runs again only after a failure
                    conn = self._conn
                    if conn is None:
                        raise
                    if not self._policy.is_lost(exc):
                        self._read_only_refusal(conn, exc, sql, read_only_reruns)  # raises unless it re-runs
                        read_only_reruns += 1
                        continue
                    was_in_tx = conn.in_transaction
                    self._discard(conn, "lost during a statement", mark_lost_tx=False)
                    self._raise_if_deadline(exc)
                    if was_in_tx:
                        raise _lost_in_transaction(exc) from exc
                    server = None if self._rds_proxy else conn.version  # a proxy's handshake may not name the server
                    rerun = self._policy.rerun_after_loss(exc, sql, idempotent=idempotent, reruns=reruns, server=server)
                    if not rerun:
                        raise ConnectionLostError(
                            f"the connection was lost during the statement ({describe(exc)}); it may have been "
                            "applied, so it was not re-run"
                        ) from exc
                    reruns += 1
                    self._stats.reconnects += 1
                    logger.debug("re-running statement after a lost connection", extra={"event": "rerun"})
        finally:
            self._waiting_since = None  # the next statement waits from its own start

    def _read_only_refusal(self, conn: DriverConnection, exc: pymysql.MySQLError, sql: str, reruns: int) -> None:
        """A statement error outside ``db.transaction()``: raise it, or return when a read-only refusal re-runs."""
        action = self._policy.after_read_only(
            exc, sql, role=self._role, in_transaction=conn.in_transaction, reruns=reruns
        )
        if action == "keep":
            raise exc
        # Nothing of the statement ran; the connection goes, and the next one is a new connect (DNS). Inside a
        # plain START TRANSACTION a passed-through 1290 does not tell the caller that its transaction ended with
        # the connection: the next statement is refused, never autocommitted.
        self._discard(conn, "the server is read-only", mark_lost_tx=action == "raise")
        if action == "raise":
            raise exc
        if action == "abort":
            raise became_read_only(exc) from exc
        if self._waiting_since is None:  # one wait bound across its re-runs, not one per connect
            self._waiting_since = self._clock()
        self._stats.read_only_reruns += 1
        logger.debug("re-running a statement a read-only server refused", extra={"event": "rerun"})

    def _retry_transient(self, sql: str, args: Any, execute: Execute[R]) -> R:
        """A statement the server rolled back (deadlock, lock wait timeout): retry it with backoff.

        Every try takes a live connection first; one found dead inside a plain ``START TRANSACTION`` aborts it.
        """
        while True:
            conn = self._conn  # _ensure_connection(), inlined for the common case: a live connection
            if conn is None or not (conn.alive() if self._ping_after is None else self._alive(conn)):
                conn = self._replace(conn)
            if self._lost_transaction:  # a transaction begun with a plain START TRANSACTION died while idle
                self._lost_transaction = False
                raise TransactionAbortedError(
                    "the connection was lost inside a transaction; it was rolled back; this statement did not run"
                )
            try:
                return self._bounded(conn, sql, args, execute)
            except pymysql.MySQLError as exc:
                policy = self._policy
                if not policy.retry_transient(exc, in_transaction=conn.in_transaction):
                    raise
                budget = self._budget
                if budget is None:
                    budget = self._budget = policy.query_budget(self._deadline, self._clock)
                delay = budget.next_delay()
                if delay is None:
                    raise
                self._stats.query_retries += 1
                self._events.query_retry(exc, budget.attempt, delay, policy.query_backoff.name)
                self._sleep(delay)

    def _bounded(self, conn: DriverConnection, sql: str, args: Any, execute: Execute[R]) -> R:
        """Deadline: the statement starts only with time left, and every socket operation ends by the deadline."""
        deadline = self._deadline  # _prepare, inlined: this runs for every statement
        if deadline is not None and deadline - self._clock() <= 0.001:
            raise DeadlineExceededError("deadline reached before the statement could be sent", waited=0.0)
        cfg = self._config
        conn.set_io_limits(cfg.read_timeout, cfg.write_timeout, deadline)
        result = execute(conn, sql, args)
        if self._track_idle:
            self._last_used = self._clock()
        self._stats.queries += 1
        return result


def became_read_only(exc: BaseException) -> TransactionAbortedError:
    """The error for a statement (or COMMIT) refused inside a transaction because the server became read-only."""
    return TransactionAbortedError(
        f"the server became read-only inside a transaction ({describe(exc)}), as in a failover; the connection "
        "was closed and nothing of the transaction was committed"
    )


def _lost_in_transaction(exc: BaseException) -> TransactionAbortedError:
    """The error for a statement whose connection was lost inside a transaction (the server rolled it back)."""
    return TransactionAbortedError(
        f"the connection was lost inside a transaction ({describe(exc)}); nothing of it was committed"
    )
