"""What end() housekeeping looks at: whose connections (user names with '@') and where (the processlist source)."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

import pytest
from pymysql.constants import CLIENT

from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import ServerlessMySQL, _processlist, housekeeping
from serverless_mysql import _housekeeping_io as housekeeping_io
from serverless_mysql._driver import connect
from tests.integration.conftest import ClientFactory

pytestmark = pytest.mark.integration
Factory = Any


def at_sign_user(server: MariaDBServer, *, max_user_connections: int = 0) -> AppUser:
    """An account whose name contains '@' (``svc@corp``-style), which ``create_user`` does not allow."""
    name, password = f"svc@corp{random.randrange(10**6)}", "pw-" + str(random.randrange(10**9))
    limits = f" WITH MAX_USER_CONNECTIONS {max_user_connections}" if max_user_connections else ""
    server.execute(f"CREATE USER %s@'%%' IDENTIFIED BY %s{limits}", [name, password])
    server.execute(f"GRANT ALL PRIVILEGES ON `{server.database}`.* TO %s@'%%'", [name])
    return AppUser(name=name, password=password, host=server.host, port=server.port, database=server.database)


def test_user_name_with_at_sign_gets_its_zombies_counted_and_killed(
    server_factory: Factory, client_factory: ClientFactory
) -> None:
    server = server_factory(max_connections=20)
    app = at_sign_user(server, max_user_connections=10)  # the account limit makes utilization count user_total
    try:
        zombies = server.open_zombies(app, 4)
        time.sleep(1.1)
        killed: list[int] = []
        db = client_factory(app, zombie_min_timeout=1, zombie_max_timeout=1, on_kill=lambda t, idle: killed.append(t))
        db.query("SELECT 1")
        db.end()
        assert db.get_stats().last_utilization == pytest.approx(5 / 10)  # 4 zombies + its own connection
        assert sorted(killed) == sorted(zombies)  # all past zombie_max_timeout
        assert server.wait_listed(zombies, set()) == set()
        assert db.get_stats().zombies_killed == 4
    finally:
        server.close_zombies()


# ---- the processlist source: performance_schema.processlist where it works, else information_schema ----------


@pytest.fixture
def sources(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, for each housekeeping statement, whether it read performance_schema.processlist."""
    used: list[bool] = []

    def spy(*, with_limits: bool, performance_schema: bool = False) -> str:
        used.append(performance_schema)
        return housekeeping.usage_sql(with_limits=with_limits, performance_schema=performance_schema)

    monkeypatch.setattr(housekeeping_io, "usage_sql", spy)
    return used


def measure_and_kill(server: MariaDBServer, app: AppUser, client_factory: ClientFactory) -> ServerlessMySQL:
    """3 zombies past ``zombie_max_timeout``; a client that measures at every end(); its first end() done."""
    zombies = server.open_zombies(app, 3)
    time.sleep(1.1)
    db = client_factory(app, zombie_min_timeout=1, zombie_max_timeout=1, used_conns_freq=0)
    db.query("SELECT 1")
    db.end()
    assert db.get_stats().last_utilization == pytest.approx(4 / 10)  # 3 zombies + its own connection
    assert db.get_stats().zombies_killed == 3
    assert server.wait_listed(zombies, set()) == set()
    return db


def statements_of_next_end(db: ServerlessMySQL) -> int:
    before = db.get_stats().housekeeping_statements
    db.query("SELECT 1")
    db.end()
    return db.get_stats().housekeeping_statements - before


def shows_of_next_end(server: MariaDBServer, db: ServerlessMySQL) -> int:
    """The next end()'s SHOW PROCESSLISTs (it makes one statement: asserted)."""
    before = int(server.status("Com_show_processlist") or 0)
    assert statements_of_next_end(db) == 1
    return int(server.status("Com_show_processlist") or 0) - before


@pytest.mark.parametrize("performance_schema", ["OFF", "ON"])
def test_mariadb_reads_information_schema_at_no_extra_cost(
    performance_schema: str,
    server_factory: Factory,
    make_user: Factory,
    client_factory: ClientFactory,
    sources: list[bool],
) -> None:
    server = server_factory(max_connections=20, extra_args=[f"--performance-schema={performance_schema}"])
    assert int(server.get_global("performance_schema")) == (performance_schema == "ON")
    db = measure_and_kill(server, make_user(server, max_user_connections=10), client_factory)
    assert (
        db.get_stats().housekeeping_statements == 1 + 3
    )  # the measurement and 3 KILLs: no probe (used_conns_freq=0: no first reading of the counters)
    assert shows_of_next_end(server, db) == 1  # the limits known, a small server: SHOW PROCESSLIST, counted here
    assert sources == [False]


@pytest.mark.parametrize(("grant", "errno"), [(False, 1142), (True, 1146)])
def test_falls_back_to_information_schema_once_where_performance_schema_has_no_processlist(
    grant: bool,
    errno: int,
    server_factory: Factory,
    make_user: Factory,
    client_factory: ClientFactory,
    sources: list[bool],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A server whose version promises the table but which does not have it: MariaDB with the Performance Schema on
    # has a performance_schema database without a processlist table. A user without grants there is refused
    # before the table is looked up (1142), one with SELECT on it learns that the table does not exist (1146).
    server = server_factory(max_connections=20, extra_args=["--performance-schema=ON"])
    monkeypatch.setattr(housekeeping_io, "has_performance_schema_processlist", lambda version: True)
    app = make_user(server, max_user_connections=10)
    if grant:
        server.execute("GRANT SELECT ON performance_schema.* TO %s@'%%'", [app.name])
    with caplog.at_level(logging.DEBUG, logger="serverless_mysql"):
        db = measure_and_kill(server, app, client_factory)
    assert [r.__dict__.get("errno") for r in caplog.records if "processlist unusable" in r.getMessage()] == [errno]
    assert db.get_stats().housekeeping_statements == 2 + 3  # one failed attempt, once
    assert db.get_stats().housekeeping_errors == 0
    assert shows_of_next_end(server, db) == 1
    assert shows_of_next_end(server, db) == 1
    assert sources == [True, False]


def standin(server: MariaDBServer, definition: str) -> str:
    """A table or view with performance_schema.processlist's columns in the app database (MariaDB has none)."""
    name = f"{server.database}.processlist_{random.randrange(10**6)}"
    server.execute(definition.format(name=name))
    return name


COLUMNS = "ID, USER, HOST, DB, COMMAND, TIME, STATE, INFO"


def test_reads_performance_schema_processlist_where_it_works(
    server_factory: Factory,
    make_user: Factory,
    client_factory: ClientFactory,
    sources: list[bool],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # MySQL 8's table, played by a view over the same threads with the same columns and the same visibility rule
    # (the invoker's privileges: without PROCESS, only its own user's threads). The statement is the library's.
    server = server_factory(max_connections=20)
    table = standin(
        server, f"CREATE SQL SECURITY INVOKER VIEW {{name}} AS SELECT {COLUMNS} FROM information_schema.PROCESSLIST"
    )
    monkeypatch.setattr(_processlist, "PERFORMANCE_SCHEMA_PROCESSLIST", table)
    monkeypatch.setattr(housekeeping_io, "has_performance_schema_processlist", lambda version: True)
    db = measure_and_kill(server, make_user(server, max_user_connections=10), client_factory)
    assert db.get_stats().housekeeping_statements == 1 + 3  # no fallback, no probe
    assert statements_of_next_end(db) == 1
    assert sources == [True, True]


def test_falls_back_when_performance_schema_processlist_is_empty(
    server_factory: Factory,
    make_user: Factory,
    client_factory: ClientFactory,
    sources: list[bool],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # MySQL 8 with performance_schema=OFF (Aurora's default without Performance Insights): the table exists and
    # answers, empty. Reading it would count 0 connections and never find a zombie.
    server = server_factory(max_connections=20)
    table = standin(
        server,
        "CREATE TABLE {name} (ID BIGINT UNSIGNED, USER VARCHAR(32), HOST VARCHAR(255), DB VARCHAR(64), "
        "COMMAND VARCHAR(16), TIME BIGINT, STATE VARCHAR(64), INFO LONGTEXT)",
    )
    monkeypatch.setattr(_processlist, "PERFORMANCE_SCHEMA_PROCESSLIST", table)
    monkeypatch.setattr(housekeeping_io, "has_performance_schema_processlist", lambda version: True)
    db = measure_and_kill(server, make_user(server, max_user_connections=10), client_factory)
    assert db.get_stats().housekeeping_statements == 2 + 3  # one failed attempt
    assert shows_of_next_end(server, db) == 1
    assert sources == [True, False]


def test_show_processlist_counts_what_the_statement_counts(server_factory: Factory, make_user: Factory) -> None:
    # A small server's scan is SHOW PROCESSLIST, counted in Python: the same numbers as the statement, on one server.
    server = server_factory(max_connections=30)
    app, other = make_user(server, process=True), make_user(server)
    server.open_zombies(app, 3)
    server.open_zombies(other, 2)
    busy = app.connect()  # runs a statement meanwhile: the user's, running, never a zombie
    running = threading.Thread(target=lambda: busy.cursor().execute("DO SLEEP(3)"))
    running.start()
    time.sleep(1.1)  # TIME counts whole seconds
    conn = connect(app.connect_kwargs(), timeout=5.0, deadline=None, clock=time.monotonic)  # the client's driver
    try:
        statement = conn.run(housekeeping.usage_sql(with_limits=False), (1,))[0]
        rows = conn.columns("SHOW PROCESSLIST", housekeeping.SHOW_PROCESSLIST_COLUMNS)
        counted = housekeeping.usage_row(rows, conn.connection_id, 1)
        with pytest.raises(ValueError, match="returned no column 'Progress2'"):
            conn.columns("SHOW PROCESSLIST", ("Id", "Progress2"))
        assert conn.columns("DO 1", ("Id",)) == []  # no result set
        assert conn.run("SELECT 1 AS one") == [{"one": 1}]  # each result read to its end: the connection goes on
    finally:
        conn.close()
        running.join()
        busy.close()
    assert statement is not None
    numbers = ("total", "user_total", "self_seen", "user_running")
    assert {key: int(statement[key]) for key in numbers} == {key: counted[key] for key in numbers}
    assert counted["user_total"] == 5 and counted["user_running"] == 2  # 3 zombies, the sleeper, this one
    text = statement["zombies"]
    text = text.decode() if isinstance(text, bytes) else text
    assert set(text.split(",")) == set(counted["zombies"].split(","))  # equal idle times may come in either order
    assert len(text.split(",")) == 3  # not the other user's two


def test_columns_reads_every_reply_to_its_end(server_factory: Factory, make_user: Factory) -> None:
    # What columns() is not used for must still leave the connection in step: further result sets, replies
    # without rows, the transaction status an OK packet carries, no column asked for.
    app = make_user(server_factory(max_connections=10))
    kwargs = {**app.connect_kwargs(), "client_flag": CLIENT.MULTI_STATEMENTS}
    conn = connect(kwargs, timeout=5.0, deadline=None, clock=time.monotonic)
    try:
        assert conn.columns("SELECT 1 AS Id, NULL AS User; SELECT 2 AS Id", ("User", "Id")) == [(None, b"1")]
        assert conn.columns("DO 1; SELECT 3 AS Id", ("Id",)) == []
        assert conn.run("SELECT 4 AS x") == [{"x": 4}]
        assert conn.columns("BEGIN", ()) == [] and conn.in_transaction
        assert conn.columns("ROLLBACK", ()) == [] and not conn.in_transaction
        assert conn.columns("SELECT 5 AS Id", ()) == [()]
        with pytest.raises(ValueError, match="no column 'Nope'"):
            conn.columns("SELECT 6 AS Id; SELECT 7 AS Id", ("Nope",))
        assert conn.run("SELECT 8 AS x") == [{"x": 8}]
    finally:
        conn.close()
