"""``@with_mysql`` on top of other decorators: it never modifies them, and refuses at once what it cannot reach.

Every decorator docs/decorator.md lists as composing is covered here or in ``test_decorator_powertools.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from serverless_mysql import ServerlessMySQL, with_mysql
from serverless_mysql.lambda_context import LocalLambdaContext
from tests.unit.test_decorator import FakeDB, clean_env, no_sigterm_install

__all__ = ["clean_env", "no_sigterm_install"]  # autouse fixtures, re-used here

Handler = Callable[..., Any]


def counting(func: Handler) -> Handler:
    """A plain ``functools.wraps`` decorator with state of its own (how many calls went through it)."""
    count = 0

    @functools.wraps(func)
    def wrapper(event: Any, context: Any, **kwargs: Any) -> Any:
        nonlocal count
        count += 1
        return func(event, context, **kwargs)

    wrapper.calls = lambda: count  # type: ignore[attr-defined]
    return wrapper


def positional_only(func: Handler) -> Handler:
    """A ``functools.wraps`` decorator that passes on no keyword arguments (like ``@event_source``)."""

    @functools.wraps(func)
    def wrapper(event: Any, context: Any) -> Any:
        return func({**event, "seen_by": "positional_only"}, context)

    return wrapper


def returns_db(event: Any, context: Any, db: ServerlessMySQL) -> tuple[Any, ServerlessMySQL]:
    db.query("SELECT 1")
    return event, db


def cells(func: Any) -> list[Any]:
    return [cell.cell_contents for cell in func.__closure__]


# ---------------------------------------------------------------------------------------------- not mutating
@pytest.mark.parametrize("inner_decorator", [counting, positional_only], ids=["forwards-kwargs", "positional-only"])
def test_one_wrapper_decorated_twice_gives_each_handler_its_own_client(
    inner_decorator: Callable[[Handler], Handler],
) -> None:
    inner = inner_decorator(returns_db)
    primary_db, replica_db = FakeDB(), FakeDB()
    primary = with_mysql(db=primary_db)(inner)
    replica = with_mysql(db=replica_db)(inner)
    for _ in range(2):
        assert primary({"n": 1}, None)[1] is primary_db
        assert replica({"n": 1}, None)[1] is replica_db
    # each client saw only its own handler's work: two invocations, one query and one end() each
    assert primary_db.calls == ["connect", "query:SELECT 1", "end"] * 2
    assert replica_db.calls == ["connect", "query:SELECT 1", "end"] * 2


def test_the_decorated_wrapper_is_left_as_it_was() -> None:
    inner = counting(returns_db)
    before = cells(inner)
    fake = FakeDB()
    handler = with_mysql(db=fake)(inner)
    with_mysql(db=FakeDB())(inner)
    assert cells(inner) == before
    assert all(a is b for a, b in zip(cells(inner), before, strict=True))
    assert handler.__wrapped__ is inner  # type: ignore[attr-defined]
    # called directly it behaves exactly as before decoration: no client, no lifecycle
    mine = FakeDB()
    assert inner({"direct": True}, None, db=mine) == ({"direct": True}, mine)
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'db'"):
        inner({}, None)
    assert fake.calls == []
    # the copy shares the decorator's state: calls through the handler are counted by the original's counter
    calls_before = inner.calls()
    handler({}, None)
    assert inner.calls() == calls_before + 1


def test_powertools_wrappers_are_left_as_they_were() -> None:
    pytest.importorskip("aws_lambda_powertools")
    from aws_lambda_powertools.utilities.data_classes import SQSEvent, event_source

    def handler(event: SQSEvent, context: Any, db: ServerlessMySQL) -> list[str]:
        return [record.body for record in event.records]

    decorate: Any = event_source(data_class=SQSEvent)
    inner = decorate(handler)
    before = cells(inner)
    primary_db, replica_db = FakeDB(), FakeDB()
    primary = with_mysql(db=primary_db)(inner)
    replica = with_mysql(db=replica_db)(inner)
    event = {"Records": [{"body": "a"}, {"body": "b"}]}
    assert primary(event, None) == ["a", "b"]
    assert replica(event, None) == ["a", "b"]
    assert primary_db.calls == ["end"] and replica_db.calls == ["end"]
    assert all(a is b for a, b in zip(cells(inner), before, strict=True))
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'db'"):
        inner(event, None)  # as before decoration: @event_source cannot pass db on


def test_a_wrapper_sharing_the_cell_with_a_helper_gets_db_as_a_keyword() -> None:
    def via_helper(func: Handler) -> Handler:
        def call(event: Any, context: Any, **kwargs: Any) -> Any:
            return func(event, context, **kwargs)

        @functools.wraps(func)
        def wrapper(event: Any, context: Any, **kwargs: Any) -> Any:
            assert func is not None  # the wrapper holds the cell too, shared with the helper
            return call(event, context, **kwargs)

        return wrapper

    inner = via_helper(returns_db)
    before = cells(inner)
    fake = FakeDB()
    assert with_mysql(db=fake)(inner)({}, None)[1] is fake
    assert all(a is b for a, b in zip(cells(inner), before, strict=True))


# ---------------------------------------------------------------------------------------------- classes
class Forwarding:
    """A decorator written as a class with ``__call__`` that passes keyword arguments on."""

    def __init__(self, func: Handler) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.calls = 0

    def __call__(self, event: Any, context: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.func(event, context, **kwargs)


class Closed:
    """A decorator written as a class with ``__call__`` that passes no keyword arguments on."""

    def __init__(self, func: Handler) -> None:
        functools.update_wrapper(self, func)
        self.func = func

    def __call__(self, event: Any, context: Any) -> Any:
        return self.func(event, context)


def test_a_class_decorator_that_forwards_keywords_composes() -> None:
    inner = Forwarding(returns_db)
    fake = FakeDB()
    handler = with_mysql(db=fake)(inner)
    assert handler({"a": 1}, None) == ({"a": 1}, fake)
    assert inner.calls == 1 and inner.func is returns_db
    assert fake.calls == ["connect", "query:SELECT 1", "end"]


def test_what_cannot_be_reached_is_refused_at_decoration_time() -> None:
    for inner in (Closed(returns_db), counting(Closed(returns_db))):
        with pytest.raises(
            TypeError, match="cannot hand 'db' to returns_db through the decorator Closed object"
        ) as err:
            with_mysql(db=FakeDB())(inner)
        assert "put @with_mysql directly on the function, below that decorator" in str(err.value)
    # and directly on the function, below the class decorator, it works
    handler = Closed(with_mysql(db=FakeDB())(returns_db))
    assert handler({}, None)[1] is not None


def test_a_handler_object_with_call() -> None:
    class Handler:
        def __call__(self, event: Any, context: Any, db: ServerlessMySQL) -> ServerlessMySQL:
            return db

    fake = FakeDB()
    assert with_mysql(db=fake)(Handler())({}, None) is fake
    assert fake.calls == ["end"]


# ---------------------------------------------------------------------------------------------- idempotency
@pytest.fixture
def idempotency(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Handler]]:
    pytest.importorskip("aws_lambda_powertools")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders")
    from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer, IdempotencyConfig, idempotent
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyItemAlreadyExistsError,
        IdempotencyItemNotFoundError,
    )
    from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

    class MemoryStore(BasePersistenceLayer):
        """A persistence layer in a dict, with DynamoDB's conditional-put semantics."""

        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.items: dict[str, DataRecord] = {}

        def _get_record(self, idempotency_key: str) -> DataRecord:
            try:
                return self.items[idempotency_key]
            except KeyError:
                raise IdempotencyItemNotFoundError from None

        def _put_record(self, data_record: DataRecord) -> None:
            old = self.items.get(data_record.idempotency_key)
            if old is not None and not old.is_expired:
                raise IdempotencyItemAlreadyExistsError(old_data_record=old)
            self.items[data_record.idempotency_key] = data_record

        def _update_record(self, data_record: DataRecord) -> None:
            self.items[data_record.idempotency_key] = data_record

        def _delete_record(self, data_record: DataRecord) -> None:
            self.items.pop(data_record.idempotency_key, None)

    def make() -> Handler:
        config = IdempotencyConfig(event_key_jmespath="order")
        return idempotent(persistence_store=MemoryStore(), config=config)

    yield make


@pytest.mark.parametrize("with_mysql_outside", [True, False], ids=["with_mysql-outside", "with_mysql-inside"])
def test_powertools_idempotent_composes(idempotency: Callable[[], Handler], with_mysql_outside: bool) -> None:
    runs: list[ServerlessMySQL] = []

    def handler(event: Any, context: Any, db: ServerlessMySQL) -> dict[str, Any]:
        runs.append(db)
        db.query("INSERT INTO orders VALUES (%s)", (event["order"],))
        return {"statusCode": 201, "order": event["order"]}

    fake = FakeDB()
    if with_mysql_outside:
        decorated = with_mysql(db=fake)(idempotency()(handler))
    else:
        decorated = idempotency()(with_mysql(db=fake)(handler))
    context = LocalLambdaContext(timeout=3.0, function_name="orders")
    assert decorated({"order": 7}, context) == {"statusCode": 201, "order": 7}
    assert decorated({"order": 7}, context) == {"statusCode": 201, "order": 7}  # replayed, not run again
    assert runs == [fake]
    # one invocation reached the database; the replayed one did not touch the client at all
    assert fake.calls == ["connect", "query:INSERT INTO orders VALUES (%s)", "end"]
    assert fake.deadlines[0] == pytest.approx(2.5, abs=0.2) and fake.deadlines[-1] is None
