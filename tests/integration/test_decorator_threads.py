"""A decorated handler invoked concurrently from threads of one process (a threaded multi-concurrent runtime).

Invocations must not queue on one connection: without ``db=`` each thread gets a client (and a connection) of
its own; with a client given as ``db=`` a concurrent invocation raises ConcurrentInvocationError.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import ConcurrentInvocationError, ServerlessMySQL, with_mysql
from serverless_mysql.lambda_context import LocalLambdaContext

THREADS = 4


def _invoke_concurrently(handler: Any, rounds: int = 1) -> tuple[list[Any], list[BaseException]]:
    """THREADS long-lived threads (as a runtime's worker threads), each invoking ``rounds`` times."""
    results: list[Any] = []
    errors: list[BaseException] = []

    def invoke() -> None:
        for _ in range(rounds):
            try:
                results.append(handler({}, LocalLambdaContext(timeout=20)))
            except BaseException as exc:  # noqa: PERF203 - a few invocations
                errors.append(exc)

    threads = [threading.Thread(target=invoke) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results, errors


def test_each_thread_gets_its_own_connection(app_user: AppUser, mariadb: MariaDBServer) -> None:
    inside = threading.Barrier(THREADS, timeout=10)  # every invocation in flight at once: none waits for another

    used: set[ServerlessMySQL] = set()

    @with_mysql(**app_user.connect_kwargs(), sigterm=False)
    def handler(event: Any, context: Any, db: ServerlessMySQL) -> tuple[int, int]:
        used.add(db)
        thread = db.query("SELECT CONNECTION_ID() AS id")[0]["id"]
        inside.wait()
        return thread, id(db)

    results, errors = _invoke_concurrently(handler, rounds=3)
    for client in used:  # closed now, not at garbage collection: later tests count the server's connections
        client.quit()
    assert not errors, errors
    assert len(results) == 3 * THREADS
    # One connection per thread, kept from one invocation to the next (3 rounds, still 4 connections).
    assert len({thread for thread, _ in results}) == THREADS, results
    assert len({client for _, client in results}) == THREADS
    assert id(handler.db) in {client for _, client in results}  # the first thread's is the decoration's own


def test_a_shared_client_raises_instead_of_queueing(app_user: AppUser) -> None:
    db = ServerlessMySQL(**app_user.connect_kwargs())
    inside = threading.Event()
    release = threading.Event()

    @with_mysql(db=db, sigterm=False)
    def handler(event: Any, context: Any, db: ServerlessMySQL) -> int:
        inside.set()
        release.wait(10)
        return int(db.query("SELECT 1 AS one")[0]["one"])

    try:
        first = threading.Thread(target=handler, args=({}, None))
        first.start()
        assert inside.wait(10)
        with pytest.raises(ConcurrentInvocationError, match="another thread runs an invocation"):
            handler({}, None)
        release.set()
        first.join(10)
        assert handler({}, None) == 1  # one at a time is fine, from any thread
    finally:
        release.set()
        db.terminate()


def test_invocations_on_fresh_threads_reuse_one_connection(app_user: AppUser, mariadb: MariaDBServer) -> None:
    # A runtime (or framework) that runs each invocation on a new thread: clients must not pile up per thread.
    @with_mysql(**app_user.connect_kwargs(), manage_conns=False, sigterm=False)
    def handler(event: Any, context: Any, db: ServerlessMySQL) -> tuple[int, int]:
        return int(db.query("SELECT CONNECTION_ID() AS id")[0]["id"]), id(db)

    results = [handler({}, None)]
    for _ in range(6):
        thread = threading.Thread(target=lambda: results.append(handler({}, None)))
        thread.start()
        thread.join(10)
    assert len(results) == 7
    assert {client for _, client in results} == {id(handler.db)}
    assert len({thread for thread, _ in results}) == 1, results
    open_now = mariadb.execute(
        f"SELECT COUNT(*) AS n FROM information_schema.processlist WHERE user = '{app_user.name}'"
    )[0]["n"]
    assert open_now == 1
    handler.db.quit()


def test_a_handler_calling_itself_on_its_thread_is_nested(app_user: AppUser) -> None:
    @with_mysql(**app_user.connect_kwargs(), sigterm=False)
    def handler(event: Any, context: Any, db: ServerlessMySQL) -> list[int]:
        ids = [id(db)]
        if event.get("again"):
            ids += handler({}, None)  # the same client: the outer call owns the cleanup
            assert db.query("SELECT 1 AS one")[0]["one"] == 1
        return ids

    assert handler({"again": True}, None) == [id(handler.db)] * 2
    handler.db.quit()
