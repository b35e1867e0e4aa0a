"""The statements ``end()`` housekeeping runs: measure, read the refusal counters, kill zombies, set the idle timeout.

What to do is decided by the pure policies (:mod:`~serverless_mysql.housekeeping`,
:mod:`~serverless_mysql.pressure`); this module only talks to the server and feeds them what it read.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import pymysql

from . import _siblings
from ._driver import DriverConnection
from ._events import Events
from .config import Config
from .errors import (
    ER_KILL_DENIED_ERROR,
    ER_NO_SUCH_THREAD,
    error_number,
    is_connection_lost,
)
from .housekeeping import (
    HEADROOM,
    LIMITS_SQL,
    PROCESSLIST_FALLBACK_ERRORS,
    REFUSALS_SQL,
    SHOW_PROCESSLIST_COLUMNS,
    SHOW_PROCESSLIST_MAX,
    Housekeeper,
    Usage,
    Zombie,
    has_performance_schema_processlist,
    parse_zombies,
    plan,
    usage_row,
    usage_sql,
)
from .pressure import Pressure, herd_behind
from .results import Stats

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["HousekeepingIO"]

logger = logging.getLogger("serverless_mysql.client")


class HousekeepingIO:
    """Runs the housekeeping statements of one client on the connection it is given.

    ``prepare(conn)`` checks that time is left and bounds the next statement by the deadline (it raises
    :class:`~serverless_mysql.DeadlineExceededError` otherwise); ``discard(conn, reason)`` drops a connection lost
    during a KILL.
    """

    def __init__(
        self,
        config: Config,
        *,
        housekeeper: Housekeeper,
        pressure: Pressure,
        stats: Stats,
        events: Events,
        clock: Callable[[], float],
        prepare: Callable[[DriverConnection], None],
        discard: Callable[[DriverConnection, str], None],
    ) -> None:
        self._cfg = config
        self._housekeeper = housekeeper
        self._pressure = pressure
        self._stats = stats
        self._events = events
        self._clock = clock
        self._prepare = prepare
        self._discard = discard
        self._processlist: tuple[str, bool] | None = None  # (server version, read performance_schema.processlist)
        self.short_idle = False  # the session's wait_timeout is pressure_idle_timeout
        self.measured = False  # housekeeping measured on the current connection
        self._read_on_conn = False  # the refusal counters were read on the current connection
        self._connected_at = 0.0  # when the current connection was made

    def connected(self, conn: DriverConnection) -> None:
        """A new connection: its session has the server's idle timeout, and it is not measured yet."""
        self.short_idle = False
        _siblings.record(id(self), conn.connection_id, _server(conn))
        self.measured = False
        self._read_on_conn = False
        self._connected_at = self._clock()

    def run(
        self, conn: DriverConnection, now: float, *, waited: bool, member: bool, first: bool = False
    ) -> tuple[int, bool, bool]:
        """Measure, decide and kill: slots freed by kills, whether the connection was lost, whether it keeps its slot.

        ``first``: the first measurement of a new connection, neither under pressure nor after a wait. ``member``:
        the connection is one of the rotation's (it waited for its slot, or its environment gave one back just
        before): under pressure it gives its slot back unless it freed others; a connection that is not keeps it
        while the user's slots are not all in use (:meth:`Housekeeper.keeps_slot`).
        """
        cfg, hk, stats, pressure = self._cfg, self._housekeeper, self._stats, self._pressure
        counted = first
        if first and self._first_reading(conn, now):
            return 0, False, False
        # After a wait for its slot, or under pressure: are others refused (the counters), and then, unless zombies
        # or a lot call for a scan, give the slot back without one (Housekeeper.pressure_scan). Only where the
        # server's connection count is the account's usage: with an account limit of its own, only a scan counts.
        # A client that does not know the limits yet reads them alone: in a herd most cold starts' first end() comes
        # after a wait, and scanning there only to learn the limits made a fifth of the spike's scans.
        rotating = waited or pressure.under_pressure(now)
        if rotating and hk.limits is None:
            self._read_limits(conn, now)  # stale ones stand until a scan refreshes them, as before
        if rotating and hk.limits is not None and hk.limits[1] == 0:
            if not counted and not pressure.under_pressure(now):
                if not (waited and pressure.own_refusal(now)):
                    self._read_refusals(conn, waited=waited)
                counted = True
            if pressure.under_pressure(now) and not hk.pressure_scan(now):
                if member or not hk.keeps_slot(now):
                    return 0, False, False  # the caller gives the connection back
                self._short_idle(conn)  # kept while others wait: the server frees it if its environment stays idle
                return 0, False, True
        with_limits = hk.limits_stale(now)
        # Never zombies: this connection, and those of this environment's other worker processes (busy or not).
        own_ids = frozenset({conn.connection_id}) | _siblings.thread_ids(_server(conn))
        row = self._measure(conn, with_limits)
        stats.housekeeping_runs += 1
        if with_limits:
            hk.store_limits(now, int(row["max_connections"]), int(row["max_user_connections"]))
        assert hk.limits is not None
        usage = Usage(
            max_connections=hk.limits[0],
            max_user_connections=hk.limits[1],
            total=int(row["total"]),
            user_total=int(row["user_total"]),
            zombies=parse_zombies(row["zombies"], own_ids),
            user_running=int(row["user_running"]),
        )
        hk.record(now, usage)
        hk.scanned(now, len(usage.zombies))
        self.measured = True
        busy = usage.utilization >= cfg.conn_utilization
        if usage.max_user_connections > 0 and usage.used >= usage.limit:
            pressure.account_full(now)  # its refusals (1203) are not counted by the server
        elif busy and not counted and not pressure.under_pressure(now) and pressure.counters_due(now, waited=waited):
            self._read_refusals(conn, busy=True, waited=waited)
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
        freed, lost = self._kill(conn, decision.kill)
        keep = pressed and not freed and not member and hk.keeps_slot(now)
        if lost or (pressed and not freed and not keep):
            return freed, lost, False  # lost during a KILL, or about to be given back: its idle timeout does not matter
        # Not only "busy now": a slot it got after being refused, or kept while others are refused, is one that
        # waiters want, even if this reading caught the server between a few closes and their refills (issue 19:
        # sessions measured just under the threshold kept the server's 8-hour timeout, and the last waiters of a
        # load starved behind them once nobody invoked their environments again).
        if busy or pressed or waited:
            self._short_idle(conn)
        elif usage.utilization < HEADROOM * cfg.conn_utilization and self.short_idle:
            self._set_idle_timeout(conn, "@@GLOBAL.wait_timeout")
        return freed, False, keep

    def _short_idle(self, conn: DriverConnection) -> None:
        """Lower the session's ``wait_timeout`` to ``pressure_idle_timeout`` (one statement, only on a change)."""
        idle = self._cfg.pressure_idle_timeout
        if idle is not None and not self.short_idle:
            self._set_idle_timeout(conn, f"{math.ceil(idle)}")

    def _first_reading(self, conn: DriverConnection, now: float) -> bool:
        """The first ``end()`` of a new connection reads the counters; whether their connection count suffices.

        The reading feeds the pressure policy (against this client's previous reading, if fresh: were others refused
        since? Without one, the server busy and taking connects at a herd's rate since this one's is the sign:
        :meth:`~serverless_mysql.pressure.Pressure.counters`) and carries the server's connection count. Under
        pressure :meth:`run` goes on as for any pressed ``end()``. A scan walks every connection, and a herd of
        newcomers (the fleet after a failover: ~1,000 environments at ~2,000 connections) made one each: O(N^2) on
        the server, its largest cost in the failover drill. So on a server with more than
        :attr:`~Housekeeper.FIRST_SCAN_ALL` connections a newcomer scans only by lot (:meth:`Housekeeper.first_scan`);
        otherwise the count is the measurement when it is under :data:`HEADROOM` of the threshold and the account
        has no connection limit of its own (whose connections only a scan counts). Zombies past
        ``zombie_max_timeout`` then wait for a later scan. Near the threshold it scans.

        The reading used to be taken right after connecting, as a baseline for this one: a statement more for every
        connection (a fifth of the statements in the benchmark's pressured scenarios).
        """
        hk = self._housekeeper
        if hk.limits_stale(now):
            self._read_limits(conn, now)  # "busy" needs them
        count = self._read_refusals(conn)
        if count is None or self._pressure.under_pressure(now) or hk.first_scan(count):
            return False
        assert hk.limits is not None
        if hk.limits[1] > 0:
            return False
        usage = Usage(max_connections=hk.limits[0], max_user_connections=0, total=count, user_total=0)
        if usage.utilization >= HEADROOM * self._cfg.conn_utilization:
            return False
        hk.record(now, usage)
        self.measured = True
        self._stats.housekeeping_runs += 1
        logger.debug("housekeeping", extra={"event": "housekeeping", "used": count, "limit": usage.limit})
        return True

    def _read_limits(self, conn: DriverConnection, now: float) -> None:
        """Read and cache the server's ``max_connections`` and ``max_user_connections`` (one cheap statement)."""
        row = self._run_one(conn, LIMITS_SQL)
        self._housekeeper.store_limits(now, int(row["max_connections"]), int(row["max_user_connections"]))

    def _run_one(self, conn: DriverConnection, sql: str) -> dict[str, Any]:
        """The one row of a housekeeping statement."""
        self._prepare(conn)
        try:
            return conn.run(sql)[0]
        finally:
            self._stats.housekeeping_statements += 1

    # ------------------------------------------------------------------------------------------ statements
    def _read_refusals(self, conn: DriverConnection, *, busy: bool | None = None, waited: bool = False) -> int | None:
        """Feed the server's failed-connect counters to the pressure policy; the server's connection count.

        ``busy``: whether the server was just measured at ``conn_utilization`` or above; ``None``: judged from the
        connection count read with the counters (not busy while the limits are unknown, nor for an account with a
        connection limit of its own). ``waited``: see :meth:`~serverless_mysql.pressure.Pressure.counters`. The first
        reading on a connection also tells it whether a herd connected after this one
        (:func:`~serverless_mysql.pressure.herd_behind`). Nothing is fed, and ``None`` returned, when the counters are
        unreadable.
        """
        self._prepare(conn)
        try:
            rows = conn.run(REFUSALS_SQL)
            values = {str(row["Variable_name"]).lower(): int(row["Value"]) for row in rows}
        except pymysql.MySQLError as exc:
            if is_connection_lost(exc):
                raise
            logger.debug("cannot read the refusal counters", extra={"event": "housekeeping", "errno": exc.args[0]})
            return None
        finally:
            self._stats.housekeeping_statements += 1
        refused, aborted = values.get("connection_errors_max_connections"), values.get("aborted_connects")
        count, connects = values.get("threads_connected"), values.get("connections")
        now, limits = self._clock(), self._housekeeper.limits
        first, self._read_on_conn = not self._read_on_conn, True
        if busy is None:  # unknown without the limits; with an account limit of its own only a scan counts its usage
            busy_at = None if limits is None or limits[1] > 0 else self._cfg.conn_utilization * limits[0]
            busy = busy_at is not None and count is not None and count >= busy_at
        herd = (
            first
            and limits is not None
            and herd_behind(conn.connection_id, self._connected_at, now, connects, limits[0])
        )
        if refused is not None and aborted is not None:
            self._pressure.counters(now, refused, aborted, busy=busy, waited=waited, herd=herd, connects=connects)
        return count

    def _set_idle_timeout(self, conn: DriverConnection, value: str) -> None:
        """Set the session's ``wait_timeout``: short while the server is busy, the server's own otherwise."""
        self._prepare(conn)
        conn.run(f"SET SESSION wait_timeout = {value}")  # a whole number or @@GLOBAL.wait_timeout
        self.short_idle = not value.startswith("@@")
        self._stats.housekeeping_statements += 1
        self._stats.idle_timeout_changes += 1
        logger.debug("session idle timeout set", extra={"event": "idle_timeout", "short": self.short_idle})

    def _measure(self, conn: DriverConnection, with_limits: bool) -> dict[str, Any]:
        """Run the housekeeping statement on the server's best processlist source and return its row.

        ``performance_schema.processlist`` where the server has one that works, else ``information_schema``, or on a
        server of up to :data:`~serverless_mysql.housekeeping.SHOW_PROCESSLIST_MAX` connections ``SHOW PROCESSLIST``,
        counted here. The choice is remembered per server version, so finding out costs at most one statement per
        client (per server upgrade), and only on servers whose version says they may have the table.
        """
        version = conn.version  # from the handshake: no round trip
        known = self._processlist
        perf = known[1] if known is not None and known[0] == version else has_performance_schema_processlist(version)
        limits = self._housekeeper.limits
        if not perf and not with_limits and limits is not None and limits[0] <= SHOW_PROCESSLIST_MAX:
            return self._show_processlist(conn)  # a small server: a seventh of the statement's server CPU
        row = self._usage_row(conn, with_limits, performance_schema=perf)
        if perf and (row is None or not int(row["self_seen"])):
            # No such table, no access, or an empty table (the Performance Schema is off): never this connection.
            perf = False
            row = self._usage_row(conn, with_limits, performance_schema=False)
        if known != (version, perf):
            logger.debug("processlist source", extra={"event": "housekeeping", "performance_schema": perf})
        self._processlist = (version, perf)
        assert row is not None  # an aggregate always returns one row; only the performance_schema attempt gives None
        return row

    def _usage_row(
        self, conn: DriverConnection, with_limits: bool, *, performance_schema: bool
    ) -> dict[str, Any] | None:
        """The statement's row, or ``None`` when ``performance_schema.processlist`` cannot be read."""
        self._prepare(conn)
        try:
            sql = usage_sql(with_limits=with_limits, performance_schema=performance_schema)
            rows = conn.run(sql, (int(self._cfg.zombie_min_timeout),))
            return rows[0] if rows else None
        except pymysql.MySQLError as exc:
            errno = error_number(exc)
            if not performance_schema or errno not in PROCESSLIST_FALLBACK_ERRORS:
                raise
            logger.debug("performance_schema.processlist unusable", extra={"event": "housekeeping", "errno": errno})
            return None
        finally:
            self._stats.housekeeping_statements += 1

    def _show_processlist(self, conn: DriverConnection) -> dict[str, Any]:
        """The housekeeping statement's row, counted from ``SHOW PROCESSLIST`` (:func:`usage_row`)."""
        self._prepare(conn)
        try:
            rows = conn.columns("SHOW PROCESSLIST", SHOW_PROCESSLIST_COLUMNS)
        finally:
            self._stats.housekeeping_statements += 1
        return usage_row(rows, conn.connection_id, int(self._cfg.zombie_min_timeout))

    def _kill(self, conn: DriverConnection, zombies: tuple[Zombie, ...]) -> tuple[int, bool]:
        stats, events = self._stats, self._events
        freed = 0
        for zombie in zombies:
            try:
                self._prepare(conn)
                conn.run("KILL %s", (zombie.thread_id,))
            except pymysql.MySQLError as exc:
                stats.housekeeping_statements += 1
                stats.kill_errors += 1
                if error_number(exc) == ER_NO_SUCH_THREAD:
                    freed += 1  # someone else killed it first: the slot is free all the same
                    continue
                events.kill_error(exc, zombie.thread_id)
                if is_connection_lost(exc):
                    self._discard(conn, "lost during KILL")
                    return freed, True
                if error_number(exc) == ER_KILL_DENIED_ERROR:
                    break  # not our thread after all; the others will be refused too
                continue
            stats.housekeeping_statements += 1
            stats.zombies_killed += 1
            freed += 1
            logger.debug("killed zombie", extra={"event": "kill", "thread_id": zombie.thread_id, "idle": zombie.idle})
            events.kill(zombie.thread_id, zombie.idle)
        return freed, False


def _server(conn: DriverConnection) -> str:
    """The server's ``ip:port`` (set at each TCP connect; "" over a unix socket)."""
    return str(getattr(conn, "server_address", ""))
