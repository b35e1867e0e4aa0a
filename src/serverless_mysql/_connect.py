"""Opening a connection, in layers that each do one thing.

:meth:`Connector.open` (bookkeeping: counters, log, ``on_connect``) -> :meth:`Connector._wait_for_slot` (retries:
the :class:`~serverless_mysql.retry.RetryPolicy` says whether, the :class:`~serverless_mysql.pressure.Pressure`
policy how long) -> :meth:`Connector._attempt` (timeouts: each handshake operation bounded by ``connect_timeout``
and all of them by the deadline) -> :meth:`Connector._credentials` (the provider's fields, refreshed on request).
"""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import Callable

import pymysql

from . import _driver
from ._cluster import (
    WITHOUT_SUPER_READ_ONLY,
    is_writable,
    parse_writability,
    read_only_variables,
    resolve_role,
    writability_sql,
)
from ._credentials import time_budget
from ._events import Events
from ._record import record
from .config import Config
from .errors import (
    ER_OPTION_PREVENTS_STATEMENT,
    ER_UNKNOWN_SYSTEM_VARIABLE,
    ConnectError,
    DeadlineExceededError,
    RetriesExhaustedError,
    ServerlessMySQLError,
    error_number,
    is_read_only_refusal,
    is_timeout,
)
from .pressure import FULL, WINDOW, Pressure
from .results import Stats
from .retry import RetryPolicy

CUT_SHORT = 0.25
"""Seconds: an attempt the deadline left less time than this (and than ``connect_timeout``) that times out says nothing
about the server (a loaded host may not finish a handshake that fast); the error before it is the one named."""

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["DEFAULT_CONNECT_WAIT", "Connected", "Connector", "ReadOnlyServerError", "describe"]

logger = logging.getLogger("serverless_mysql.client")

DEFAULT_CONNECT_WAIT = 30.0
"""Seconds a connect may wait for a slot without a deadline or ``max_connect_wait``."""


class ReadOnlyServerError(pymysql.err.OperationalError):
    """A writer client's new connection reached a read-only server (it was closed): retried as a server down."""


@record(frozen=True, eq=False)  # not a NamedTuple: see _record
class Connected:
    """A new connection and how it was got."""

    conn: _driver.DriverConnection
    host: str
    waited_for_slot: bool  # refused as "full" at least once: its end() reads the counters, may kill zombies
    limits: tuple[int, int] | None = None  # (max_connections, max_user_connections), read by the writability check
    member: bool = False  # the rotation's: refused (full or down), or its environment gave a slot back just before


class Connector:
    """Opens the connections of one client; holds no connection itself."""

    def __init__(
        self,
        config: Config,
        *,
        pressure: Pressure,
        policy: RetryPolicy,
        stats: Stats,
        events: Events,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self._cfg = config
        self._pressure = pressure
        self._policy = policy
        self._stats = stats
        self._events = events
        self._clock = clock
        self._sleep = sleep
        self.errors = 0  # failed connect attempts (the client's error count includes them)
        self._no_super_read_only: set[str] = set()  # server versions that claimed super_read_only and lacked it
        self._limits: tuple[int, int] | None = None  # read by the last attempt's writability check
        self._cut_short = False  # the deadline left the last attempt less than CUT_SHORT

    # ------------------------------------------------------------------------------------------ bookkeeping
    def open(self, deadline: float | None, *, gave_back_at: float, waiting_since: float | None = None) -> Connected:
        """Open a connection, waiting for a slot as the policies say; raises a :class:`ServerlessMySQLError`.

        ``waiting_since``: when the statement that needs it began waiting (its re-runs share one wait bound).
        """
        started = self._clock()
        wait_end = self.wait_end(started if waiting_since is None else waiting_since, deadline)
        self._pressure.start_wait(started)
        queued = started - gave_back_at < WINDOW
        if queued:
            # It gave its slot back a moment ago because others were refused one: it queues behind them (one paced
            # wait before its first attempt) instead of taking the slot straight back, which would keep the waiters
            # waiting and fatten the tail.
            pressure = self._pressure
            first = pressure.next_wait(
                attempt=0, max_retries=1, now=started, delay=pressure.queue_delay(started), wait_end=wait_end
            )
            if first is not None:
                self._sleep(first)
        conn, kwargs, attempt, full_refusals, refused_at = self._wait_for_slot(started, wait_end, deadline)
        stats = self._stats
        stats.connects += 1
        now = self._clock()
        # The next wait's queue length, and when this one was last refused (its end() may stand on that refusal).
        self._pressure.learn(
            now,
            now - started,
            refused_full=full_refusals > 0,
            refused_at=refused_at,
            own_share=full_refusals / (attempt + 1),
        )
        if attempt:
            stats.connect_wait_seconds += now - started
        logger.debug(
            "connected",
            extra={"event": "connect", "thread_id": conn.connection_id, "attempts": attempt + 1, "full": full_refusals},
        )
        return Connected(conn, str(kwargs["host"]), full_refusals > 0, self._limits, queued or attempt > 0)

    def wait_end(self, started: float, deadline: float | None) -> float | None:
        """When a connect that began at ``started`` stops waiting: the deadline or ``max_connect_wait``."""
        bound = self._cfg.max_connect_wait
        if bound is None:
            bound = None if deadline is not None else DEFAULT_CONNECT_WAIT
        by_bound = None if bound is None else started + bound
        if deadline is None:
            return by_bound
        return deadline if by_bound is None else min(deadline, by_bound)

    # ------------------------------------------------------------------------------------------ retries
    def _wait_for_slot(
        self, started: float, wait_end: float | None, deadline: float | None
    ) -> tuple[_driver.DriverConnection, dict[str, Any], int, int, float]:
        """Attempt until connected.

        Returns the connection, its arguments, the retries, the "full" refusals and when the last of those came.
        """
        cfg, policy, pressure, stats = self._cfg, self._policy, self._pressure, self._stats
        attempt = 0  # retries so far
        previous = 0.0
        full_refusals = 0
        refused_at = -math.inf  # when it was last refused as "full"
        refresh = refreshed = False
        refreshable = cfg.credentials is not None and bool(getattr(cfg.credentials, "refreshable", False))
        last_exc: BaseException | None = None  # named by a deadline error, whichever check runs out of time
        while True:
            kwargs = self._credentials(refresh, deadline)
            refresh = False
            try:
                conn = self._attempt(kwargs, deadline, started, last_exc)
            except pymysql.MySQLError as exc:
                # The finished frames of the attempt (its connection, socket and packets, the previous attempt's
                # error) go now, not at the next run of the cycle collector: this frame holds the error and the
                # error's traceback holds this frame, and a host of 500 waiting environments paused 300-500 ms per
                # collection of what a seed burst's waits left (issue 20). The traceback still prints.
                _clear_frames(exc)
                # An attempt the deadline cut short that timed out says nothing about the server: the refusal before
                # it does (a full server's waiter on a loaded host otherwise reported "can't connect", 2003).
                cut = self._cut_short and is_timeout(exc) and last_exc is not None
                last_exc = last_exc if cut else exc
                self.errors += 1
                code = error_number(exc)
                logger.debug(
                    "connect attempt failed", extra={"event": "connect_error", "errno": code, "attempt": attempt + 1}
                )
                if policy.refresh_credentials(exc, refreshable=refreshable, refreshed=refreshed):
                    refresh = refreshed = True  # the password may have rotated: fetch it again, once
                    continue
                kind = policy.connect_failure(exc)
                if kind is None:
                    self._events.connect_error(exc)
                    raise ConnectError(
                        f"cannot connect to {_endpoint(kwargs)}: {describe(exc)}",  # the host tried (maybe a secret's)
                        attempts=attempt + 1,
                        elapsed=self._clock() - started,
                    ) from exc
                now = self._clock()
                read_only = kind != FULL and is_read_only_refusal(exc)
                if kind == FULL:
                    full_refusals += 1
                    refused_at = now
                    stats.refused_full += 1
                elif read_only:
                    stats.refused_read_only += 1
                else:
                    stats.refused_down += 1
                # Over before the next delay is drawn: a backoff callable is asked once per retry that is made.
                if pressure.wait_over(attempt=attempt, max_retries=cfg.max_retries, now=now, wait_end=wait_end):
                    self._events.connect_error(exc)
                    assert last_exc is not None
                    # The error it names is its __cause__ (and errno); a cut-short final attempt stays its __context__.
                    raise self._retry_failure(attempt, started, last_exc, deadline, wait_end, cut=cut) from last_exc
                left = None if wait_end is None else wait_end - now
                wanted = pressure.delay(kind, attempt + 1, previous, now - started, read_only=read_only, left=left)
                delay = pressure.next_wait(
                    attempt=attempt, max_retries=cfg.max_retries, now=now, delay=wanted, wait_end=wait_end
                )
                assert delay is not None  # the wait is not over: at worst the delay is cut to a final attempt
                attempt += 1
                previous = delay
                stats.connect_retries += 1
                self._events.retry(exc, attempt, delay, cfg.backoff if isinstance(cfg.backoff, str) else "custom")
                logger.debug("connect retry", extra={"event": "connect_retry", "errno": code, "delay": delay})
                self._sleep(delay)
            else:
                last_exc = None  # its traceback holds this frame: a cycle once this frame is done
                return conn, kwargs, attempt, full_refusals, refused_at

    def _retry_failure(
        self,
        attempt: int,
        started: float,
        exc: BaseException,
        deadline: float | None,
        wait_end: float | None,
        *,
        cut: bool = False,
    ) -> ServerlessMySQLError:
        """The error of a wait that is over, naming ``exc``; ``cut``: its final attempt ran out of time."""
        waited = self._clock() - started
        if attempt < self._cfg.max_retries:
            within = "deadline" if deadline is not None and wait_end == deadline else "max_connect_wait"
            final = " (the final attempt ran out of time)" if cut else ""
            return DeadlineExceededError(
                f"{within} reached after {waited:.3f}s and {attempt + 1} connect attempts; {_last(exc)}{final}",
                waited=waited,
                last_error=exc,
            )
        return RetriesExhaustedError(
            f"gave up connecting after {attempt + 1} attempts in {waited:.3f}s; last error: {describe(exc)}",
            attempts=attempt + 1,
            elapsed=waited,
        )

    # ------------------------------------------------------------------------------------------ timeouts
    def _attempt(
        self, kwargs: dict[str, Any], deadline: float | None, started: float, last_exc: BaseException | None
    ) -> _driver.DriverConnection:
        """One attempt: each handshake read and write waits at most ``connect_timeout``, all end by the deadline."""
        timeout = self._cfg.connect_timeout
        if deadline is not None:
            left = deadline - self._clock()
            if left <= 0.001:
                self._deadline_spent(started, last_exc)
            timeout = min(timeout, left)
        self._cut_short = timeout < min(self._cfg.connect_timeout, CUT_SHORT)
        self._stats.connect_attempts += 1
        self._limits = None
        conn = _driver.connect(kwargs, timeout=timeout, deadline=deadline, clock=self._clock)
        cfg = self._cfg
        conn.set_io_limits(cfg.read_timeout, cfg.write_timeout, deadline)  # the statement timeouts from now on
        if cfg.server_role != "any" and resolve_role(cfg.server_role, str(kwargs["host"])) == "writer":
            self._check_writable(conn, _endpoint(kwargs))
        return conn

    def _check_writable(self, conn: _driver.DriverConnection, endpoint: str) -> None:
        """One statement: does the server accept writes? A read-only one is closed and refused like a down one.

        The server's limits ride along (kept for housekeeping, see :class:`Connected`).
        """
        version = conn.version  # from the handshake: MariaDB has no super_read_only, MySQL >= 5.7.8 has
        names = WITHOUT_SUPER_READ_ONLY if version in self._no_super_read_only else read_only_variables(version)
        try:
            try:
                rows = conn.run(writability_sql(names))
            except pymysql.MySQLError as exc:
                if error_number(exc) != ER_UNKNOWN_SYSTEM_VARIABLE or names == WITHOUT_SUPER_READ_ONLY:
                    raise
                self._no_super_read_only.add(version)  # once per server version
                names = WITHOUT_SUPER_READ_ONLY
                rows = conn.run(writability_sql(names))
            try:
                flags, limits = parse_writability(rows[0]["state"], names)
            except (IndexError, KeyError, ValueError) as exc:  # not a MySQL-compatible answer: no retry fixes it
                raise ConnectError(f"cannot connect to {endpoint}: unexpected answer to the writability check") from exc
        except BaseException:
            conn.close_quietly()
            raise
        if is_writable(flags):
            self._limits = limits
            return
        conn.close_quietly()  # COM_QUIT: the slot is free at once
        found = ", ".join(f"{name}={value}" for name, value in flags.items())
        logger.debug("read-only server at connect", extra={"event": "read_only_server"})
        raise ReadOnlyServerError(
            ER_OPTION_PREVENTS_STATEMENT,
            f"only read-only servers answered at {endpoint} (--read-only: {found}); server_role 'writer' waits "
            "for a writable one",
        )

    def _deadline_spent(self, started: float, last_exc: BaseException | None) -> NoReturn:
        waited = self._clock() - started
        why = "" if last_exc is None else f"; {_last(last_exc)}"
        raise DeadlineExceededError(
            f"deadline reached after {waited:.3f}s of connecting{why}", waited=waited, last_error=last_exc
        ) from last_exc

    # ------------------------------------------------------------------------------------------ credentials
    def _credentials(self, refresh: bool, deadline: float | None) -> dict[str, Any]:
        """The ``pymysql.connect`` arguments: options, the provider's fields (explicit options win), connect_args."""
        cfg = self._cfg
        values: dict[str, Any] = {"host": cfg.host, "port": cfg.port, "user": cfg.user}
        values["password"], values["database"] = cfg.password, cfg.database
        extra: dict[str, Any] = {}
        if cfg.credentials is not None:
            left = None if deadline is None else deadline - self._clock()
            with time_budget(left):  # lets the provider bound its network calls by the deadline
                creds = cfg.credentials.get_credentials(refresh=refresh)
            supplied = {"host": creds.host, "port": creds.port, "user": creds.user}
            supplied["password"], supplied["database"] = creds.password, creds.database
            values.update({k: v for k, v in supplied.items() if v is not None and k not in cfg.explicit})
            extra.update(creds.connect_args)
        return {"charset": "utf8mb4", "autocommit": True, **extra, **cfg.connect_args, **values}


def _clear_frames(exc: BaseException) -> None:
    """Clear the finished frames of ``exc``'s traceback and of the errors it was raised from or during."""
    seen: set[int] = set()
    err: BaseException | None = exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        traceback.clear_frames(err.__traceback__)
        err = err.__cause__ or err.__context__


def _endpoint(kwargs: dict[str, Any]) -> str:
    """``host:port`` of a connect attempt (``[v6]:port`` for an IPv6 address)."""
    host = str(kwargs.get("host"))
    return f"[{host}]:{kwargs.get('port')}" if ":" in host else f"{host}:{kwargs.get('port')}"


def _last(exc: BaseException) -> str:
    """The end of a gave-up message: the last error, said plainly when only read-only servers answered."""
    if isinstance(exc, ReadOnlyServerError):
        return str(exc.args[1])
    return f"last error: {describe(exc)}"


def describe(exc: BaseException) -> str:
    """``errno: message`` for a PyMySQL error, else the class name and text (never the connect arguments)."""
    code = error_number(exc)
    if code is not None and len(exc.args) > 1:
        return f"({code}) {exc.args[1]}"
    return f"{type(exc).__name__}: {exc}"
