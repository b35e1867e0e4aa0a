"""Fault matrix, server-side faults: crash + restart, KILL (idle and busy), wait_timeout, saturation, rotation.

No proxy here: the client talks to the server directly. Crash and saturation use private servers of this
module (crashing or filling the session server would disturb other tests); the rest use the session server with
a fresh account per test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pymysql
import pytest

from harness.mariadb import AppUser, MariaDBServer, thread_id
from serverless_mysql import ServerlessMySQL, pressure
from serverless_mysql.errors import (
    ConnectError,
    ConnectionLostError,
    DeadlineExceededError,
    TransactionAbortedError,
)
from tests.conftest import private_server
from tests.faults.conftest import LeakSink
from tests.faults.matrix import (
    DEADLINE,
    LAMBDA_TIMEOUT,
    Attempt,
    Target,
    attempt,
    check_bounded,
    check_next_invocation,
    check_no_leak,
    check_outcome,
    check_recovers,
    check_transaction,
    check_write,
    deadline,
    invoke,
    op_read,
    op_transaction,
    op_write,
    warm,
)
from tests.faults.reliability import Observation

pytestmark = pytest.mark.timeout(40)

Matrix = Callable[..., Observation]
OPS = ("connect", "read", "write", "transaction", "end", "quit")


def run_idle_op(
    db: ServerlessMySQL, target: Target, operation: str, leaks: LeakSink, seconds: float = DEADLINE
) -> Attempt:
    """Run ``operation`` on a client whose idle connection the fault already hit."""
    runner: dict[str, Callable[[], object]] = {
        "connect": db.connect,
        "read": lambda: op_read(db),
        "write": lambda: op_write(db, target.table),
        "end": db.end,
        "quit": db.quit,
    }
    with deadline(db, seconds):
        return attempt(runner[operation], leaks)


def verify(obs: Observation, target: Target, db: ServerlessMySQL, operation: str, result: Attempt) -> None:
    """The checks every cell makes after the fault: data, reuse, leaks."""
    if operation != "quit":
        db.terminate()
    target.settle(0)
    if operation == "write":
        check_write(obs, target, result)
    if operation == "transaction":
        check_transaction(obs, target, result)
    if operation == "read" and result.ok:
        obs.checks += ("complete result set",)
    check_recovers(obs, db)
    check_no_leak(obs, target, db)


def client_thread_id(db: ServerlessMySQL) -> int:
    conn = db.get_client()
    assert conn is not None
    return thread_id(conn)


# ================================================================================================ crash + restart
@pytest.fixture(scope="module")
def crash_server() -> Iterator[MariaDBServer]:
    yield from private_server(max_connections=20)


@pytest.fixture
def crash_target(crash_server: MariaDBServer, leaks: LeakSink) -> Iterator[Target]:
    if not crash_server.running:
        crash_server.start()
    user = crash_server.create_user()
    leaks.secret(user.password)
    t = Target(server=crash_server, user=user, host=crash_server.host, port=crash_server.port, leaks=leaks)
    t.make_table()
    yield t
    t.close_all()


CRASH_EXPECTED: dict[str, tuple[Any, ...]] = {
    "connect": ("ok",),
    "read": ("ok",),
    "write": ("ok",),
    "transaction": (TransactionAbortedError,),
    "end": ("ok",),
    "quit": ("ok",),
}
CRASH_SCENARIOS = {
    "connect": "cold client connects while the server is down; it is back after 0.5 s",
    "read": "server crashed and restarted while the client was idle, then a SELECT",
    "write": "server crashed and restarted while the client was idle, then an INSERT",
    "transaction": "crash + restart between the two INSERTs",
    "end": "server crashed and restarted while idle, then end()",
    "quit": "server crashed and restarted while idle, then quit()",
}


@pytest.mark.matrix
@pytest.mark.parametrize("operation", OPS)
def test_crash_restart(operation: str, crash_target: Target, matrix: Matrix, leaks: LeakSink) -> None:
    server, expected = crash_target.server, CRASH_EXPECTED[operation]
    obs = matrix("crash", operation, scenario=CRASH_SCENARIOS[operation], expected=_names(expected))
    db = crash_target.client()
    bound = DEADLINE
    if operation == "connect":
        server.crash()
        restarter = threading.Timer(0.5, server.start)
        restarter.start()
        bound = 5.0  # the restart itself takes ~0.6 s on a quiet machine
        with deadline(db, bound):
            result = attempt(db.connect, leaks)
        restarter.join()
    elif operation == "transaction":
        warm(db)

        def crash_and_restart() -> None:
            server.crash()
            server.start()

        with deadline(db, 10):  # the restart happens inside the transaction; it is not what is measured here
            result = attempt(lambda: op_transaction(db, crash_target.table, between=crash_and_restart), leaks)
        bound = 10
    else:
        warm(db)
        server.crash()
        server.start()
        result = run_idle_op(db, crash_target, operation, leaks)
    check_outcome(obs, result, *expected)
    check_bounded(obs, result, bound)
    verify(obs, crash_target, db, operation, result)


# ================================================================================================ KILL while idle
KILL_EXPECTED: dict[str, tuple[Any, ...]] = {
    "connect": ("ok",),
    "read": ("ok",),
    "write": ("ok",),
    "transaction": (TransactionAbortedError,),
    "end": ("ok",),
    "quit": ("ok",),
}


@pytest.mark.matrix
@pytest.mark.parametrize("operation", OPS)
def test_kill_idle(operation: str, target: Target, matrix: Matrix, leaks: LeakSink) -> None:
    expected = KILL_EXPECTED[operation]
    then = "connect()" if operation == "connect" else operation
    scenario = (
        "KILL between the two INSERTs"
        if operation == "transaction"
        else f"warm client's idle connection KILLed by root, then {then}"
    )
    obs = matrix("kill", operation, scenario=scenario, expected=_names(expected))
    db = target.client()
    warm(db)

    def kill() -> None:
        target.server.kill(client_thread_id(db))
        assert target.settle(0) == 0

    if operation == "transaction":
        with deadline(db):
            result = attempt(lambda: op_transaction(db, target.table, between=kill), leaks)
    else:
        kill()
        result = run_idle_op(db, target, operation, leaks)
    check_outcome(obs, result, *expected)
    check_bounded(obs, result)
    verify(obs, target, db, operation, result)


# ================================================================================================ KILL while busy
SLEEP = 0.6
KILL_BUSY: dict[str, tuple[str, tuple[Any, ...]]] = {
    "read": ("KILL while SELECT SLEEP(0.6) runs (a plain read outside a transaction)", ("ok",)),
    "write": ("KILL while INSERT ... SELECT SLEEP(0.6) runs", (ConnectionLostError,)),
    "transaction": ("KILL while the 2nd INSERT (... SLEEP(0.6)) runs", (TransactionAbortedError,)),
}


def kill_when_running(server: MariaDBServer, user: str, marker: str) -> threading.Thread:
    """Start a thread that KILLs ``user``'s connection as soon as a statement containing ``marker`` runs."""

    def run() -> None:
        deadline_at = time.monotonic() + 5
        while time.monotonic() < deadline_at:
            for row in server.processlist(user):
                if marker in str(row.get("INFO") or ""):
                    server.kill(int(row["ID"]))
                    return
            time.sleep(0.01)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.matrix
@pytest.mark.parametrize("operation", list(KILL_BUSY))
def test_kill_busy(operation: str, target: Target, matrix: Matrix, leaks: LeakSink) -> None:
    scenario, expected = KILL_BUSY[operation]
    obs = matrix("kill_busy", operation, scenario=scenario, expected=_names(expected))
    db = target.client()
    warm(db)
    marker = f"/* kill-me-{operation} */"
    killer = kill_when_running(target.server, target.user.name, marker)
    with deadline(db, 3 * DEADLINE):
        if operation == "read":
            # Marked as a plain read; the re-run carries the marker too, so the killer only fires once.
            result = attempt(lambda: db.query(f"SELECT {marker} SLEEP({SLEEP}) AS s"), leaks)
        elif operation == "write":
            result = attempt(
                lambda: db.query(f"INSERT INTO {target.table} (id, v) SELECT {marker} 1, SLEEP({SLEEP})"), leaks
            )
        else:

            def tx() -> None:
                with db.transaction() as t:
                    t.query(f"INSERT INTO {target.table} (id, v) VALUES (10, 'a')")
                    t.query(f"INSERT INTO {target.table} (id, v) SELECT {marker} 11, SLEEP({SLEEP})")

            result = attempt(tx, leaks)
    killer.join(5)
    check_outcome(obs, result, *expected)
    check_bounded(obs, result, 3 * DEADLINE)
    if operation == "read":
        assert result.value == [{"s": 0}]
        obs.checks += ("re-run once, full result",)
    verify(obs, target, db, operation, result)


# ================================================================================================ wait_timeout
@pytest.mark.matrix
@pytest.mark.parametrize("operation", OPS)
def test_wait_timeout(operation: str, target: Target, matrix: Matrix, leaks: LeakSink) -> None:
    expected: tuple[Any, ...] = (TransactionAbortedError,) if operation == "transaction" else ("ok",)
    scenario = (
        "the connection idles past wait_timeout (1 s) between the two INSERTs"
        if operation == "transaction"
        else f"the idle connection passes wait_timeout (1 s) and the server closes it, then {operation}"
    )
    obs = matrix("wait_timeout", operation, scenario=scenario, expected=_names(expected))
    db = target.client(connect_args={"init_command": "SET SESSION wait_timeout = 1"})
    warm(db)

    def expire() -> None:
        assert target.settle(0, timeout=10) == 0, "the server did not close the idle connection"

    if operation == "transaction":
        with deadline(db, 15):
            result = attempt(lambda: op_transaction(db, target.table, between=expire), leaks)
        bound = 15.0
    else:
        expire()
        result = run_idle_op(db, target, operation, leaks)
        bound = DEADLINE
    check_outcome(obs, result, *expected)
    check_bounded(obs, result, bound)
    verify(obs, target, db, operation, result)


# ================================================================================================ saturation
@pytest.fixture(scope="module")
def full_server() -> Iterator[MariaDBServer]:
    yield from private_server(max_connections=10)


@pytest.fixture
def full_target(full_server: MariaDBServer, leaks: LeakSink) -> Iterator[Target]:
    # PROCESS lets end() see every client connection, so it can measure the server's real utilization.
    user = full_server.create_user(process=True)
    leaks.secret(user.password)
    t = Target(server=full_server, user=user, host=full_server.host, port=full_server.port, leaks=leaks)
    t.make_table()
    yield t
    t.close_all()
    full_server.close_zombies()
    full_server.wait_for_connection_count(0)


def _open_one(server: MariaDBServer, user: AppUser) -> bool:
    """Open one more idle connection as ``user``; False once the server refuses with 1040."""
    try:
        server.open_zombies(user, 1)
    except pymysql.err.OperationalError as exc:
        assert exc.args[0] == 1040, exc
        return False
    return True


def fill(server: MariaDBServer, leaks: LeakSink) -> AppUser:
    """Take every free slot with another account's idle connections (until the server answers 1040)."""
    filler = server.create_user()
    leaks.secret(filler.password)
    opened = 0
    while _open_one(server, filler):
        opened += 1
        assert opened <= server.max_connections, "the server never refused a connection"
    return filler


SATURATION: dict[str, tuple[str, tuple[Any, ...]]] = {
    "connect": ("cold client connects while every slot is taken; none frees up", (DeadlineExceededError,)),
    "read": ("warm client, then the server fills up; a SELECT", ("ok",)),
    "write": ("warm client, then the server fills up; an INSERT", ("ok",)),
    "transaction": ("warm client, then the server fills up; a transaction", ("ok",)),
    "end": (
        "warm client (with PROCESS), the server fills up with another account's connections until one is "
        "refused; end()",
        ("ok",),
    ),
    "quit": ("warm client, then the server fills up; quit()", ("ok",)),
}


@pytest.mark.matrix
@pytest.mark.parametrize("operation", OPS)
def test_saturation(
    operation: str, full_target: Target, matrix: Matrix, leaks: LeakSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fill() connects one by one from this thread, slower on a loaded machine than a herd does: the rate that makes
    # a herd is scaled down (the rule itself: tests/unit/test_pressure.py).
    monkeypatch.setattr(pressure, "HERD_RATE", 0.01)
    scenario, expected = SATURATION[operation]
    obs = matrix("saturation", operation, scenario=scenario, expected=_names(expected))
    # end(): measuring on every end() makes the outcome certain.
    db = full_target.client(used_conns_freq=0) if operation == "end" else full_target.client()
    if operation == "connect":
        fill(full_target.server, leaks)
        result = run_idle_op(db, full_target, operation, leaks)
        assert full_target.connections() == 0
    else:
        warm(db)
        filler = fill(full_target.server, leaks)
        if operation == "end":
            # fill() ended with a refused connect: a herd connected after this client into the full server, which its
            # first reading of the failed-connect counters, with no earlier one to compare with, takes for a queue, so
            # end() gives the slot back (the policy: serverless_mysql.pressure).
            assert not _open_one(full_target.server, filler)
        if operation == "transaction":
            with deadline(db):
                result = attempt(lambda: op_transaction(db, full_target.table), leaks)
        else:
            result = run_idle_op(db, full_target, operation, leaks)
    check_outcome(obs, result, *expected)
    check_bounded(obs, result)
    if operation == "connect":
        assert isinstance(result.exc, DeadlineExceededError)
        assert result.exc.last_error is not None and result.exc.errno == 1040
        obs.checks += ("error chains the last 1040",)
    if operation == "end":
        stats = db.get_stats()
        assert stats.pressure_quits == 1 and stats.zombies_killed == 0, stats
        assert full_target.settle(0) == 0
        obs.checks += ("gave its own connection up under pressure, killed nobody else's",)
    full_target.server.close_zombies()
    verify(obs, full_target, db, operation, result)


# ================================================================================================ password rotation
def rotate(server: MariaDBServer, user: AppUser, leaks: LeakSink) -> AppUser:
    new = leaks.secret(f"rotated-{time.monotonic_ns()}-{user.password}")
    server.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", [user.name, new])
    return AppUser(name=user.name, password=new, host=user.host, port=user.port, database=user.database)


ROTATION: dict[str, tuple[str, tuple[Any, ...]]] = {
    "connect": ("cold client with the old static password connects after rotation", (ConnectError,)),
    "read": ("warm client; the password rotates; a SELECT on the open connection", ("ok",)),
    "write": ("warm client; the password rotates; an INSERT on the open connection", ("ok",)),
    "transaction": ("warm client; the password rotates; a transaction", ("ok",)),
    "end": ("warm client; the password rotates; end()", ("ok",)),
    "quit": ("warm client; the password rotates; quit()", ("ok",)),
}


@pytest.mark.matrix
@pytest.mark.parametrize("operation", OPS)
def test_rotation_static_password(operation: str, target: Target, matrix: Matrix, leaks: LeakSink) -> None:
    scenario, expected = ROTATION[operation]
    obs = matrix("rotation", operation, scenario=scenario, expected=_names(expected))
    db = target.client()
    if operation != "connect":
        warm(db)
    new_user = rotate(target.server, target.user, leaks)
    if operation == "transaction":
        with deadline(db):
            result = attempt(lambda: op_transaction(db, target.table), leaks)
    else:
        result = run_idle_op(db, target, operation, leaks)
    check_outcome(obs, result, *expected)
    check_bounded(obs, result)
    if operation == "connect":
        assert isinstance(result.exc, ConnectError)
        assert result.exc.errno == 1045 and result.exc.attempts == 1, (result.exc.errno, result.exc.attempts)
        obs.checks += ("1045 raised at once, not retried",)
    if operation == "write":
        check_write(obs, target, result)
    if operation == "transaction":
        check_transaction(obs, target, result)
    db.terminate()
    fresh = ServerlessMySQL(**{**target.options(), "password": new_user.password})
    target.clients.append(fresh)
    check_recovers(obs, fresh, "a client with the new password works")
    check_no_leak(obs, target, db, fresh)


def _names(expected: tuple[Any, ...]) -> str:
    return " or ".join(e if isinstance(e, str) else e.__name__ for e in expected)


# ================================================================================================ decorator column
DECORATOR: dict[str, tuple[str, tuple[Any, ...]]] = {
    "crash": ("warm handler; the server crashes and restarts between invocations; an invocation INSERTs", ("ok",)),
    "kill": ("warm handler; its idle connection is KILLed between invocations; an invocation INSERTs", ("ok",)),
    "wait_timeout": ("warm handler; wait_timeout closes its connection between invocations; it INSERTs", ("ok",)),
    "saturation": (
        "cold handler (fresh environment) invoked while every slot is taken",
        (DeadlineExceededError,),
    ),
}


@pytest.mark.matrix
@pytest.mark.parametrize("fault", list(DECORATOR))
def test_decorator_invocation(fault: str, request: pytest.FixtureRequest, matrix: Matrix, leaks: LeakSink) -> None:
    scenario, expected = DECORATOR[fault]
    obs = matrix(fault, "decorator", scenario=scenario, expected=_names(expected))
    fixture = {"crash": "crash_target", "saturation": "full_target"}.get(fault, "target")
    target: Target = request.getfixturevalue(fixture)
    server = target.server
    overrides: dict[str, Any] = (
        {"connect_args": {"init_command": "SET SESSION wait_timeout = 1"}} if fault == "wait_timeout" else {}
    )
    handler = target.handler(**overrides)
    if fault == "saturation":
        fill(server, leaks)
    else:
        assert invoke(handler, "read").ok
        if fault == "crash":
            server.crash()
            server.start()
        elif fault == "kill":
            server.kill(client_thread_id(handler.db))
        assert target.settle(0, timeout=10) == 0
    result = invoke(handler, "write", leaks)
    leaks.observe(handler.db, handler.db.get_stats())
    check_outcome(obs, result, *expected)
    check_bounded(obs, result, LAMBDA_TIMEOUT)
    if fault == "saturation":
        assert isinstance(result.exc, DeadlineExceededError) and result.exc.errno == 1040
        obs.checks += ("error chains the last 1040",)
        server.close_zombies()
    handler.db.terminate()
    target.settle(0)
    check_write(obs, target, result)
    check_next_invocation(obs, handler)
    check_no_leak(obs, target, handler.db)
