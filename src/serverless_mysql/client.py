"""The managed client: one lazily opened PyMySQL connection per instance, kept alive across warm invocations.

Liveness check. Between statements the MySQL protocol is silent: the server never sends anything unless asked.
So when the socket of an idle connection is readable, the server has spoken out of turn: it closed the connection
(KILL, ``wait_timeout``, shutdown) or sent its farewell error packet. Before every statement the client polls the
socket with a zero timeout (one ``poll()`` system call, no round trip) and replaces a dead connection before the
caller's statement is sent. ``ping_after_idle`` adds a real ping after a long idle gap for networks that drop
connections silently.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
import select
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import pymysql
import pymysql.connections
import pymysql.cursors
from pymysql.constants import CLIENT, CR, SERVER_STATUS

from . import errors as E
from . import housekeeping as H
from .backoff import RetryBudget, make_backoff
from .config import Config
from .credentials import time_budget
from .housekeeping import HEADROOM, REFUSALS_SQL, Housekeeper, Usage, parse_zombies, plan, usage_sql
from .pressure import WINDOW, Pressure
from .transactions import Transaction

if TYPE_CHECKING:
    from pymysql.connections import Connection

    from .cursor import Cursor

__all__ = ["Rows", "ServerlessMySQL", "Stats"]

logger = logging.getLogger(__name__)

_PING_TIMEOUT = 1.0  # seconds a liveness ping may wait (ping_after_idle)
_MAX_LOST_RERUNS = 2  # re-runs of one statement after lost connections: bounded, whatever the server does
_DEFAULT_CONNECT_WAIT = 30.0  # seconds a connect may wait for a slot without a deadline or max_connect_wait
_R = TypeVar("_R")


def is_plain_read(sql: str) -> bool:
    """True for a statement that provably has no side effect, so running it twice is harmless.

    A ``SELECT``/``SHOW``/``DESCRIBE``/``EXPLAIN`` without locking clauses or ``INTO`` that calls no function but
    side-effect-free built-ins (see :mod:`serverless_mysql._statements`).
    """
    from ._statements import is_plain_read as classify  # noqa: PLC0415 - only needed after a lost connection

    return classify(sql)


class Rows(list[dict[str, Any]]):
    """The rows of a statement as dicts, plus ``affected_rows``, ``insert_id`` and ``columns``."""

    affected_rows: int = 0
    insert_id: int = 0
    columns: tuple[str, ...] = ()


@dataclass
class Stats:
    """Cumulative counters of one client (:meth:`ServerlessMySQL.get_stats` returns a copy)."""

    connects: int = 0
    connect_attempts: int = 0
    connect_retries: int = 0
    refused_full: int = 0
    refused_down: int = 0
    connect_wait_seconds: float = 0.0
    reconnects: int = 0
    queries: int = 0
    query_retries: int = 0
    housekeeping_runs: int = 0
    housekeeping_statements: int = 0
    housekeeping_seconds: float = 0.0
    zombies_killed: int = 0
    kill_errors: int = 0
    housekeeping_errors: int = 0
    pressure_quits: int = 0
    idle_timeout_changes: int = 0
    rollbacks_on_end: int = 0
    last_utilization: float | None = None


class ServerlessMySQL:
    """A MySQL/MariaDB client made for AWS Lambda; see the README for every option.

    Example:
    -------
    >>> db = ServerlessMySQL(host="db.example.com", user="app", password="...", database="shop")  # doctest: +SKIP
    >>> rows = db.query("SELECT id, name FROM items WHERE id = %s", (42,))  # doctest: +SKIP
    >>> db.end()  # doctest: +SKIP
    """

    def __init__(self, **options: Any) -> None:
        self._config = Config.from_options(**options)
        cfg = self._config
        self._clock: Callable[[], float] = cfg.clock or time.monotonic
        self._sleep: Callable[[float], None] = cfg.sleep or time.sleep
        import random as _random  # noqa: PLC0415 - the default jitter source

        rng = cfg.random or _random.Random()
        self._rng = rng  # shared by every random choice below; reseed() renews it
        self._rng_given = cfg.random is not None
        paced = cfg.backoff == "paced"
        backoff = None if paced else make_backoff(cfg.backoff, base=cfg.base, cap=cfg.cap, rng=rng)
        self._pressure = Pressure(backoff=backoff, base=cfg.base, cap=cfg.cap, rng=rng)
        self._query_backoff = make_backoff(cfg.query_retry_backoff, base=cfg.base, cap=cfg.cap, rng=rng)
        self._housekeeper = Housekeeper(
            conn_utilization=cfg.conn_utilization,
            used_conns_freq=cfg.used_conns_freq,
            max_conns_freq=cfg.max_conns_freq,
            rng=rng,
        )
        self._rds_proxy = cfg.is_rds_proxy
        self._processlist: tuple[str, bool] | None = None  # (server version, read performance_schema.processlist)
        self._lock = threading.RLock()
        self._conn: _Connection | None = None
        self._last_used = 0.0
        self._counter = 0
        self._error_count = 0
        self._deadline: float | None = None
        self._stats = Stats()
        self._tx: object | None = None  # a Transaction, or an engine connection (serverless_mysql.sqlalchemy)
        self._tx_thread = 0  # the thread that opened self._tx (it holds the lock until the transaction ends)
        self._lost_transaction = False
        self._poller: select.poll | None = None
        self._polled_sock: object = None
        self._short_idle = False  # the session's wait_timeout is pressure_idle_timeout
        self._waited = False  # the current connection was refused a slot before it got one
        self._gave_back_at = -math.inf  # when end() last gave the connection back because others were refused

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
        return self._statement(sql, args, self._execute, idempotent=idempotent)

    def cursor(self) -> Cursor:
        """A DB-API 2.0 cursor (PyMySQL-compatible, dict rows) on the managed connection; see :mod:`.cursor`."""
        from .cursor import Cursor  # noqa: PLC0415 - only for code that wants a cursor

        return Cursor(self)

    def end(self) -> None:
        """Per-invocation housekeeping; the connection normally stays open for the next invocation.

        Rolls back a transaction left open, then (every so often, see the README) measures utilization, kills
        the user's zombie connections, and gives this connection back while someone is refused a slot. Never
        opens a connection, and never raises for a housekeeping failure (it is logged, counted in
        :meth:`get_stats` and passed to ``on_error``).

        Raises
        ------
        RuntimeError
            Called inside an open :meth:`transaction` (its ``with`` block or chain decides its fate); the
            transaction is left as it was.
        """
        with self._locked(deadline=False):
            self._refuse_inside_transaction("end()")
            conn = self._conn
            # The invocation is over, and with it any transaction it left: nothing of it reaches the next one.
            self._lost_transaction = False
            if conn is None:
                return
            self._counter += 1
            if not self._alive(conn):
                self._discard(conn, "dead at end()", mark_lost_tx=False)
                return
            if not self._rollback_leftover(conn, "end()"):
                return
            if not self._config.manage_conns or self._rds_proxy:
                return
            now = self._clock()
            # While someone is refused a slot, and after it had to wait for its own, it measures at every end():
            # it is the one who can kill the zombies holding the slots, and it decides whether to give its own back.
            pressed = self._pressure.under_pressure(now)
            waited, self._waited = self._waited, False
            if not (pressed or waited or self._housekeeper.due(now)):
                return
            freed = 0
            try:
                freed = self._housekeep(conn, now, waited=waited)
            except Exception as exc:
                self._bump(housekeeping_errors=1)
                logger.warning("housekeeping failed: %s", _describe(exc), extra={"event": "housekeeping_error"})
                self._emit("on_error", exc)
            finally:
                self._bump(housekeeping_seconds=self._clock() - now)
            # Someone is refused a slot: the zombies it killed are theirs; if it killed none, its own is.
            if conn is self._conn and not freed and self._pressure.under_pressure(self._clock()):
                logger.debug("giving the connection back under pressure", extra={"event": "pressure_quit"})
                self._bump(pressure_quits=1)
                self._gave_back_at = self._clock()
                self._close(conn)

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
                _close_quietly(conn)
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
        return Transaction(self, isolation_level=isolation_level, read_only=read_only)

    def escape(self, value: object) -> str:
        """Escape ``value`` as an SQL literal (prefer placeholders in :meth:`query`).

        Connected, it escapes for the session's ``sql_mode``. Before the first connect the mode is unknown, so
        the literal is one that reads the same with and without ``NO_BACKSLASH_ESCAPES``.
        """
        conn = self._conn
        if conn is not None and conn.open:
            return conn.escape(value)
        return _escape_any_mode(value)

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
            lim = conn._io
            conn._set_io_limits(lim.read_cap, lim.write_cap, self._deadline)

    def remaining(self) -> float | None:
        """Seconds left before the deadline, or ``None`` without one."""
        return None if self._deadline is None else self._deadline - self._clock()

    @property
    def in_transaction(self) -> bool:
        """True while a transaction is open on the connection."""
        conn = self._conn
        return self._tx is not None or (conn is not None and conn.open and _server_in_transaction(conn))

    def get_client(self) -> Connection[Any] | None:
        """The underlying PyMySQL connection, or ``None``."""
        return self._conn

    def get_counter(self) -> int:
        """How many times :meth:`end` ran on the current connection."""
        return self._counter

    def get_error_count(self) -> int:
        """Connection errors over this instance's lifetime (failed connects, lost connections)."""
        return self._error_count

    def get_config(self) -> dict[str, Any]:
        """A copy of the options, password masked."""
        return self._config.public_dict()

    def get_stats(self) -> Stats:
        """A snapshot of the cumulative counters."""
        return replace(self._stats, last_utilization=self._housekeeper.last_utilization)

    def __repr__(self) -> str:
        state = "connected" if self._conn is not None else "not connected"
        return f"<ServerlessMySQL {self._config.host}:{self._config.port} user={self._config.user!r} {state}>"

    # ------------------------------------------------------------------------------------------ locking
    def _acquire(self, *, deadline: bool = True) -> None:
        """Take the instance lock; waiting for it is bounded by the deadline."""
        if self._deadline is None or not deadline:
            self._lock.acquire()
            return
        left = self._deadline - self._clock()
        if left <= 0 or not self._lock.acquire(timeout=left):
            raise E.DeadlineExceededError(
                "deadline reached while waiting for the connection (another thread holds it)", waited=max(0.0, left)
            )

    @contextmanager
    def _locked(self, *, deadline: bool = True) -> Iterator[None]:
        self._acquire(deadline=deadline)
        try:
            yield
        finally:
            self._lock.release()

    # ------------------------------------------------------------------------------------------ connecting
    def _ensure_connection(self) -> _Connection:
        conn = self._conn
        if conn is not None:
            if self._alive(conn):
                return conn
            self._discard(conn, "found dead before use")
            self._bump(reconnects=1)
        return self._open()

    def _alive(self, conn: Connection[Any]) -> bool:
        sock = getattr(conn, "_sock", None)
        if sock is None:
            return False
        try:
            if self._poller is None or self._polled_sock is not sock:
                self._poller = select.poll()
                self._poller.register(sock, select.POLLIN | select.POLLPRI)
                self._polled_sock = sock
            if self._poller.poll(0):
                return False  # the server spoke out of turn: EOF or a farewell packet
        except (OSError, ValueError):
            return False
        ping_after = self._config.ping_after_idle
        if ping_after is not None and self._clock() - self._last_used >= ping_after:
            # A live server answers at once; a silently dropped connection never does. Wait briefly and leave
            # most of the time left for the reconnect.
            left = self.remaining()
            wait = max(0.001, min(self._config.connect_timeout, _PING_TIMEOUT, math.inf if left is None else left / 2))
            if isinstance(conn, _Connection):
                conn._set_io_limits(wait, wait, self._deadline)  # reset by _apply_timeouts before the next statement
            try:
                conn.ping(reconnect=False)
            except pymysql.MySQLError:
                return False
        return True

    def _connect_kwargs(self, refresh: bool) -> dict[str, Any]:
        cfg = self._config
        values: dict[str, Any] = {name: getattr(cfg, name) for name in ("host", "port", "user", "password", "database")}
        extra: dict[str, Any] = {}
        if cfg.credentials is not None:
            with time_budget(self.remaining()):  # lets the provider bound its network calls by the deadline
                creds = cfg.credentials.get_credentials(refresh=refresh)
            for name in values:
                supplied = getattr(creds, name)
                if supplied is not None and name not in cfg.explicit:
                    values[name] = supplied
            extra.update(creds.connect_args)
        return {
            "charset": "utf8mb4",
            "autocommit": True,
            **extra,
            **cfg.connect_args,
            **values,
            "cursorclass": pymysql.cursors.DictCursor,
        }

    def _open(self) -> _Connection:
        cfg = self._config
        pressure = self._pressure
        started = self._clock()
        wait_end = self._wait_end(started)
        attempt = 0  # retries so far
        previous = 0.0
        full_refusals = 0
        refresh = refreshed = False
        last_exc: BaseException | None = None  # named by a deadline error, whichever check runs out of time
        if started - self._gave_back_at < WINDOW:
            # It gave its slot back a moment ago because others were refused one: it queues behind them (one paced
            # wait before its first attempt) instead of taking the slot straight back, which would keep the waiters
            # waiting and fatten the tail.
            first = pressure.next_wait(
                attempt=0, max_retries=1, now=started, delay=pressure.delay("full", 0, 0.0, 0.0), wait_end=wait_end
            )
            if first is not None:
                self._sleep(first)
        while True:
            kwargs = self._connect_kwargs(refresh)
            refresh = False
            timeout = self._bounded(cfg.connect_timeout)
            if timeout is None:  # deadline already spent
                waited = self._clock() - started
                why = "" if last_exc is None else f"; last error: {_describe(last_exc)}"
                raise E.DeadlineExceededError(
                    f"deadline reached after {waited:.3f}s of connecting{why}", waited=waited, last_error=last_exc
                ) from last_exc
            # Each handshake read and write waits at most connect_timeout, and all of them together end by the
            # deadline; the statement timeouts apply once connected.
            kwargs.update(connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout, defer_connect=True)
            self._bump(connect_attempts=1)
            try:
                conn = _Connection(**kwargs)
                conn._io.clock = self._clock
                conn._set_io_limits(timeout, timeout, self._deadline)
                conn.connect()
            except pymysql.MySQLError as exc:
                last_exc = exc
                self._error_count += 1
                code = E.error_number(exc)
                logger.debug(
                    "connect attempt failed", extra={"event": "connect_error", "errno": code, "attempt": attempt + 1}
                )
                can_refresh = cfg.credentials is not None and getattr(cfg.credentials, "refreshable", False)
                if code == E.ER_ACCESS_DENIED_ERROR and can_refresh and not refreshed:
                    refresh = refreshed = True  # the password may have rotated: fetch it again, once
                    continue
                kind = E.connect_failure_kind(exc)
                if kind is None:
                    self._emit("on_connect_error", exc)
                    raise E.ConnectError(
                        f"cannot connect to {_endpoint(kwargs)}: {_describe(exc)}",  # the host tried (maybe a secret's)
                        attempts=attempt + 1,
                        elapsed=self._clock() - started,
                    ) from exc
                now = self._clock()
                if kind == "full":
                    full_refusals += 1
                    self._bump(refused_full=1)
                else:
                    self._bump(refused_down=1)
                wanted = pressure.delay(kind, attempt + 1, previous, now - started)
                delay = pressure.next_wait(
                    attempt=attempt, max_retries=cfg.max_retries, now=now, delay=wanted, wait_end=wait_end
                )
                if delay is None:
                    self._emit("on_connect_error", exc)
                    raise self._retry_failure(attempt, started, exc) from exc
                attempt += 1
                previous = delay
                self._bump(connect_retries=1)
                self._emit("on_retry", exc, attempt, delay, cfg.backoff if isinstance(cfg.backoff, str) else "custom")
                logger.debug("connect retry", extra={"event": "connect_retry", "errno": code, "delay": delay})
                self._sleep(delay)
                continue
            conn._set_io_limits(cfg.read_timeout, cfg.write_timeout, self._deadline)
            self._conn = conn
            # Decided on the host actually connected to: with a secret the configured host is only "localhost".
            self._rds_proxy = cfg.rds_proxy_for(kwargs["host"])
            self._counter = 0
            self._short_idle = False
            self._last_used = self._clock()
            self._waited = full_refusals > 0  # then its end() measures, kills zombies and reads the counters
            if cfg.manage_conns and not self._rds_proxy and not pressure.under_pressure(self._last_used):
                self._refusal_baseline(conn)  # under pressure it measures at end() and gives the slot back anyway
            self._bump(connects=1, connect_wait_seconds=self._last_used - started if attempt else 0.0)
            logger.debug(
                "connected",
                extra={
                    "event": "connect",
                    "thread_id": _thread_id(conn),
                    "attempts": attempt + 1,
                    "full": full_refusals,
                },
            )
            self._emit("on_connect", conn)
            return conn

    def _wait_end(self, started: float) -> float | None:
        """When a connect that began at ``started`` stops waiting: the deadline or ``max_connect_wait``."""
        bound = self._config.max_connect_wait
        if bound is None:
            bound = None if self._deadline is not None else _DEFAULT_CONNECT_WAIT
        by_bound = None if bound is None else started + bound
        if self._deadline is None:
            return by_bound
        return self._deadline if by_bound is None else min(self._deadline, by_bound)

    def _retry_failure(self, attempt: int, started: float, exc: BaseException) -> E.ServerlessMySQLError:
        waited = self._clock() - started
        if attempt < self._config.max_retries:
            within = "deadline" if self._deadline is not None and self._wait_end(started) == self._deadline else None
            return E.DeadlineExceededError(
                f"{within or 'max_connect_wait'} reached after {waited:.3f}s and {attempt + 1} connect attempts; "
                f"last error: {_describe(exc)}",
                waited=waited,
                last_error=exc,
            )
        return E.RetriesExhaustedError(
            f"gave up connecting after {attempt + 1} attempts in {waited:.3f}s; last error: {_describe(exc)}",
            attempts=attempt + 1,
            elapsed=waited,
        )

    def _bounded(self, timeout: float | None) -> float | None:
        """``timeout`` cut to the time left; ``None`` when no time is left at all."""
        left = self.remaining()
        if left is None:
            return timeout
        if left <= 0.001:
            return None
        return left if timeout is None else min(timeout, left)

    def _apply_timeouts(self, conn: Connection[Any]) -> None:
        """Check that time is left, and bound every socket operation of the next statement by the deadline."""
        deadline = self._deadline
        if deadline is not None and deadline - self._clock() <= 0.001:
            raise E.DeadlineExceededError("deadline reached before the statement could be sent", waited=0.0)
        if isinstance(conn, _Connection):
            cfg = self._config
            conn._set_io_limits(cfg.read_timeout, cfg.write_timeout, deadline)

    def _discard(self, conn: Connection[Any] | None, reason: str, *, mark_lost_tx: bool = True) -> None:
        if conn is None:
            return
        if mark_lost_tx and (_server_in_transaction(conn) or self._tx is not None):
            self._lost_transaction = True  # the next statement must not silently run in autocommit
        _close_quietly(conn)
        if self._conn is conn:
            self._conn = None
            self._counter = 0
        self._error_count += 1
        logger.debug("connection discarded", extra={"event": "discard", "reason": reason})

    def _close(self, conn: Connection[Any] | None) -> None:
        if conn is None:
            return
        _close_quietly(conn)
        if self._conn is conn:
            self._conn = None
            self._counter = 0
        logger.debug("connection closed", extra={"event": "close"})
        self._emit("on_close")

    # ------------------------------------------------------------------------------------------ statements
    def _statement(
        self, sql: str, args: Any, execute: Callable[[Connection[Any], str, Any], _R], *, idempotent: bool | None
    ) -> _R:
        """Run one statement under the lock with the client's rules (liveness, re-runs, retries, deadline).

        ``execute(conn, sql, args)`` runs it on the live connection: :meth:`_execute` for :meth:`query`, a DB-API
        cursor's own for :meth:`cursor` and :mod:`serverless_mysql.sqlalchemy`.
        """
        self._acquire()
        try:
            return self._query(sql, args, execute, idempotent=idempotent)
        finally:
            self._lock.release()

    def _query(
        self, sql: str, args: Any, execute: Callable[[Connection[Any], str, Any], _R], *, idempotent: bool | None
    ) -> _R:
        if not isinstance(sql, str):
            raise TypeError(f"sql must be a str, not {type(sql).__name__}")
        in_tx = self._tx is not None
        reruns = 0
        retry: RetryBudget | None = None  # built on the first transient error: the common path stays lean
        while True:
            if in_tx:
                conn = self._conn
                if conn is None or not self._alive(conn):
                    self._discard(conn, "lost inside a transaction")
                    raise E.TransactionAbortedError(
                        "the connection was lost inside a transaction; it was rolled back on the server"
                    )
            else:
                conn = self._ensure_connection()
                if self._lost_transaction:  # a transaction begun with a plain START TRANSACTION died while idle
                    self._lost_transaction = False
                    raise E.TransactionAbortedError(
                        "the connection was lost inside a transaction; it was rolled back; this statement did not run"
                    )
            self._apply_timeouts(conn)
            try:
                result = execute(conn, sql, args)
            except pymysql.MySQLError as exc:
                if E.is_connection_lost(exc):
                    was_in_tx = in_tx or _server_in_transaction(conn)
                    self._discard(conn, "lost during a statement", mark_lost_tx=False)
                    self._raise_if_deadline(exc)
                    if was_in_tx:
                        raise E.TransactionAbortedError(
                            f"the connection was lost inside a transaction ({_describe(exc)}); "
                            "nothing of it was committed"
                        ) from exc
                    never_sent = E.error_number(exc) == E.CR_SERVER_GONE_ERROR  # the write itself failed
                    timed_out = "timed out" in str(exc)
                    safe_to_rerun = is_plain_read(sql) if idempotent is None else idempotent
                    if (never_sent or safe_to_rerun) and not timed_out and reruns < _MAX_LOST_RERUNS:
                        reruns += 1
                        self._bump(reconnects=1)
                        logger.debug("re-running statement after a lost connection", extra={"event": "rerun"})
                        continue
                    raise E.ConnectionLostError(
                        f"the connection was lost during the statement ({_describe(exc)}); it may have been "
                        "applied, so it was not re-run"
                    ) from exc
                if E.is_transient_query_error(exc) and not in_tx and not _server_in_transaction(conn):
                    if retry is None:
                        cfg = self._config
                        retry = RetryBudget(self._query_backoff, cfg.max_query_retries, self._deadline, self._clock)
                    delay = retry.next_delay()
                    if delay is not None:
                        self._bump(query_retries=1)
                        self._emit("on_query_retry", exc, retry.attempt, delay, self._query_backoff.name)
                        self._sleep(delay)
                        continue
                raise
            self._last_used = self._clock()
            self._stats.queries += 1
            return result

    def _execute(self, conn: Connection[Any], sql: str, args: Any) -> Rows:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            rows = Rows(cur.fetchall())
            rows.affected_rows = max(cur.rowcount, 0)
            rows.insert_id = cur.lastrowid or 0
            rows.columns = tuple(d[0] for d in cur.description or ())
        return rows

    def _raise_if_deadline(self, exc: BaseException) -> None:
        left = self.remaining()
        if left is not None and left <= 0.01:
            raise E.DeadlineExceededError(
                f"deadline reached during a statement ({_describe(exc)})", waited=0.0, last_error=exc
            ) from exc

    def _refuse_inside_transaction(self, where: str) -> None:
        """Raise when a :class:`Transaction` is open: ending the connection in it would split it in two.

        Called with the lock held, so an open transaction is this thread's own.
        """
        if self._tx is not None:
            raise RuntimeError(
                f"{where} called inside an open transaction (db.transaction()); the transaction was left as it was: "
                "leave the with block (or let the chain's commit() return) first"
            )

    def _in_transaction_here(self) -> bool:
        """True while the calling thread has a :class:`Transaction` open on this client (no lock needed)."""
        return self._tx is not None and self._tx_thread == threading.get_ident()

    def _abandon_transaction(self) -> bool:
        """Roll back a :class:`Transaction` this thread opened and never ended, and release the client.

        For the end of an invocation only (``@with_mysql``): True if there was one.
        """
        tx = self._tx
        if tx is None or self._tx_thread != threading.get_ident():
            return False
        self._bump(rollbacks_on_end=1)
        self._finish(tx, commit=False)
        return True

    def _rollback_leftover(self, conn: Connection[Any], where: str) -> bool:
        """Roll back a transaction left open so that no later invocation can commit it; False if that failed."""
        if not _server_in_transaction(conn):
            return True
        logger.warning("rolling back a transaction left open at %s", where, extra={"event": "rollback_leftover"})
        self._bump(rollbacks_on_end=1)
        try:
            self._apply_timeouts(conn)
            conn.rollback()
        except Exception as exc:  # any failure: the connection must not survive with an open transaction
            self._discard(conn, "rollback failed", mark_lost_tx=False)  # end()/quit(): nobody continues it
            self._emit("on_error", exc)
            return False
        return True

    # ------------------------------------------------------------------------------------------ transactions
    def _begin(self, tx: object, statement: str, isolation: str | None) -> None:
        """Called by an owner (a Transaction, an engine connection): take the connection exclusively, START."""
        self._acquire()
        try:
            if self._tx is not None:
                raise RuntimeError(
                    "a transaction is already open on this client; nested transactions are not supported"
                )
            self._lost_transaction = False
            conn = self._ensure_connection()
            self._apply_timeouts(conn)
            try:
                if isolation is not None:
                    conn.query(f"SET TRANSACTION ISOLATION LEVEL {isolation}")  # validated against a fixed list
                conn.query(statement)
            except pymysql.MySQLError as exc:
                if E.is_connection_lost(exc):
                    self._discard(conn, "lost at START TRANSACTION", mark_lost_tx=False)
                    self._raise_if_deadline(exc)
                    raise E.TransactionAbortedError(
                        f"the connection was lost starting a transaction ({_describe(exc)})"
                    ) from exc
                raise
            self._tx = tx
            self._tx_thread = threading.get_ident()
        except BaseException:
            self._lock.release()
            raise

    def _finish(self, tx: object, *, commit: bool) -> None:
        """Called by the owner `tx` that _begin took the connection for: COMMIT or ROLLBACK, then release it."""
        if self._tx is not tx:
            raise RuntimeError("this transaction is not the one open on the client")
        try:
            conn = self._conn
            if conn is None:  # lost inside the transaction: the server already rolled it back
                if commit:
                    raise E.TransactionAbortedError(
                        "the connection was lost inside the transaction; nothing was committed"
                    )
                return
            if commit:
                try:
                    self._apply_timeouts(conn)
                except BaseException as exc:
                    # COMMIT was not sent: the transaction must not stay open on the server, where the next
                    # START TRANSACTION would commit it implicitly. Closing the connection rolls it back.
                    self._discard(conn, "no time left for COMMIT")
                    if isinstance(exc, E.DeadlineExceededError):
                        raise E.DeadlineExceededError(
                            "deadline reached before COMMIT could be sent; the transaction was rolled back",
                            waited=exc.waited,
                        ) from exc
                    raise
                try:
                    conn.commit()
                except pymysql.MySQLError as exc:
                    if E.is_connection_lost(exc):
                        self._discard(conn, "lost at COMMIT")
                        raise E.TransactionAbortedError(
                            f"the connection was lost at COMMIT ({_describe(exc)}); the commit may or may not have "
                            "been applied"
                        ) from exc
                    self._rollback_or_close(conn)
                    raise
                except BaseException:
                    self._discard(conn, "interrupted at COMMIT")  # never keep a connection in an unknown state
                    raise
            else:
                self._rollback_or_close(conn)
        finally:
            self._tx = None
            self._lost_transaction = False
            self._lock.release()

    def _rollback_or_close(self, conn: Connection[Any]) -> None:
        if not conn.open:
            self._discard(conn, "closed before ROLLBACK")
            return
        try:
            self._apply_timeouts(conn)
        except E.DeadlineExceededError:
            self._discard(conn, "no time left for ROLLBACK")  # closing the connection rolls back on the server
            return
        try:
            conn.rollback()
        except Exception as exc:
            self._discard(conn, "ROLLBACK failed")  # never leave an open transaction behind
            self._emit("on_error", exc)

    # ------------------------------------------------------------------------------------------ housekeeping
    def _housekeep(self, conn: Connection[Any], now: float, *, waited: bool) -> int:
        """Measure, decide and kill; returns how many slots the kills freed."""
        cfg = self._config
        hk = self._housekeeper
        with_limits = hk.limits_stale(now)
        own_ids = frozenset({_thread_id(conn)})
        row = self._measure(conn, with_limits)
        self._bump(housekeeping_runs=1)
        if with_limits:
            hk.store_limits(now, int(row["max_connections"]), int(row["max_user_connections"]))
        assert hk.limits is not None
        usage = Usage(
            max_connections=hk.limits[0],
            max_user_connections=hk.limits[1],
            total=int(row["total"]),
            user_total=int(row["user_total"]),
            zombies=parse_zombies(row["zombies"], own_ids),
        )
        hk.record(now, usage)
        pressure = self._pressure
        busy = usage.utilization >= cfg.conn_utilization
        if usage.max_user_connections > 0 and usage.used >= usage.limit:
            pressure.account_full(now)  # its refusals (1203) are not counted by the server
        elif busy and not pressure.under_pressure(now) and pressure.counters_due(now, waited=waited):
            self._read_refusals(conn, busy=True)
        pressed = pressure.under_pressure(now)
        decision = plan(
            usage,
            conn_utilization=cfg.conn_utilization,
            zombie_max_timeout=cfg.zombie_max_timeout,
            max_kills=cfg.max_kills,
            pressure=pressed,
        )
        logger.debug(
            "housekeeping",
            extra={
                "event": "housekeeping",
                "used": usage.used,
                "limit": usage.limit,
                "utilization": round(usage.utilization, 3),
                "zombies": len(usage.zombies),
                "to_kill": len(decision.kill),
                "pressure": pressed,
            },
        )
        freed = self._kill(conn, decision.kill)
        if conn is not self._conn or (pressed and not freed):
            return freed  # lost during a KILL, or about to be given back: its idle timeout does not matter
        idle = cfg.pressure_idle_timeout
        if idle is not None:
            if busy and not self._short_idle:
                self._set_idle_timeout(conn, f"{math.ceil(idle)}")
            elif usage.utilization < HEADROOM * cfg.conn_utilization and self._short_idle:
                self._set_idle_timeout(conn, "@@GLOBAL.wait_timeout")
        return freed

    def _refusal_baseline(self, conn: Connection[Any]) -> None:
        """Read the failed-connect counters right after connecting.

        So the first ``end()`` can tell whether anyone was refused meanwhile; otherwise a cold start's first reading
        is only a baseline, and in a herd every lucky newcomer would keep its slot.
        """
        with contextlib.suppress(pymysql.MySQLError):  # lost already: the caller's statement reconnects
            self._read_refusals(conn, busy=False)

    def _read_refusals(self, conn: Connection[Any], *, busy: bool) -> None:
        """Feed the server's failed-connect counters to the pressure policy (nothing when they are unreadable)."""
        self._apply_timeouts(conn)
        try:
            with conn.cursor() as cur:
                cur.execute(REFUSALS_SQL)
                values = {str(row["Variable_name"]).lower(): int(row["Value"]) for row in cur.fetchall()}
        except pymysql.MySQLError as exc:
            if E.is_connection_lost(exc):
                raise
            logger.debug("cannot read the refusal counters", extra={"event": "housekeeping", "errno": exc.args[0]})
            return
        finally:
            self._bump(housekeeping_statements=1)
        refused, aborted = values.get("connection_errors_max_connections"), values.get("aborted_connects")
        if refused is not None and aborted is not None:
            self._pressure.counters(self._clock(), refused, aborted, busy=busy)

    def _set_idle_timeout(self, conn: Connection[Any], value: str) -> None:
        """Set the session's ``wait_timeout``: short while the server is busy, the server's own otherwise."""
        self._apply_timeouts(conn)
        with conn.cursor() as cur:
            cur.execute(f"SET SESSION wait_timeout = {value}")  # a whole number or @@GLOBAL.wait_timeout
        self._short_idle = not value.startswith("@@")
        self._bump(housekeeping_statements=1, idle_timeout_changes=1)
        logger.debug("session idle timeout set", extra={"event": "idle_timeout", "short": self._short_idle})

    def _measure(self, conn: Connection[Any], with_limits: bool) -> dict[str, Any]:
        """Run the housekeeping statement on the server's best processlist source and return its row.

        ``performance_schema.processlist`` where the server has one that works, else ``information_schema``. The
        choice is remembered per server version, so finding out costs at most one statement per client (per
        server upgrade), and only on servers whose version says they may have the table.
        """
        version = str(getattr(conn, "server_version", "") or "")  # from the handshake: no round trip
        known = self._processlist
        perf = known[1] if known is not None and known[0] == version else H.has_performance_schema_processlist(version)
        row = self._usage_row(conn, with_limits, performance_schema=perf)
        if perf and (row is None or not int(row["self_seen"])):
            # No such table, no access, or an empty table (the Performance Schema is off): never this connection.
            perf = False
            row = self._usage_row(conn, with_limits, performance_schema=False)
        if known != (version, perf):
            logger.debug("processlist source", extra={"event": "housekeeping", "performance_schema": perf})
        self._processlist = (version, perf)
        assert row is not None  # an aggregate always returns one row; only the performance_schema attempt gives None
        result: dict[str, Any] = row
        return result

    def _usage_row(self, conn: Connection[Any], with_limits: bool, *, performance_schema: bool) -> Any:
        """The statement's row, or ``None`` when ``performance_schema.processlist`` cannot be read."""
        self._apply_timeouts(conn)
        try:
            with conn.cursor() as cur:
                sql = usage_sql(with_limits=with_limits, performance_schema=performance_schema)
                cur.execute(sql, (int(self._config.zombie_min_timeout),))
                return cur.fetchone()
        except pymysql.MySQLError as exc:
            errno = E.error_number(exc)
            if not performance_schema or errno not in H.PROCESSLIST_FALLBACK_ERRORS:
                raise
            logger.debug("performance_schema.processlist unusable", extra={"event": "housekeeping", "errno": errno})
            return None
        finally:
            self._bump(housekeeping_statements=1)

    def _kill(self, conn: Connection[Any], zombies: tuple[Any, ...]) -> int:
        freed = 0
        for zombie in zombies:
            try:
                self._apply_timeouts(conn)
                with conn.cursor() as cur:
                    cur.execute("KILL %s", (zombie.thread_id,))
            except pymysql.MySQLError as exc:
                self._bump(housekeeping_statements=1, kill_errors=1)
                if E.error_number(exc) == E.ER_NO_SUCH_THREAD:
                    freed += 1  # someone else killed it first: the slot is free all the same
                    continue
                self._emit("on_kill_error", exc, zombie.thread_id)
                if E.is_connection_lost(exc):
                    self._discard(conn, "lost during KILL")
                    break
                if E.error_number(exc) == E.ER_KILL_DENIED_ERROR:
                    break  # not our thread after all; the others will be refused too
                continue
            self._bump(housekeeping_statements=1, zombies_killed=1)
            freed += 1
            logger.debug("killed zombie", extra={"event": "kill", "thread_id": zombie.thread_id, "idle": zombie.idle})
            self._emit("on_kill", zombie.thread_id, zombie.idle)
        return freed

    # ------------------------------------------------------------------------------------------ helpers
    def _bump(self, **deltas: float) -> None:
        stats = self._stats
        for name, delta in deltas.items():
            setattr(stats, name, getattr(stats, name) + delta)

    def _emit(self, event: str, *args: Any) -> None:
        handler = getattr(self._config, event)
        if handler is None:
            return
        try:
            handler(*args)
        except Exception:  # a faulty event handler must not break connection management
            logger.warning("event handler %s raised", event, exc_info=True, extra={"event": "handler_error"})


if TYPE_CHECKING:
    _BaseConnection = Connection[Any]
else:
    _BaseConnection = pymysql.connections.Connection

_IO_SLACK = 0.005
"""Seconds a socket operation may overrun the deadline; spares a ``settimeout()`` call on most operations."""


_QUIT_WAIT = 0.05
"""Seconds ``close()`` may wait to send COM_QUIT when the deadline has (nearly) passed."""


class _DeadlineReached(TimeoutError):
    """The deadline passed before a socket read or write could start (PyMySQL wraps it like a socket timeout)."""


class _IoLimits:
    """What bounds each socket operation of one connection: the timeouts and the deadline (shared with its reader).

    ``recheck_at`` is the clock reading up to which the socket's current timeout cannot carry an operation past
    the deadline (+ :data:`_IO_SLACK`): before it, a read or write costs one clock call and one compare.
    """

    __slots__ = ("clock", "deadline", "read_cap", "recheck_at", "write_cap")

    def __init__(self, read_cap: float | None, write_cap: float | None) -> None:
        self.clock: Callable[[], float] = time.monotonic
        self.deadline: float | None = None
        self.read_cap = read_cap
        self.write_cap = write_cap
        self.recheck_at = -math.inf  # -inf: check before the next operation; +inf: never (no deadline)


class _DeadlineSocketIO(socket.SocketIO):
    """The raw reader under PyMySQL's buffered ``_rfile``: bounds every ``recv`` by the time left.

    One ``_read_bytes`` may take several ``recv`` calls (a large packet, bytes trickling in); each one is bounded,
    so the whole read ends by the deadline. The buffered reader calls this only when its buffer is empty.
    """

    def __init__(self, sock: socket.socket, limits: _IoLimits, owner: weakref.ref[_Connection]) -> None:
        super().__init__(sock, "rb")
        self._limits = limits
        self._owner = owner  # weak: no reference cycle between the connection and its reader

    def readinto(self, b: Any) -> int | None:
        limits = self._limits
        if limits.clock() > limits.recheck_at:
            conn = self._owner()
            if conn is not None:
                conn._bound_io(write=False)
        return super().readinto(b)


class _Connection(_BaseConnection):
    """PyMySQL's connection, with every socket operation bounded by the deadline, and one shared TLS context.

    Deadline. PyMySQL's ``read_timeout``/``write_timeout`` bound each socket operation, however many a statement
    or a handshake takes. Here every ``recv`` and every write also waits at most until ``_io.deadline`` (set by
    the client, see :meth:`_set_io_limits`): the socket timeout is lowered to the time left whenever it could
    carry the operation past the deadline, and an operation that would start after it fails at once, as a
    socket timeout (``OperationalError`` 2013 or 2006 with the ``TimeoutError`` as its context).

    TLS context. Without TLS options PyMySQL builds ``ssl.create_default_context()`` (it loads the system CA store)
    in every ``Connection()``, even when the server offers no TLS: tens of milliseconds of CPU on each connect
    attempt, retries included. That context is always configured the same way, so it is built once per process.
    Explicit TLS options (``ssl``, ``ssl_ca``, ...) still get a context of their own, and ``ssl_verify_identity``
    checks the host name also without ``ssl_ca`` (against the system CA store), where PyMySQL alone skips it.
    When TLS options are given and the server offers no TLS, nothing is sent (PyMySQL < 1.2 sent the login in
    clear text).
    """

    _shared_tls: ClassVar[ssl.SSLContext | None] = None
    # PyMySQL internals used below (not in its type stubs); declared only, PyMySQL sets them
    _sock: socket.socket | None
    _rfile: io.BufferedReader | None
    _read_timeout: float | None
    _write_timeout: float | None
    _current_timeout: float | None
    server_capabilities: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._io = _IoLimits(kwargs.get("read_timeout"), kwargs.get("write_timeout"))
        self._io_handshaking = False
        self._reader_sock: object = None
        super().__init__(*args, **kwargs)

    def _create_ssl_ctx(self, sslp: object) -> ssl.SSLContext:
        if isinstance(sslp, dict) and not sslp:
            ctx = _Connection._shared_tls
            if ctx is None:  # two threads may both build it: harmless, one wins
                ctx = _Connection._shared_tls = super()._create_ssl_ctx(sslp)  # type: ignore[misc]
            return ctx
        ctx = super()._create_ssl_ctx(sslp)  # type: ignore[misc]
        if isinstance(sslp, dict) and sslp.get("check_hostname") and not ctx.check_hostname:
            # PyMySQL turns the host-name check off when no CA file is given (system CA store).
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.check_hostname = True
        return ctx  # type: ignore[no-any-return]

    # ---- deadline ---------------------------------------------------------------------------------------------
    def _set_io_limits(self, read_timeout: float | None, write_timeout: float | None, deadline: float | None) -> None:
        """Bound each read/write by its timeout (``None``: no bound) and all of them by ``deadline`` (client clock)."""
        lim = self._io
        if lim.deadline == deadline and lim.read_cap == read_timeout and lim.write_cap == write_timeout:
            return
        lim.read_cap, lim.write_cap, lim.deadline = read_timeout, write_timeout, deadline
        if deadline is None and not self._io_handshaking:
            lim.recheck_at = math.inf
            self._read_timeout = read_timeout  # PyMySQL applies them before its next read/write
            self._write_timeout = write_timeout
        else:
            lim.recheck_at = -math.inf

    def _bound_io(self, *, write: bool) -> None:
        """Set the socket timeout for the next operation so that it ends by the deadline; raise if it has passed."""
        lim = self._io
        if self._io_handshaking:
            self._install_reader()  # after the TLS upgrade PyMySQL made a new reader: bound it too
        read_cap, write_cap, deadline = lim.read_cap, lim.write_cap, lim.deadline
        if deadline is None:
            read, written, recheck = read_cap, write_cap, math.inf
        else:
            left = deadline - lim.clock()
            if left <= 0:
                raise _DeadlineReached("timed out: the deadline was reached")
            read = left if read_cap is None else min(read_cap, left)
            written = left if write_cap is None else min(write_cap, left)
            recheck = deadline + _IO_SLACK - max(read, written)
        # PyMySQL switches the socket between these two before its reads and writes: both are within the bound.
        self._read_timeout, self._write_timeout = read, written
        lim.recheck_at = -math.inf if self._io_handshaking else recheck
        timeout = written if write else read
        sock = self._sock
        if sock is not None and self._current_timeout != timeout:
            sock.settimeout(timeout)
            self._current_timeout = timeout

    def _install_reader(self) -> None:
        sock = self._sock
        if sock is None or sock is self._reader_sock:
            return
        old = self._rfile
        self._rfile = io.BufferedReader(_DeadlineSocketIO(sock, self._io, weakref.ref(self)))
        self._reader_sock = sock
        if old is not None:
            old.close()  # PyMySQL's reader: nothing was read through it yet

    # ---- PyMySQL hooks ----------------------------------------------------------------------------------------
    def connect(self, sock: Any = None) -> None:
        self._io_handshaking = True  # every handshake operation goes through _bound_io
        self._io.recheck_at = -math.inf
        try:
            super().connect(sock)
        finally:
            self._io_handshaking = False
            self._io.recheck_at = -math.inf

    def _get_server_information(self) -> None:
        self._install_reader()  # before the first read: the greeting
        super()._get_server_information()  # type: ignore[misc]

    def _request_authentication(self) -> None:
        if getattr(self, "_ssl_required", self.ssl) and not self.server_capabilities & CLIENT.SSL:
            # PyMySQL 1.2 refuses this too; older versions sent the login (a password, an IAM token) in clear text.
            raise pymysql.err.OperationalError(
                CR.CR_SSL_CONNECTION_ERROR, "SSL is required but the server doesn't support it; nothing was sent"
            )
        super()._request_authentication()  # type: ignore[misc]
        self._install_reader()  # normally done at the first write after the TLS upgrade already

    def close(self) -> None:
        lim = self._io
        if lim.deadline is not None and lim.clock() + _QUIT_WAIT > lim.deadline:
            # COM_QUIT (5 bytes an idle socket takes at once) lets the server free the slot without logging an
            # aborted connection: worth a moment even at the deadline.
            self._set_io_limits(_QUIT_WAIT, _QUIT_WAIT, None)
        super().close()

    def _write_bytes(self, data: bytes) -> None:
        lim = self._io
        if lim.clock() > lim.recheck_at:
            try:
                self._bound_io(write=True)
            except OSError as exc:
                self._force_close()  # type: ignore[attr-defined]
                raise pymysql.err.OperationalError(
                    E.CR_SERVER_GONE_ERROR, f"MySQL server has gone away ({exc}; nothing was sent)"
                ) from exc
        super()._write_bytes(data)  # type: ignore[misc]


def _server_in_transaction(conn: Connection[Any]) -> bool:
    """The last status the server reported (no round trip); stays set after the socket is gone."""
    return bool((getattr(conn, "server_status", 0) or 0) & SERVER_STATUS.SERVER_STATUS_IN_TRANS)


def _thread_id(conn: Connection[Any]) -> int:
    return int(getattr(conn, "server_thread_id", (0,))[0])


def _endpoint(kwargs: dict[str, Any]) -> str:
    """``host:port`` of a connect attempt (``[v6]:port`` for an IPv6 address)."""
    host = str(kwargs.get("host"))
    return f"[{host}]:{kwargs.get('port')}" if ":" in host else f"{host}:{kwargs.get('port')}"


def _close_quietly(conn: Connection[Any]) -> None:
    try:
        if conn.open:
            conn.close()  # COM_QUIT, so the server frees the slot at once
    except Exception:  # noqa: S110 - closing a broken socket may fail; it is gone either way
        pass
    with contextlib.suppress(Exception):
        conn._force_close()  # type: ignore[attr-defined]


_PLAIN_TEXT = re.compile(r"[^\\\x00-\x1f]*")  # no backslash, no control character


def _escape_any_mode(value: object) -> str:
    """An SQL literal that means the same whether or not the session has ``NO_BACKSLASH_ESCAPES``."""
    if isinstance(value, str):
        if _PLAIN_TEXT.fullmatch(value):
            return "'" + value.replace("'", "''") + "'"  # doubled quotes work in both modes
        return "_utf8mb4 X'" + value.encode("utf-8").hex() + "'"
    if isinstance(value, bytes | bytearray | memoryview):
        return "X'" + bytes(value).hex() + "'"
    if isinstance(value, list | tuple | set | frozenset):
        return "(" + ",".join(_escape_any_mode(item) for item in value) + ")"
    return str(pymysql.converters.escape_item(value, "utf8mb4"))  # numbers, None, dates: no backslashes


def _describe(exc: BaseException) -> str:
    """``errno: message`` for a PyMySQL error, else the class name and text (never the connect arguments)."""
    code = E.error_number(exc)
    if code is not None and len(exc.args) > 1:
        return f"({code}) {exc.args[1]}"
    return f"{type(exc).__name__}: {exc}"
