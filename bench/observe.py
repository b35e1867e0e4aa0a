"""What the server sees: connections over time, per-user statement counters, global connection counters.

All of it is read as root through MariaDB's ``extra_port`` (see ``harness/mariadb.py``), so the observer
never takes one of the application's ``max_connections`` slots and never shows up in the application user's
numbers. Counters survive a server crash: they are sampled twice a second (and right before a crash) and summed
over server lifetimes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pymysql

__all__ = ["CounterSet", "Sampler"]

# information_schema.USER_STATISTICS columns kept per run (MariaDB with --userstat=1).
USER_COLUMNS = (
    "TOTAL_CONNECTIONS",
    "SELECT_COMMANDS",
    "UPDATE_COMMANDS",
    "OTHER_COMMANDS",
    "DENIED_CONNECTIONS",
    "LOST_CONNECTIONS",
    "ACCESS_DENIED",
    "COMMIT_TRANSACTIONS",
    "ROLLBACK_TRANSACTIONS",
    "BUSY_TIME",
    "CPU_TIME",
)
# The Com_ counters split the statements by kind (server-wide: the observer's own reads are among the SELECTs):
# what each part of the policy costs the server, counted by the server (issue 20).
STATUS_VARIABLES = (
    "CONNECTIONS",
    "ABORTED_CONNECTS",
    "CONNECTION_ERRORS_MAX_CONNECTIONS",
    "QUESTIONS",
    "COM_SELECT",
    "COM_SHOW_STATUS",
    "COM_SHOW_PROCESSLIST",
    "COM_SET_OPTION",
    "COM_KILL",
)


class CounterSet:
    """Cumulative counters that survive resets: a value lower than the last one starts a new server lifetime."""

    def __init__(self) -> None:
        self.base: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def update(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            last = self.last.get(key, 0.0)
            if value < last:
                self.base[key] = self.base.get(key, 0.0) + last
            self.last[key] = value

    def totals(self) -> dict[str, float]:
        return {k: self.base.get(k, 0.0) + v for k, v in self.last.items()}

    def new_lifetime(self, keep: tuple[str, ...] = ()) -> None:
        """The server was restarted: its counters start again from 0, whatever the next reading says (except the
        ``keep`` ones, which the client counts itself)."""
        for key, value in self.last.items():
            if key in keep:
                continue
            self.base[key] = self.base.get(key, 0.0) + value
            self.last[key] = 0.0


@dataclass
class Sample:
    t: float
    app_conns: int | None
    sleeping: int | None
    oldest_sleep: int | None
    threads_connected: int | None
    idle_1s: int | None = None  # the user's connections asleep for a second or more: slots held that nobody uses


@dataclass
class Sampler:
    """Samples the application user's connections every ``interval`` s from a root connection (a thread)."""

    server: Any
    app_user: str
    interval: float = 0.05
    samples: list[Sample] = field(default_factory=list)
    user_counters: CounterSet = field(default_factory=CounterSet)
    status_counters: CounterSet = field(default_factory=CounterSet)
    root_connects: int = 0
    sample_errors: int = 0
    initial_status: dict[str, float] = field(default_factory=dict)
    initial_user: dict[str, float] = field(default_factory=dict)
    # (seconds since t0, cumulative USER_STATISTICS + GLOBAL_STATUS totals) at every reading of the counters.
    counter_log: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    counter_interval: float = 0.5

    def __post_init__(self) -> None:
        self._conn: Any = None
        self._lock = threading.Lock()
        self._counter_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self.t0 = time.monotonic()

    # ---- root connection -------------------------------------------------------------------------------------

    def _query(self, sql: str, args: Any = None) -> list[dict[str, Any]]:
        with self._lock:
            for attempt in range(2):
                try:
                    if self._conn is None:
                        self.root_connects += 1
                        self._conn = self.server.root(connect_timeout=1, read_timeout=5, write_timeout=5)
                    with self._conn.cursor() as cur:
                        cur.execute(sql, args)
                        return list(cur.fetchall())
                except (pymysql.err.OperationalError, pymysql.err.InterfaceError):  # noqa: PERF203 - one retry
                    self._drop()
                    if attempt == 1:
                        raise
            raise AssertionError("unreachable")

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn._force_close()
            self._conn = None

    # ---- sampling --------------------------------------------------------------------------------------------

    def start(self, t0: float | None = None) -> None:
        self.t0 = t0 if t0 is not None else time.monotonic()
        self.read_counters()
        self.initial_status = self.status_counters.totals()
        self.initial_user = self.user_counters.totals()
        self._thread.start()

    def deltas(self) -> tuple[dict[str, float], dict[str, float]]:
        """(USER_STATISTICS, GLOBAL_STATUS) counters accumulated since :meth:`start`."""
        user = {k: v - self.initial_user.get(k, 0.0) for k, v in self.user_counters.totals().items()}
        status = {k: v - self.initial_status.get(k, 0.0) for k, v in self.status_counters.totals().items()}
        return user, status

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def close(self) -> None:
        self.stop()
        with self._lock:
            self._drop()

    def _loop(self) -> None:
        tick = 0
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample_once()
            tick += 1
            if tick % max(1, round(self.counter_interval / self.interval)) == 0:
                with contextlib.suppress(pymysql.err.Error):
                    self.read_counters()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def sample_once(self) -> Sample:
        now = time.monotonic()
        try:
            row = self._query(
                "SELECT COUNT(*) AS n, COALESCE(SUM(COMMAND = 'Sleep'), 0) AS sleeping,"
                " COALESCE(MAX(IF(COMMAND = 'Sleep', TIME, 0)), 0) AS oldest,"
                " COALESCE(SUM(COMMAND = 'Sleep' AND TIME >= 1), 0) AS idle_1s,"
                " (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS"
                "   WHERE VARIABLE_NAME = 'THREADS_CONNECTED') AS threads"
                " FROM information_schema.PROCESSLIST WHERE USER = %s",
                [self.app_user],
            )[0]
            # Timed when the answer came: after a restart the query waits for the server (the outage's end).
            t = time.monotonic() - self.t0
            sample = Sample(
                t, int(row["n"]), int(row["sleeping"]), int(row["oldest"]), int(row["threads"]), int(row["idle_1s"])
            )
        except pymysql.err.Error:
            self.sample_errors += 1
            sample = Sample(now - self.t0, None, None, None, None)
        self.samples.append(sample)
        return sample

    def read_counters(self) -> None:
        """Snapshot USER_STATISTICS (application user) and the global connection counters."""
        cols = ", ".join(USER_COLUMNS)
        rows = self._query(f"SELECT {cols} FROM information_schema.USER_STATISTICS WHERE USER = %s", [self.app_user])
        names = ", ".join(f"'{n}'" for n in STATUS_VARIABLES)
        status = self._query(
            "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS"
            f" WHERE VARIABLE_NAME IN ({names})"
        )
        values = {str(r["VARIABLE_NAME"]).upper(): float(r["VARIABLE_VALUE"]) for r in status}
        values["ROOT_CONNECTS"] = float(self.root_connects)
        with self._counter_lock:
            self.user_counters.update({c: float(rows[0][c]) if rows else 0.0 for c in USER_COLUMNS})
            self.status_counters.update(values)
            self.counter_log.append(
                (time.monotonic() - self.t0, {**self.user_counters.totals(), **self.status_counters.totals()})
            )

    def server_restarted(self) -> None:
        """Call after the server was killed (before it is back): the next readings start a new lifetime."""
        with self._counter_lock:
            self.user_counters.new_lifetime()
            self.status_counters.new_lifetime(keep=("ROOT_CONNECTS",))

    def app_processlist(self) -> list[dict[str, Any]]:
        return self._query(
            "SELECT ID, COMMAND, TIME FROM information_schema.PROCESSLIST WHERE USER = %s", [self.app_user]
        )

    def kill_all(self) -> int:
        """KILL every connection of the application user (the KILL storm); returns how many were killed."""
        killed = 0
        for row in self.app_processlist():
            try:
                self._query("KILL CONNECTION %s", [int(row["ID"])])
                killed += 1
            except pymysql.err.OperationalError:  # noqa: PERF203
                pass  # already gone
        return killed

    def forget_connection(self) -> None:
        """The server is about to die: drop the root connection without a round trip."""
        with self._lock:
            self._drop()
