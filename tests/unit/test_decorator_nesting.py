"""Nested ``@with_mysql`` calls sharing one client: only the outermost call sets the deadline and cleans up."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from serverless_mysql import ServerlessMySQL, with_mysql
from serverless_mysql.lambda_context import LocalLambdaContext
from tests.unit.test_decorator import FakeDB, clean_env

__all__ = ["clean_env"]  # autouse there, and here: no SERVERLESS_MYSQL_* variable reaches these decorations


def test_a_nested_call_that_raises_leaves_the_outer_lifecycle_alone() -> None:
    fake = FakeDB()

    @with_mysql(db=fake, sigterm=False)
    def inner(event: Any, context: Any, db: ServerlessMySQL) -> None:
        db.query("SELECT inner")
        raise KeyError("inner failed")

    @with_mysql(db=fake, sigterm=False)
    def outer(event: Any, context: Any, db: ServerlessMySQL) -> str:
        with pytest.raises(KeyError):
            inner({}, LocalLambdaContext(timeout=60.0))
        db.query("SELECT outer")
        return "done"

    assert outer({}, LocalLambdaContext(timeout=3.0)) == "done"
    assert fake.calls.count("end") == 1 and fake.calls[-1] == "end"
    assert len(fake.deadlines) == 2 and fake.deadlines[0] is not None and fake.deadlines[0] < 3.0
    assert fake.deadlines[1] is None
    # The nesting is over: called on its own, the inner handler has a lifecycle again.
    fake.calls.clear()
    with pytest.raises(KeyError):
        inner({}, LocalLambdaContext(timeout=60.0))
    assert fake.calls[-1] == "end"
    assert fake.deadlines[2] is not None and fake.deadlines[2] > 50 and fake.deadlines[3] is None


def test_the_same_client_in_another_thread_is_not_nested() -> None:
    fake = FakeDB()

    @with_mysql(db=fake, sigterm=False)
    def inner(event: Any, context: Any, db: ServerlessMySQL) -> None:
        db.query("SELECT inner")

    @with_mysql(db=fake, sigterm=False)
    def outer(event: Any, context: Any, db: ServerlessMySQL) -> None:
        thread = threading.Thread(target=inner, args=({}, None))
        thread.start()
        thread.join(5)

    outer({}, None)
    assert fake.calls.count("end") == 2  # the other thread's invocation is its own: it cleans up after itself
