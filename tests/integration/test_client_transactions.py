"""Behaviours 5, 6, 7 and 9: no invocation leaks into the next, transactions are atomic or fail, nothing pins an
RDS Proxy session, threads share one client safely."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pymysql
import pytest

from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import TransactionAbortedError
from tests.integration.conftest import ClientFactory, conn_id, kill_and_wait, later, values
from tests.integration.decorator_fixtures import clean_serverless_env

pytestmark = pytest.mark.integration
Factory = Any
__all__ = ["clean_serverless_env"]


@pytest.mark.parametrize("closing", ["end", "quit"])
def test_open_transaction_is_rolled_back_at_end_and_quit(
    mariadb: MariaDBServer,
    app_user: AppUser,
    client_factory: ClientFactory,
    table: str,
    closing: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = client_factory(app_user)
    db.query("START TRANSACTION")
    db.query(f"INSERT INTO {table} (v) VALUES ('stale')")
    assert db.in_transaction
    with caplog.at_level(logging.WARNING, logger="serverless_mysql"):
        getattr(db, closing)()
    assert "rolling back a transaction left open" in caplog.text
    # The next invocation's transaction must not commit the previous invocation's statement (#85).
    db.query("START TRANSACTION")
    db.query(f"INSERT INTO {table} (v) VALUES ('fresh')")
    db.query("COMMIT")
    assert values(mariadb, table) == ["fresh"]
    assert db.get_stats().rollbacks_on_end == 1


def test_context_manager_commits_and_rolls_back(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str
) -> None:
    db = client_factory(app_user)
    with db.transaction() as tx:
        tx.query(f"INSERT INTO {table} (v) VALUES (%s)", ("a",))
        tx.query(f"INSERT INTO {table} (v) VALUES (%s)", ("b",))
    with pytest.raises(KeyError), db.transaction() as tx:
        tx.query(f"INSERT INTO {table} (v) VALUES ('c')")
        raise KeyError("handler bug")
    assert values(mariadb, table) == ["a", "b"]
    assert not db.in_transaction


def test_chain_form_commits_and_passes_results(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str
) -> None:
    db = client_factory(app_user)
    results = (
        db.transaction()
        .query(f"INSERT INTO {table} (v) VALUES (%s)", ("parent",))
        .query(lambda last, all_: (f"INSERT INTO {table} (v) VALUES (%s)", (f"child-of-{last.insert_id}",)))
        .query(lambda last, all_: None)
        .query(lambda last, all_: f"SELECT COUNT(*) AS n FROM {table}")
        .commit()
    )
    assert len(results) == 4
    assert results[2] == [] and results[3] == [{"n": 2}]
    assert values(mariadb, table) == ["parent", f"child-of-{results[0].insert_id}"]


def test_chain_form_rolls_back_and_hands_the_error_to_the_handler(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str
) -> None:
    db = client_factory(app_user)
    seen: list[BaseException] = []
    with pytest.raises(pymysql.err.ProgrammingError) as info:
        (
            db.transaction()
            .query(f"INSERT INTO {table} (v) VALUES ('x')")
            .query("INSERT INTO no_such_table VALUES (1)")
            .rollback(seen.append)
            .commit()
        )
    assert seen == [info.value]
    assert values(mariadb, table) == []
    assert not db.in_transaction

    def broken_step(last: Any, all_: list[Any]) -> None:
        raise ZeroDivisionError("bug in a step function")

    with pytest.raises(ZeroDivisionError):
        db.transaction().query(f"INSERT INTO {table} (v) VALUES ('y')").query(broken_step).commit()
    assert values(mariadb, table) == []


def test_connection_lost_inside_a_transaction_aborts_it(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str
) -> None:
    db = client_factory(app_user)
    with pytest.raises(TransactionAbortedError), db.transaction() as tx:
        tx.query(f"INSERT INTO {table} (v) VALUES ('A')")
        kill_and_wait(mariadb, app_user, conn_id(db))
        tx.query(f"INSERT INTO {table} (v) VALUES ('B')")
    assert values(mariadb, table) == []  # neither A nor B: no autocommit continuation
    assert db.query("SELECT 1 AS one") == [{"one": 1}]


def test_connection_lost_mid_statement_inside_a_transaction(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str
) -> None:
    db = client_factory(app_user)
    own = conn_id(db)
    with pytest.raises(TransactionAbortedError) as info, db.transaction() as tx:
        tx.query(f"INSERT INTO {table} (v) VALUES ('A')")
        later(0.3, lambda: mariadb.kill(own))
        tx.query("SELECT SLEEP(2)")  # a read, but inside a transaction: never re-run
    assert info.value.errno in (2013, 1927)
    assert values(mariadb, table) == []


def test_manual_transaction_lost_while_idle_is_not_continued_in_autocommit(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str
) -> None:
    db = client_factory(app_user)
    db.query("START TRANSACTION")
    db.query(f"INSERT INTO {table} (v) VALUES ('A')")
    kill_and_wait(mariadb, app_user, conn_id(db))
    with pytest.raises(TransactionAbortedError):
        db.query(f"INSERT INTO {table} (v) VALUES ('B')")
    db.query(f"INSERT INTO {table} (v) VALUES ('C')")  # a new statement, after the caller was told
    assert values(mariadb, table) == ["C"]


def test_failed_rollback_closes_the_connection(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str
) -> None:
    errors: list[BaseException] = []
    db = client_factory(app_user, on_error=errors.append)
    with pytest.raises(ValueError, match="handler bug"), db.transaction() as tx:
        tx.query(f"INSERT INTO {table} (v) VALUES ('A')")
        mariadb.kill(conn_id(db))
        raise ValueError("handler bug")
    assert db.get_client() is None
    assert len(errors) == 1
    assert values(mariadb, table) == []


@pytest.mark.parametrize(("level", "sees_commit"), [("read committed", True), ("REPEATABLE READ", False)])
def test_isolation_level(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str, level: str, sees_commit: bool
) -> None:
    mariadb.execute(f"INSERT INTO {table} (id, v) VALUES (1, 'before')")
    db = client_factory(app_user)
    with db.transaction(isolation_level=level) as tx:
        assert tx.query(f"SELECT v FROM {table}") == [{"v": "before"}]
        mariadb.execute(f"UPDATE {table} SET v = 'after'")
        assert tx.query(f"SELECT v FROM {table}") == [{"v": "after" if sees_commit else "before"}]


def test_read_only_transactions(app_user: AppUser, client_factory: ClientFactory, table: str) -> None:
    db = client_factory(app_user)
    with pytest.raises(pymysql.err.OperationalError, match="READ ONLY"), db.transaction(read_only=True) as tx:
        tx.query(f"INSERT INTO {table} (v) VALUES ('no')")
    with pytest.raises(ValueError, match="isolation_level"):
        db.transaction(isolation_level="CHAOS")


def test_rds_proxy_mode_sends_nothing_that_pins(
    server_factory: Factory, make_user: Factory, client_factory: ClientFactory
) -> None:
    server = server_factory(max_connections=10)
    app = make_user(server, process=True)
    server.open_zombies(app, 3)
    server.set_global("log_output", "TABLE")
    server.set_global("general_log", "ON")
    db = client_factory(app, rds_proxy=True, zombie_min_timeout=0, conn_utilization=0.1)
    for _ in range(5):
        db.query("SELECT %s AS x", (1,))
        db.end()
    with db.transaction() as tx:
        tx.query("SELECT 1")
    db.quit()
    server.set_global("general_log", "OFF")
    statements = [
        row["argument"].decode() if isinstance(row["argument"], bytes) else row["argument"]
        for row in server.execute(
            "SELECT argument FROM mysql.general_log WHERE command_type = 'Query' AND user_host LIKE %s",
            (f"{app.name}%",),
        )
    ]
    ours = [s for s in statements if s not in ("SELECT 1 AS x", "SELECT 1")]
    # PyMySQL's own SET NAMES at connect is the only session statement (RDS Proxy tracks character set variables).
    assert ours == ["SET NAMES utf8mb4", "START TRANSACTION", "COMMIT"], ours


def test_threads_share_one_connection(mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory) -> None:
    db = client_factory(app_user)
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                assert db.query("SELECT %s AS n", (n * 1000 + i,)) == [{"n": n * 1000 + i}]
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert db.get_stats().connects == 1
    assert mariadb.connection_count(app_user.name) == 1


def test_a_transaction_holds_the_client_exclusively(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str
) -> None:
    db = client_factory(app_user)
    db.query("SELECT 1")
    order: list[str] = []
    entered = threading.Event()

    def other_thread() -> None:
        entered.wait(5)
        db.query(f"INSERT INTO {table} (v) VALUES ('outside')")
        order.append("outside")

    thread = threading.Thread(target=other_thread)
    thread.start()
    with db.transaction() as tx:
        tx.query(f"INSERT INTO {table} (v) VALUES ('inside')")
        entered.set()
        time.sleep(0.3)
        order.append("commit")
        tx.query("SELECT 1")
    thread.join(10)
    assert order == ["commit", "outside"]
    assert values(mariadb, table) == ["inside", "outside"]


def test_waiting_for_a_busy_client_is_bounded_by_the_deadline(app_user: AppUser, client_factory: ClientFactory) -> None:
    from serverless_mysql import DeadlineExceededError

    db = client_factory(app_user)
    db.query("SELECT 1")
    release = threading.Event()
    holding = threading.Event()

    def hold() -> None:
        with db.transaction():
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(5)
    db.set_deadline(0.3)
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError, match="another thread"):
        db.query("SELECT 1")
    assert time.monotonic() - started < 0.6
    db.set_deadline(None)
    release.set()
    thread.join(5)


def _open_transactions(server: MariaDBServer, user: str) -> int:
    rows = server.execute(
        "SELECT COUNT(*) AS n FROM information_schema.innodb_trx t "
        "JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id WHERE p.user = %s",
        (user,),
    )
    return int(rows[0]["n"])


def test_deadline_spent_before_commit_rolls_the_transaction_back(
    mariadb: MariaDBServer, app_user: AppUser, table: str, client_factory: ClientFactory
) -> None:
    """Issue 11 item 2: COMMIT cannot be sent for lack of time, so the transaction is rolled back (the connection
    closed); the caller's retry must not commit the first attempt through the implicit commit of its own
    START TRANSACTION."""
    from serverless_mysql import DeadlineExceededError

    db = client_factory(app_user)
    db.set_deadline(0.3)
    with pytest.raises(DeadlineExceededError) as info, db.transaction() as tx:
        tx.query(f"INSERT INTO {table} (v) VALUES ('first attempt')")
        time.sleep(0.4)  # the handler's own work spends the rest of the budget
    left_open = db.in_transaction or _open_transactions(mariadb, app_user.name) > 0
    db.set_deadline(5)
    with db.transaction() as tx:  # the caller retries
        tx.query(f"INSERT INTO {table} (v) VALUES ('retry')")
    assert values(mariadb, table) == ["retry"]  # before the fix: ['first attempt', 'retry']
    assert not left_open
    assert "before COMMIT" in str(info.value) and "rolled back" in str(info.value)
    assert isinstance(info.value.__cause__, DeadlineExceededError)
    assert not db.in_transaction
    assert _open_transactions(mariadb, app_user.name) == 0
    assert db.get_stats().connects == 2  # the first connection was closed: that rolled the transaction back
    assert db.query("SELECT 1 AS one") == [{"one": 1}]


@pytest.mark.parametrize("failure", ["dead-at-end", "rollback-fails"])
def test_a_transaction_lost_at_end_does_not_reach_the_next_invocation(
    mariadb: MariaDBServer, app_user: AppUser, table: str, client_factory: ClientFactory, failure: str
) -> None:
    """Issue 11 item 4: end() finds the plain START TRANSACTION's connection dead (or its ROLLBACK fails); the next,
    unrelated invocation's first statement must run, not raise TransactionAbortedError."""
    db = client_factory(app_user)
    db.query("START TRANSACTION")
    db.query(f"INSERT INTO {table} (v) VALUES ('left open')")
    own = conn_id(db)
    if failure == "dead-at-end":
        mariadb.kill(own)
        mariadb.wait_for_connection_count(0, app_user.name)
    else:
        conn = db.get_client()
        assert conn is not None
        original_rollback = conn.rollback

        def rollback_on_a_dead_connection() -> None:
            mariadb.kill(own)
            mariadb.wait_for_connection_count(0, app_user.name)
            original_rollback()

        conn.rollback = rollback_on_a_dead_connection  # type: ignore[method-assign]
    db.end()
    assert db.get_client() is None
    # The next invocation.
    db.query(f"INSERT INTO {table} (v) VALUES ('next invocation')")
    assert values(mariadb, table) == ["next invocation"]
    assert not db.in_transaction


def test_deadline_spent_before_commit_under_the_decorator(
    mariadb: MariaDBServer, app_user: AppUser, table: str, clean_serverless_env: None
) -> None:
    """The same under @with_mysql: the invocation fails, nothing of it is committed, and the next, unrelated
    invocation runs normally (before the fix it raised TransactionAbortedError)."""
    from serverless_mysql import DeadlineExceededError, ServerlessMySQL, with_mysql
    from serverless_mysql.lambda_context import LocalLambdaContext

    @with_mysql(**app_user.connect_kwargs(), sigterm=False, deadline_margin=0.5)
    def handler(event: dict[str, Any], context: Any, db: ServerlessMySQL) -> int:
        if event["work"]:
            with db.transaction() as tx:
                tx.query(f"INSERT INTO {table} (v) VALUES (%s)", (event["v"],))
                time.sleep(event["work"])
        else:  # an unrelated invocation: one autocommitted statement
            db.query(f"INSERT INTO {table} (v) VALUES (%s)", (event["v"],))
        return int(db.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])

    try:
        with pytest.raises(DeadlineExceededError, match="before COMMIT"):
            handler({"v": "slow", "work": 0.4}, LocalLambdaContext(timeout=0.8))  # a 0.3 s budget
        assert handler({"v": "next", "work": 0}, LocalLambdaContext(timeout=5.0)) == 1
        assert values(mariadb, table) == ["next"]
    finally:
        handler.db.terminate()
