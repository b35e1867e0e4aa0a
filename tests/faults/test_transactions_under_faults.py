"""Transactions under faults beyond the matrix: the chain form, a failing ROLLBACK, deadlocks inside a transaction."""

from __future__ import annotations

import threading
import time
from typing import Any

import pymysql
import pytest

from harness.faultproxy import FaultProxy
from harness.mariadb import AppUser, MariaDBServer, thread_id
from serverless_mysql.errors import TransactionAbortedError
from tests.faults.conftest import LeakSink
from tests.faults.matrix import Target

pytestmark = pytest.mark.timeout(30)


def test_chain_form_connection_reset_mid_transaction(
    mariadb: MariaDBServer, fault_user: AppUser, leaks: LeakSink
) -> None:
    """The chain's rollback handler receives TransactionAbortedError; nothing is committed; no reconnect mid-way."""
    with FaultProxy(mariadb.host, mariadb.port) as proxy:
        target = Target(server=mariadb, user=fault_user, host=proxy.host, port=proxy.port, leaks=leaks)
        table = target.make_table()
        db = target.client()
        db.query("SELECT 1")
        seen: list[BaseException] = []

        def second(last: Any, results: list[Any]) -> tuple[str, Any]:
            proxy.reset()
            return f"INSERT INTO {table} (id, v) VALUES (%s, 'b')", (last.insert_id + 1,)

        db.set_deadline(3)
        with pytest.raises(TransactionAbortedError):
            (
                db.transaction()
                .query(f"INSERT INTO {table} (id, v) VALUES (1, 'a')")
                .query(second)
                .query(f"INSERT INTO {table} (id, v) VALUES (3, 'c')")
                .rollback(seen.append)
                .commit()
            )
        assert len(seen) == 1 and isinstance(seen[0], TransactionAbortedError)
        assert target.ids() == []
        assert db.get_stats().connects == 1, "reconnected in the middle of the transaction"
        assert db.query("SELECT 4 AS four") == [{"four": 4}]
        db.quit()
        assert target.settle(0) == 0


def test_failed_rollback_closes_the_connection_and_keeps_the_original_error(target: Target, leaks: LeakSink) -> None:
    """A statement fails inside the transaction, then the connection dies before ROLLBACK: the caller gets the
    statement's own error, the connection is closed (never reused with an open transaction), nothing is
    committed, nothing hangs (the reference hangs here)."""
    db = target.client()
    db.query(f"INSERT INTO {target.table} (id, v) VALUES (1, 'existing')")
    conn = db.get_client()
    assert conn is not None
    original_rollback = conn.rollback

    def rollback_on_a_dead_connection() -> None:
        target.server.kill(thread_id(conn))
        target.settle(0)
        original_rollback()

    conn.rollback = rollback_on_a_dead_connection  # type: ignore[method-assign]
    seen: list[BaseException] = []
    db.set_deadline(3)
    t0 = time.monotonic()
    with pytest.raises(pymysql.err.IntegrityError) as info:
        (
            db.transaction()
            .query(f"INSERT INTO {target.table} (id, v) VALUES (2, 'new')")
            .query(f"INSERT INTO {target.table} (id, v) VALUES (1, 'duplicate')")
            .rollback(seen.append)
            .commit()
        )
    leaks.observe(info.value)
    assert time.monotonic() - t0 < 3
    assert info.value.args[0] == 1062 and seen == [info.value]
    assert target.ids() == [1]
    assert db.get_client() is None, "a connection whose ROLLBACK failed was kept"
    assert db.query("SELECT 5 AS five") == [{"five": 5}]
    db.quit()
    assert target.settle(0) == 0


def test_deadlock_inside_a_transaction_is_not_retried_statement_by_statement(target: Target) -> None:
    """InnoDB rolls back the whole victim transaction on 1213; retrying only the failed statement (reference
    defect 7) would run it outside any transaction. With max_query_retries=3 the error still surfaces unchanged
    and nothing of the victim's transaction is committed."""
    table = target.table
    target.server.execute(f"INSERT INTO {table} (id, v) VALUES (1, 'r1'), (2, 'r2')")
    db = target.client(max_query_retries=3)
    other = target.user.connect(autocommit=False)
    try:
        with other.cursor() as cur:
            # The other transaction is heavier, so InnoDB picks ours as the victim.
            cur.execute(f"INSERT INTO {table} (id, v) SELECT seq + 100, 'heavy' FROM seq_1_to_200")
            cur.execute(f"UPDATE {table} SET v = 'other' WHERE id = 2")
        db.set_deadline(10)
        errors: list[BaseException] = []
        blocked = threading.Event()

        def ours() -> None:
            try:
                with db.transaction() as tx:
                    tx.query(f"UPDATE {table} SET v = 'ours' WHERE id = 1")
                    blocked.set()
                    tx.query(f"UPDATE {table} SET v = 'ours' WHERE id = 2")  # waits for the other transaction
            except pymysql.err.OperationalError as exc:
                errors.append(exc)

        thread = threading.Thread(target=ours, daemon=True)
        thread.start()
        assert blocked.wait(5)
        time.sleep(0.2)
        with other.cursor() as cur:
            cur.execute(f"UPDATE {table} SET v = 'other' WHERE id = 1")  # closes the cycle
        other.commit()
        thread.join(10)
        assert not thread.is_alive()
    finally:
        other.close()
    assert len(errors) == 1 and errors[0].args[0] == 1213, errors
    assert db.get_stats().query_retries == 0
    rows = {r["id"]: r["v"] for r in target.server.execute(f"SELECT id, v FROM {table} WHERE id IN (1, 2)")}
    assert rows == {1: "other", 2: "other"}, rows
    db.quit()
    assert target.settle(0) == 0


def test_a_failed_start_transaction_leaves_no_one_shot_isolation_level(
    mariadb: MariaDBServer, fault_user: AppUser, leaks: LeakSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``SET TRANSACTION ISOLATION LEVEL`` applies to the session's *next* transaction only. When it succeeds and
    START TRANSACTION then fails with a statement error (here a Galera node that is not ready, 1047: it still
    accepts SET), the level must not reach the next transaction, which asked for none.

    The server's answer to START TRANSACTION is injected (the level itself is set on the real server, and the next
    transaction's level is read from the real server's ``information_schema.innodb_trx``)."""
    from serverless_mysql import ServerlessMySQL
    from serverless_mysql._driver import DriverConnection

    target = Target(server=mariadb, user=fault_user, host=mariadb.host, port=mariadb.port, leaks=leaks)
    table = target.make_table()
    db: ServerlessMySQL = target.client()
    real_query = DriverConnection.query
    refuse = ["START TRANSACTION"]

    def query(self: DriverConnection, sql: Any, unbuffered: bool = False) -> int:
        if refuse and sql == refuse[0]:
            refuse.clear()
            raise pymysql.err.OperationalError(1047, "WSREP has not yet prepared node for application use")
        return real_query(self, sql, unbuffered)

    monkeypatch.setattr(DriverConnection, "query", query)
    with (
        pytest.raises(pymysql.err.OperationalError, match="WSREP"),
        db.transaction(isolation_level="SERIALIZABLE"),
    ):
        pass
    with db.transaction() as tx:  # no level asked: the session's (REPEATABLE READ)
        tx.query(f"SELECT * FROM {table}")
        own = int(tx.query("SELECT CONNECTION_ID() AS id")[0]["id"])
        rows = mariadb.execute(
            "SELECT trx_isolation_level AS level FROM information_schema.innodb_trx WHERE trx_mysql_thread_id = %s",
            (own,),
        )
    assert [r["level"] for r in rows] == ["REPEATABLE READ"]
