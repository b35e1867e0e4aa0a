"""``python -m bench.server_cost``: what each statement of the overload policy costs the server (issue 20).

mariadbd's own CPU time (utime + stime from /proc) per operation, and this process's (the client's: PyMySQL, or the
library's driver where the library reads otherwise), against a private MariaDB that holds 40 idle
connections of the application user, as a busy server's processlist does, and again at 1,000 (a fleet after a
failover): the statements that visit every connection grow with it. On a shared machine the absolute numbers move
by up to 2x from run to run; the ratios are what to read. The "(before)" row is the counters' read as it was
before it moved to SESSION scope.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import pymysql
import pymysql.cursors

from bench.strategies import cpu_seconds_of
from harness.mariadb import MariaDBServer
from serverless_mysql._driver import connect
from serverless_mysql.housekeeping import LIMITS_SQL, REFUSALS_SQL, SHOW_PROCESSLIST_COLUMNS, usage_row, usage_sql

__all__ = ["main"]

MAX_CONNECTIONS = 60
HELD = 40
CROWD = 1000  # the second size: held connections

_GLOBAL_COUNTERS = "SHOW GLOBAL STATUS WHERE Variable_name IN ('Connection_errors_max_connections', 'Aborted_connects')"


def _cost(server: MariaDBServer, name: str, fn: Callable[[], object], n: int) -> str:
    assert server.pid is not None
    before = cpu_seconds_of(server.pid) or 0.0
    started, client = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    after = cpu_seconds_of(server.pid) or 0.0
    wall, client = time.perf_counter() - started, time.process_time() - client
    return f"| {name} | {1e6 * (after - before) / n:,.0f} us | {1e6 * client / n:,.0f} us | {n} | {wall:.1f} s |"


def main() -> None:
    """Print a markdown table: server CPU per operation."""
    server = MariaDBServer(max_connections=MAX_CONNECTIONS)
    server.start()
    held: list[Any] = []
    others: list[Any] = []  # the probe's own connections
    try:
        user = server.create_user()
        kw: dict[str, Any] = {
            "host": server.host,
            "port": server.port,
            "user": user.name,
            "password": user.password,
            "database": user.database,
            "autocommit": True,
            "charset": "utf8mb4",
            "ssl_disabled": True,
        }
        held = [pymysql.connect(**kw) for _ in range(HELD)]
        conn = pymysql.connect(**kw, cursorclass=pymysql.cursors.DictCursor)
        driver = connect(kw, timeout=5.0, deadline=None, clock=time.monotonic)  # the library's own reader
        others += [conn, driver]

        def run(sql: str, args: Any = None) -> Callable[[], object]:
            def once() -> object:
                with conn.cursor() as cur:
                    cur.execute(sql, args)
                    return cur.fetchall()

            return once

        def login() -> None:
            pymysql.connect(**kw).close()

        def refused() -> None:
            with contextlib.suppress(pymysql.err.OperationalError):
                pymysql.connect(**kw).close()

        def statements(count: int) -> list[str]:
            return [
                _cost(server, f"the refusal counters, SESSION scope ({count} connections)", run(REFUSALS_SQL), 2000),
                _cost(server, f"(before) the counters, GLOBAL scope ({count})", run(_GLOBAL_COUNTERS), 2000),
                _cost(
                    server,
                    f"the housekeeping statement ({count} connections)",
                    run(usage_sql(with_limits=False), (3,)),
                    500,
                ),
                _cost(server, f"`SHOW PROCESSLIST`, every column decoded ({count})", run("SHOW PROCESSLIST"), 500),
                _cost(
                    server,
                    f"the scan as `SHOW PROCESSLIST`, four columns counted ({count})",
                    lambda: usage_row(
                        driver.columns("SHOW PROCESSLIST", SHOW_PROCESSLIST_COLUMNS), driver.connection_id, 3
                    ),
                    500,
                ),
            ]

        rows = [
            "| Operation | Server CPU per operation | Client CPU | Operations | Wall |",
            "|---|---:|---:|---:|---:|",
            _cost(server, "`SELECT 1`", run("SELECT 1"), 3000),
            _cost(server, "`SELECT SLEEP(0.02)` (the benchmark's handler statement)", run("SELECT SLEEP(0.02)"), 200),
            _cost(server, "`SET SESSION wait_timeout = 3`", run("SET SESSION wait_timeout = 3"), 2000),
            _cost(server, "the server's limits (`SELECT @@max_connections, ...`)", run(LIMITS_SQL), 2000),
            *statements(HELD + 2),
            _cost(server, "a login (connect + COM_QUIT)", login, 600),
        ]
        held += [pymysql.connect(**kw) for _ in range(MAX_CONNECTIONS - HELD - 2)]  # full now
        rows.append(_cost(server, "a refused connect (1040)", refused, 600))
        server.set_global("max_connections", CROWD + 10)
        held += [pymysql.connect(**kw) for _ in range(CROWD - len(held))]
        rows += statements(len(held) + 2)
        print("\n".join(rows))
    finally:
        for c in held + others:
            with contextlib.suppress(Exception):
                c.close()
        with contextlib.suppress(Exception):
            if server.running:
                server.crash()
        server.cleanup()


if __name__ == "__main__":
    main()
