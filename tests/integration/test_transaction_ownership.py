"""A transaction runs on its own connection, in its own thread, and only while it is open (issue 18, items 2, 5, 6).

Each of these once let part of a transaction run in autocommit or wedged the client.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import DeadlineExceededError, ServerlessMySQL, TransactionAbortedError
from tests.integration.conftest import ClientFactory, kill_and_wait, values
from tests.integration.decorator_fixtures import clean_serverless_env

pytestmark = pytest.mark.integration
__all__ = ["clean_serverless_env"]


def own_thread(db: ServerlessMySQL) -> int:
    """The thread id of the client's connection, without a statement on it (it is inside a transaction)."""
    conn = db.get_client()
    assert conn is not None
    return int(conn.thread_id())  # type: ignore[no-untyped-call]


def test_connect_inside_a_transaction_does_not_split_it(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str
) -> None:
    """db.connect() after the transaction's connection died must not open a new one the rest would autocommit on."""
    db = client_factory(app_user)
    with pytest.raises(TransactionAbortedError), db.transaction() as tx:
        tx.query(f"INSERT INTO {table} (v) VALUES ('A')")
        kill_and_wait(mariadb, app_user, own_thread(db))
        db.connect()
        tx.query(f"INSERT INTO {table} (v) VALUES ('B')")
    assert values(mariadb, table) == []  # neither A (rolled back by the server) nor B (autocommitted before)
    assert db.query("SELECT 1 AS one") == [{"one": 1}]  # the next statement, outside, reconnects


def test_raw_connection_server_info_inside_a_transaction_does_not_split_it(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str
) -> None:
    """The SQLAlchemy raw connection's get_server_info()/character_set_name() reach the same reconnect."""
    from serverless_mysql.sqlalchemy import create_engine

    db = client_factory(app_user)
    engine = create_engine(db)
    try:
        raw = engine.raw_connection()
        for call in ("get_server_info", "character_set_name"):
            with pytest.raises(TransactionAbortedError), db.transaction() as tx:
                tx.query(f"INSERT INTO {table} (v) VALUES ('A')")
                kill_and_wait(mariadb, app_user, own_thread(db))
                getattr(raw.driver_connection, call)()
                tx.query(f"INSERT INTO {table} (v) VALUES ('B')")
            assert values(mariadb, table) == []
        raw.close()
    finally:
        engine.dispose()


def test_a_handle_used_after_its_transaction_ended_is_refused(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str
) -> None:
    db = client_factory(app_user)
    with db.transaction() as tx:
        tx.query(f"INSERT INTO {table} (v) VALUES ('A')")
    with pytest.raises(TransactionAbortedError):
        tx.query(f"INSERT INTO {table} (v) VALUES ('late')")
    # ... also while another transaction is open on the client: the handle is not that one's.
    with db.transaction() as other:
        with pytest.raises(TransactionAbortedError):
            tx.query(f"INSERT INTO {table} (v) VALUES ('late')")
        other.query(f"INSERT INTO {table} (v) VALUES ('B')")
    assert values(mariadb, table) == ["A", "B"]


def test_a_handle_kept_from_an_invocation_is_refused_in_the_next(
    mariadb: MariaDBServer, app_user: AppUser, table: str, clean_serverless_env: None
) -> None:
    """@with_mysql rolls back a block the handler never left; the handle kept from it must not autocommit later."""
    from serverless_mysql import with_mysql
    from serverless_mysql.lambda_context import LocalLambdaContext

    kept: list[Any] = []

    @with_mysql(**app_user.connect_kwargs(), sigterm=False)
    def handler(event: dict[str, Any], context: Any, db: ServerlessMySQL) -> None:
        if not kept:
            tx = db.transaction().__enter__()  # never left: the decorator rolls it back
            tx.query(f"INSERT INTO {table} (v) VALUES ('first')")
            kept.append(tx)
        else:
            kept[0].query(f"INSERT INTO {table} (v) VALUES ('second')")

    try:
        handler({}, LocalLambdaContext(timeout=5.0))
        with pytest.raises(TransactionAbortedError):
            handler({}, LocalLambdaContext(timeout=5.0))
        assert values(mariadb, table) == []
    finally:
        handler.db.terminate()


def test_ending_a_transaction_from_another_thread_is_refused_and_wedges_nothing(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory, table: str
) -> None:
    db = client_factory(app_user)
    tx = db.transaction()
    handle = tx.__enter__()
    handle.query(f"INSERT INTO {table} (v) VALUES ('A')")
    errors: list[BaseException] = []

    def end_elsewhere() -> None:
        try:
            tx.__exit__(None, None, None)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=end_elsewhere)
    thread.start()
    thread.join(10)
    assert values(mariadb, table) == []  # refused before anything was sent: no COMMIT
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError), errors
    assert "thread that began it" in str(errors[0])
    tx.__exit__(None, None, None)  # the owner ends it
    assert values(mariadb, table) == ["A"]

    # No thread waits for a lock nobody will release.
    results: list[object] = []

    def other_thread() -> None:
        db.set_deadline(3.0)
        try:
            results.append(db.query("SELECT 1 AS one"))
            db.end()
            results.append("ended")
        except DeadlineExceededError as exc:
            results.append(exc)

    worker = threading.Thread(target=other_thread, daemon=True)
    worker.start()
    worker.join(10)
    assert results == [[{"one": 1}], "ended"]
