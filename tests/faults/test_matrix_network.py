"""Fault matrix, network faults: blackhole, reset, delay and cut, injected by the loopback fault proxy.

The client connects through a :class:`FaultProxy` to the session server; data and connection counts are checked
as root on the server's admin port, which the proxy never touches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from harness.faultproxy import FaultProxy
from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql.errors import (
    ConnectionLostError,
    DeadlineExceededError,
    TransactionAbortedError,
)
from tests.faults.conftest import LeakSink
from tests.faults.matrix import (
    BIG_ROWS,
    DEADLINE,
    LAMBDA_TIMEOUT,
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

pytestmark = pytest.mark.timeout(30)

Expected = tuple[type[BaseException] | str, ...]
OK: Expected = ("ok",)


@dataclass(frozen=True)
class NetworkFault:
    """How one proxy fault is injected for each operation, and the documented outcome per operation."""

    name: str
    expected: dict[str, Expected]
    # Injected on an idle, warm connection (read, write, end, quit) and for the connect of a cold client.
    idle: Callable[[FaultProxy], object]
    connect: Callable[[FaultProxy], object]
    # Where the fault hits a transaction of two INSERTs: between them, or right before COMMIT.
    tx_between: Callable[[FaultProxy], object] | None = None
    tx_before_commit: Callable[[FaultProxy], object] | None = None
    # For "read", a fault in the middle of the result set instead of before the statement.
    read: Callable[[FaultProxy], object] | None = None
    scenarios: dict[str, str] = field(default_factory=dict)


def bind(fn: Callable[[FaultProxy], object] | None, proxy: FaultProxy) -> Callable[[], None]:
    """``fn(proxy)`` as a no-argument callable (a no-op for ``None``)."""

    def call() -> None:
        if fn is not None:
            fn(proxy)

    return call


FAULTS: dict[str, NetworkFault] = {
    "blackhole": NetworkFault(
        name="blackhole",
        idle=lambda p: p.blackhole(),
        connect=lambda p: p.blackhole(),
        tx_between=lambda p: p.blackhole(),
        expected={
            "connect": (DeadlineExceededError,),
            "read": (DeadlineExceededError,),
            "write": (DeadlineExceededError,),
            "transaction": (DeadlineExceededError, TransactionAbortedError),
            "end": OK,
            "quit": OK,
            "decorator": (DeadlineExceededError,),
        },
        scenarios={
            "connect": "cold client connects into the blackhole",
            "transaction": "blackhole between the two INSERTs",
        },
    ),
    "reset": NetworkFault(
        name="reset",
        idle=lambda p: p.reset(),
        connect=lambda p: p.reset(),
        tx_between=lambda p: p.reset(),
        expected={
            "connect": OK,
            "read": OK,
            "write": OK,
            "transaction": (TransactionAbortedError,),
            "end": OK,
            "quit": OK,
            "decorator": OK,
        },
        scenarios={
            "connect": "warm client's connection reset, then connect()",
            "transaction": "RST between the two INSERTs",
        },
    ),
    "delay": NetworkFault(
        name="delay",
        idle=lambda p: p.delay(0.2),
        connect=lambda p: p.delay(0.2),
        tx_between=lambda p: p.delay(0.2),
        expected=dict.fromkeys(("connect", "read", "write", "transaction", "end", "quit", "decorator"), OK),
        scenarios={"connect": "cold client connects through the delay", "transaction": "delay from the 2nd INSERT"},
    ),
    "cut": NetworkFault(
        name="cut",
        idle=lambda p: p.cut_after(0),
        connect=lambda p: p.cut_new_after(20),
        read=lambda p: p.cut_after(20_000),
        tx_before_commit=lambda p: p.cut_after(0),
        expected={
            "connect": OK,
            "read": OK,
            "write": (ConnectionLostError,),
            "transaction": (TransactionAbortedError,),
            "end": OK,
            "quit": OK,
            "decorator": (ConnectionLostError,),
        },
        scenarios={
            "connect": "first connect cut 20 bytes into the server greeting",
            "read": "cut 20 KB into a 100 KB result set",
            "write": "INSERT reaches the server, its OK packet is cut",
            "transaction": "COMMIT reaches the server, its answer is cut",
            "end": "end()'s housekeeping answer is cut",
            "quit": "cut armed on the idle connection, then quit()",
            "decorator": "warm handler; the next invocation's INSERT reaches the server, its OK packet is cut",
        },
    ),
}

DEFAULT_SCENARIOS = {
    "connect": "cold client connects with the fault active",
    "read": "warm client, fault while idle, then a 100-row SELECT",
    "write": "warm client, fault while idle, then one INSERT",
    "transaction": "two INSERTs in a transaction",
    "end": "warm client, fault while idle, then end() (housekeeping due)",
    "quit": "warm client, fault while idle, then quit()",
    "decorator": "warm handler (one invocation), fault while idle, then an invocation that INSERTs",
}


def expected_text(expected: Expected) -> str:
    return " or ".join(e if isinstance(e, str) else e.__name__ for e in expected)


@pytest.fixture
def proxy(mariadb: MariaDBServer) -> Iterator[FaultProxy]:
    with FaultProxy(mariadb.host, mariadb.port) as p:
        yield p


@pytest.fixture
def target(mariadb: MariaDBServer, fault_user: AppUser, proxy: FaultProxy, leaks: LeakSink) -> Iterator[Target]:
    t = Target(server=mariadb, user=fault_user, host=proxy.host, port=proxy.port, leaks=leaks)
    t.make_table()
    yield t
    t.close_all()


CELLS = [(f, op) for f in FAULTS for op in ("connect", "read", "write", "transaction", "end", "quit", "decorator")]


@pytest.mark.matrix
@pytest.mark.parametrize(("fault_name", "operation"), CELLS, ids=[f"{f}-{op}" for f, op in CELLS])
def test_network_fault(
    fault_name: str,
    operation: str,
    target: Target,
    proxy: FaultProxy,
    matrix: Callable[..., Observation],
    leaks: LeakSink,
) -> None:
    fault = FAULTS[fault_name]
    expected = fault.expected[operation]
    obs = matrix(
        fault_name,
        operation,
        scenario=fault.scenarios.get(operation, DEFAULT_SCENARIOS[operation]),
        expected=expected_text(expected),
    )
    if operation == "decorator":
        run_decorator_cell(fault, target, proxy, obs, expected, leaks)
        return
    db = target.client()

    if operation == "connect":
        if fault_name == "reset":
            warm(db)
        fault.connect(proxy)
        with deadline(db):
            result = attempt(db.connect, leaks)
    elif operation == "transaction":
        warm(db)
        between, before_commit = bind(fault.tx_between, proxy), bind(fault.tx_before_commit, proxy)
        with deadline(db):
            result = attempt(lambda: op_transaction(db, target.table, between, before_commit), leaks)
    else:
        warm(db)
        (fault.read if operation == "read" and fault.read else fault.idle)(proxy)
        runner: dict[str, Callable[[], object]] = {
            "read": lambda: op_read(db),
            "write": lambda: op_write(db, target.table),
            "end": db.end,
            "quit": db.quit,
        }
        with deadline(db):
            result = attempt(runner[operation], leaks)
    leaks.observe(db, db.get_stats())

    check_outcome(obs, result, *expected)
    check_bounded(obs, result)
    proxy.heal()
    # Let everything the fault held back reach the server, and the server forget dead connections, before
    # looking at the data: a write may be delivered late (a blackhole delays packets, it does not drop them).
    if operation != "quit":
        db.terminate()
    target.settle(0)
    if operation == "write":
        check_write(obs, target, result)
    if operation == "transaction":
        check_transaction(obs, target, result)
    if operation == "read" and result.ok:
        assert len(result.value) == BIG_ROWS
        obs.checks += ("complete result set",)
    check_recovers(obs, db)
    check_no_leak(obs, target, db)


def run_decorator_cell(
    fault: NetworkFault, target: Target, proxy: FaultProxy, obs: Observation, expected: Expected, leaks: LeakSink
) -> None:
    handler = target.handler()
    assert invoke(handler, "read").ok
    fault.idle(proxy)
    result = invoke(handler, "write", leaks)
    leaks.observe(handler.db, handler.db.get_stats())
    check_outcome(obs, result, *expected)
    check_bounded(obs, result, LAMBDA_TIMEOUT)
    proxy.heal()
    handler.db.terminate()
    target.settle(0)
    check_write(obs, target, result)
    check_next_invocation(obs, handler)
    check_no_leak(obs, target, handler.db)


def test_blackhole_read_without_deadline_is_bounded_by_read_timeout(target: Target, proxy: FaultProxy) -> None:
    """Outside Lambda (no deadline) the read_timeout option bounds a blackholed read; the read is not re-run."""
    db = target.client(read_timeout=0.5)
    warm(db)
    proxy.blackhole()
    result = attempt(lambda: op_read(db))
    assert result.outcome == ConnectionLostError.__name__, repr(result.exc)
    assert result.elapsed < 0.5 + 0.75
    proxy.heal()
    check = Observation("blackhole", "read", "", "", "", (), "")
    check_recovers(check, db)
    check_no_leak(check, target, db)


def test_deadline_shorter_than_connect_timeout(target: Target, proxy: FaultProxy) -> None:
    """A deadline well below connect_timeout wins: the connect gives up at the deadline, not after 5 s."""
    db = target.client(connect_timeout=5.0)
    proxy.blackhole()
    db.set_deadline(0.6)
    result = attempt(db.connect)
    assert result.outcome == DeadlineExceededError.__name__, repr(result.exc)
    assert result.elapsed < 0.6 + 0.75
    assert isinstance(result.exc, DeadlineExceededError)
    assert result.exc.waited <= 0.6 + 0.75


# ================================================================================================ silent drop
SILENT_DROP = {
    "ping-default": ("read", {"ping_after_idle": 0.1}, "ok"),
    "ping-read-timeout": ("read", {"ping_after_idle": 0.1, "read_timeout": 0.5}, "ok"),
    "ping-decorator": ("decorator", {"ping_after_idle": 0.1}, "ok"),
}


@pytest.mark.matrix
@pytest.mark.parametrize("case", list(SILENT_DROP))
def test_silent_drop(
    case: str, target: Target, proxy: FaultProxy, matrix: Callable[..., Observation], leaks: LeakSink
) -> None:
    operation, options, expected = SILENT_DROP[case]
    shown = ", ".join(f"{k}={v}" for k, v in options.items())
    obs = matrix(
        "silent_drop",
        operation,
        scenario=f"{'handler' if operation == 'decorator' else 'client'} with {shown}; its idle connection is "
        f"dropped silently; {'an invocation INSERTs' if operation == 'decorator' else 'a SELECT'}",
        expected=expected,
    )
    if operation == "decorator":
        handler = target.handler(**options)
        assert invoke(handler, "read").ok
        db = handler.db
    else:
        db = target.client(**options)
        warm(db)
    [idle] = proxy.connections()
    idle.blackhole()
    time.sleep(0.2)  # longer than ping_after_idle
    if operation == "decorator":
        result = invoke(handler, "write", leaks)
        bound = LAMBDA_TIMEOUT
    else:
        with deadline(db):
            result = attempt(lambda: op_read(db), leaks)
        bound = DEADLINE
    leaks.observe(db, db.get_stats())
    obs.outcome = result.outcome
    idle.reset()
    db.terminate()
    target.settle(0)
    if operation == "decorator":
        check_write(obs, target, result)
    check_no_leak(obs, target, db)
    check_outcome(obs, result, expected)
    check_bounded(obs, result, bound)
