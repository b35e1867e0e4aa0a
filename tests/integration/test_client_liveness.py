"""Behaviours 2 and 3: dead idle connections are replaced before the statement is sent; lost statements are
re-run only when that is provably safe; every reconnect loop is bounded."""

from __future__ import annotations

import threading
import time

import pymysql
import pytest

from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import ConnectionLostError, DeadlineExceededError
from tests.integration.conftest import ClientFactory, later, values

pytestmark = pytest.mark.integration


def own_id(db: object) -> int:
    return int(db.query("SELECT CONNECTION_ID() AS id")[0]["id"])  # type: ignore[attr-defined]


@pytest.mark.parametrize("statement", ["read", "write"])
def test_connection_killed_while_idle_is_replaced_before_the_statement(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str, statement: str
) -> None:
    db = client_factory(app_user)
    first = own_id(db)
    mariadb.kill(first)
    mariadb.wait_for_connection_count(0, app_user.name)
    if statement == "read":
        assert db.query("SELECT 42 AS answer") == [{"answer": 42}]
    else:
        assert db.query(f"INSERT INTO {table} (v) VALUES (%s)", ("once",)).affected_rows == 1
        assert values(mariadb, table) == ["once"]
    assert own_id(db) != first
    stats = db.get_stats()
    assert (stats.connects, stats.reconnects) == (2, 1)


def test_connection_timed_out_while_idle_is_replaced(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str
) -> None:
    db = client_factory(app_user)
    db.query("SET SESSION wait_timeout = 1")
    mariadb.wait_for_connection_count(0, app_user.name, timeout=5)
    assert db.query(f"INSERT INTO {table} (v) VALUES ('after timeout')").affected_rows == 1
    assert values(mariadb, table) == ["after timeout"]
    assert db.get_stats().reconnects == 1


def test_ping_after_idle_catches_what_the_socket_check_cannot(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory
) -> None:
    db = client_factory(app_user, ping_after_idle=0.0)
    own_id(db)
    pings_before = int(mariadb.status("Com_admin_commands") or 0)
    db.query("SELECT 1")
    assert int(mariadb.status("Com_admin_commands") or 0) > pings_before


def kill_when_running(server: MariaDBServer, user: str, *, times: int, within: float = 5.0) -> threading.Thread:
    """Kill the user's running statements (command 'Query') as they appear, ``times`` times."""

    def run() -> None:
        killed: set[int] = set()
        deadline = time.monotonic() + within
        while len(killed) < times and time.monotonic() < deadline:
            for row in server.processlist(user):
                if row["COMMAND"] == "Query" and row["ID"] not in killed and "SLEEP" in (row["INFO"] or ""):
                    server.kill(row["ID"])
                    killed.add(row["ID"])
            time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_read_lost_mid_statement_is_rerun(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory
) -> None:
    db = client_factory(app_user)
    own_id(db)
    killer = kill_when_running(mariadb, app_user.name, times=1)
    assert db.query("SELECT SLEEP(0.5) AS s") == [{"s": 0}]
    killer.join()
    assert db.get_stats().reconnects == 1


def test_write_lost_mid_statement_is_not_rerun(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str
) -> None:
    db = client_factory(app_user)
    own_id(db)
    killer = kill_when_running(mariadb, app_user.name, times=1)
    with pytest.raises(ConnectionLostError) as info:
        db.query(f"INSERT INTO {table} (v) SELECT IF(SLEEP(0.5) = 0, 'w', 'x')")
    killer.join()
    assert info.value.errno in (2013, 1927)
    assert "not re-run" in str(info.value)
    assert values(mariadb, table) in ([], ["w"])  # at most once
    assert db.query("SELECT 1 AS one") == [{"one": 1}]  # and the client recovers


def test_write_marked_idempotent_is_rerun(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str
) -> None:
    db = client_factory(app_user)
    db.query(f"INSERT INTO {table} (id, v) VALUES (1, 'old')")
    killer = kill_when_running(mariadb, app_user.name, times=1)
    db.query(f"UPDATE {table} SET v = IF(SLEEP(0.3) = 0, 'new', 'x') WHERE id = 1", idempotent=True)
    killer.join()
    assert values(mariadb, table) == ["new"]


def test_reruns_are_bounded(mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory) -> None:
    db = client_factory(app_user)
    own_id(db)
    killer = kill_when_running(mariadb, app_user.name, times=10)
    started = time.monotonic()
    with pytest.raises(ConnectionLostError):
        db.query("SELECT SLEEP(0.3) AS s")
    assert time.monotonic() - started < 3
    assert db.get_stats().reconnects == 2  # the statement ran 3 times, then we gave up
    killer.join()


def test_deadline_bounds_a_slow_statement(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory
) -> None:
    db = client_factory(app_user)
    own_id(db)
    db.set_deadline(0.5)
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError) as info:
        db.query("SELECT SLEEP(5)")
    assert time.monotonic() - started < 0.8
    assert info.value.errno == 2013
    db.set_deadline(None)
    assert db.query("SELECT 1 AS one") == [{"one": 1}]
    mariadb.wait_for_connection_count(1, app_user.name)


def test_spent_deadline_sends_nothing(app_user: AppUser, client_factory: ClientFactory) -> None:
    db = client_factory(app_user)
    db.set_deadline(0)
    with pytest.raises(DeadlineExceededError):
        db.query("SELECT 1")
    assert db.get_stats().connect_attempts == 0


def test_transient_errors_are_retried_outside_transactions(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str
) -> None:
    mariadb.execute(f"INSERT INTO {table} (id, v) VALUES (1, 'a')")
    retried: list[int] = []
    db = client_factory(
        app_user, max_query_retries=3, on_query_retry=lambda err, n, d, kind: retried.append(err.args[0])
    )
    db.query("SET SESSION innodb_lock_wait_timeout = 1")
    locker = mariadb.root()
    locker.begin()
    locker.cursor().execute(f"SELECT * FROM {table} WHERE id = 1 FOR UPDATE")
    later(1.5, locker.commit)
    db.query(f"UPDATE {table} SET v = 'b' WHERE id = 1")
    assert retried == [1205]
    assert values(mariadb, table) == ["b"]
    locker.close()


def test_transient_errors_pass_through_without_query_retries(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str
) -> None:
    mariadb.execute(f"INSERT INTO {table} (id, v) VALUES (1, 'a')")
    db = client_factory(app_user)
    db.query("SET SESSION innodb_lock_wait_timeout = 1")
    locker = mariadb.root()
    locker.begin()
    locker.cursor().execute(f"SELECT * FROM {table} WHERE id = 1 FOR UPDATE")
    with pytest.raises(pymysql.err.OperationalError) as info:
        db.query(f"UPDATE {table} SET v = 'b' WHERE id = 1")
    assert info.value.args[0] == 1205
    locker.rollback()
    locker.close()
