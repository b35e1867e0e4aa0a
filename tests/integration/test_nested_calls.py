"""Issue 11 item 3: a transaction is never split in two by ``end()``/``quit()`` or by a nested decorated handler.

Before the fix, ``end()`` inside ``with db.transaction()`` rolled back the first half on the server while the rest
autocommitted, and a nested ``@with_mysql(db=shared)`` handler did the same to its caller's transaction and cleared
the caller's deadline.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import ServerlessMySQL, with_mysql
from serverless_mysql.lambda_context import LocalLambdaContext
from tests.integration.conftest import ClientFactory, values
from tests.integration.decorator_fixtures import clean_serverless_env

__all__ = ["clean_serverless_env"]

pytestmark = pytest.mark.usefixtures("clean_serverless_env")


@pytest.mark.parametrize("closing", ["end", "quit"])
def test_end_or_quit_inside_a_transaction_raises_and_leaves_it_alone(
    mariadb: MariaDBServer, app_user: AppUser, table: str, client_factory: ClientFactory, closing: str
) -> None:
    db = client_factory(app_user)
    with db.transaction() as tx:
        tx.query(f"INSERT INTO {table} (v) VALUES ('a')")
        with pytest.raises(RuntimeError, match=rf"{closing}\(\) called inside an open transaction"):
            getattr(db, closing)()
        assert db.in_transaction
        tx.query(f"INSERT INTO {table} (v) VALUES ('b')")
        assert values(mariadb, table) == []  # still one uncommitted transaction: nothing visible outside
    assert values(mariadb, table) == ["a", "b"]
    assert db.get_stats().connects == 1 and db.get_stats().rollbacks_on_end == 0

    # The block decides: an exception rolls back both halves.
    with pytest.raises(KeyError), db.transaction() as tx:
        tx.query(f"INSERT INTO {table} (v) VALUES ('c')")
        with pytest.raises(RuntimeError):
            getattr(db, closing)()
        tx.query(f"INSERT INTO {table} (v) VALUES ('d')")
        raise KeyError("handler bug")
    assert values(mariadb, table) == ["a", "b"]

    # The chain form: a step that calls end() fails the chain, which rolls back everything.
    def step(last: Any, results: list[Any]) -> tuple[str, Any]:
        getattr(db, closing)()
        return f"INSERT INTO {table} (v) VALUES ('f')", None

    seen: list[BaseException] = []
    with pytest.raises(RuntimeError):
        db.transaction().query(f"INSERT INTO {table} (v) VALUES ('e')").query(step).rollback(seen.append).commit()
    assert len(seen) == 1
    assert values(mariadb, table) == ["a", "b"]
    # Outside a transaction end()/quit() work as before.
    getattr(db, closing)()
    assert not db.in_transaction


@pytest.mark.parametrize("after", ["end", "quit"])
def test_nested_decorated_handler_leaves_the_outer_transaction_and_deadline_alone(
    mariadb: MariaDBServer, app_user: AppUser, table: str, client_factory: ClientFactory, after: str
) -> None:
    shared = client_factory(app_user)

    @with_mysql(db=shared, after=after, sigterm=False)
    def inner(event: Any, context: Any, db: ServerlessMySQL) -> None:
        db.query(f"INSERT INTO {table} (v) VALUES (%s)", (event["v"],))

    @with_mysql(db=shared, after=after, sigterm=False)
    def outer(event: Any, context: Any, db: ServerlessMySQL) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        with db.transaction() as tx:
            tx.query(f"INSERT INTO {table} (v) VALUES ('outer-1')")
            seen["deadline_before"] = db.remaining()
            inner({"v": "inner"}, LocalLambdaContext(timeout=60.0))  # its own, longer context
            seen["deadline_after"] = db.remaining()
            tx.query(f"INSERT INTO {table} (v) VALUES ('outer-2')")
            seen["visible_before_commit"] = values(mariadb, table)
        return seen

    seen = outer({}, LocalLambdaContext(timeout=5.0))
    assert seen["visible_before_commit"] == []  # nothing committed in the middle of the outer transaction
    assert values(mariadb, table) == ["outer-1", "inner", "outer-2"]
    before, after_inner = seen["deadline_before"], seen["deadline_after"]
    assert before is not None and before < 5.0
    assert after_inner is not None and after_inner <= before  # the outer deadline, neither replaced nor cleared
    assert shared.remaining() is None  # the outermost call cleared it
    assert shared.get_stats().rollbacks_on_end == 0


def test_nested_decorated_handler_outside_a_transaction_does_no_cleanup_of_its_own(
    app_user: AppUser, client_factory: ClientFactory
) -> None:
    shared = client_factory(app_user)
    counters: list[int] = []

    @with_mysql(db=shared, sigterm=False)
    def inner(event: Any, context: Any, db: ServerlessMySQL) -> Any:
        return db.query("SELECT 1 AS one")

    @with_mysql(db=shared, sigterm=False)
    def outer(event: Any, context: Any, db: ServerlessMySQL) -> float | None:
        db.query("SELECT 1")
        counters.append(db.get_counter())
        inner({}, LocalLambdaContext(timeout=60.0))
        counters.append(db.get_counter())
        return db.remaining()

    left = outer({}, LocalLambdaContext(timeout=5.0))
    assert left is not None and left < 5.0  # the outer deadline survived the nested call
    assert counters == [0, 0]  # no end() in the middle of the outer invocation
    assert shared.get_counter() == 1  # one end(), by the outermost call
    assert shared.remaining() is None


def test_decorated_handler_called_inside_the_callers_transaction(
    mariadb: MariaDBServer, app_user: AppUser, table: str, client_factory: ClientFactory
) -> None:
    """A script (no decorator) opens a transaction and calls a decorated handler with the same client: the handler
    neither ends nor kills the caller's transaction."""
    shared = client_factory(app_user)

    @with_mysql(db=shared, sigterm=False)
    def handler(event: Any, context: Any, db: ServerlessMySQL) -> None:
        db.query(f"INSERT INTO {table} (v) VALUES ('handler')")

    with shared.transaction() as tx:
        tx.query(f"INSERT INTO {table} (v) VALUES ('script-1')")
        handler({}, LocalLambdaContext(timeout=5.0))
        tx.query(f"INSERT INTO {table} (v) VALUES ('script-2')")
        assert values(mariadb, table) == []
    assert values(mariadb, table) == ["script-1", "handler", "script-2"]
    assert shared.get_stats().connects == 1


def test_a_transaction_the_handler_never_ended_is_rolled_back_after_the_invocation(
    mariadb: MariaDBServer, app_user: AppUser, table: str, client_factory: ClientFactory
) -> None:
    """end() refuses to run inside an open transaction, so the decorator rolls back one the invocation left open
    (a with block never exited) and releases the client; the next invocation starts clean."""
    shared = client_factory(app_user)

    @with_mysql(db=shared, sigterm=False)
    def handler(event: Any, context: Any, db: ServerlessMySQL) -> int:
        if event["leak"]:
            tx = db.transaction().__enter__()  # a handler bug: the block is never left
            tx.query(f"INSERT INTO {table} (v) VALUES ('leaked')")
            return 0
        db.query(f"INSERT INTO {table} (v) VALUES ('next')")
        return int(db.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])

    assert handler({"leak": True}, LocalLambdaContext(timeout=5.0)) == 0
    assert not shared.in_transaction
    assert shared.get_stats().rollbacks_on_end == 1
    assert handler({"leak": False}, LocalLambdaContext(timeout=5.0)) == 1
    assert values(mariadb, table) == ["next"]
    assert shared.remaining() is None
