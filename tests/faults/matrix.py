"""Building blocks of the fault matrix: targets, the operations, outcome capture and the data checks.

Every matrix test follows the same script:

1. build a client for a fresh account (its password registered as a secret) pointing at the server, directly or
   through the :class:`~harness.faultproxy.FaultProxy`;
2. warm it up (one statement), inject the fault, run **one operation** under ``set_deadline(DEADLINE)``, and
   record the observed outcome (``ok`` or the exception class);
3. heal the fault and verify through the server's **root connection**: writes applied exactly once or not at
   all, transactions all or nothing, the same client usable again, and after ``quit()`` the account's connection
   count back to zero.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import ServerlessMySQL, with_mysql
from serverless_mysql.decorator import MySQLHandler
from serverless_mysql.errors import ServerlessMySQLError
from serverless_mysql.lambda_context import LocalLambdaContext
from tests.faults.conftest import LeakSink
from tests.faults.reliability import Observation

DEADLINE: Final = 2.0
"""Seconds every matrix operation gets (``set_deadline``)."""
SLACK: Final = 0.75
"""How far past the deadline an operation may finish (scheduling on a busy 2-core machine)."""
BIG_ROWS: Final = 100
BIG_READ: Final = f"SELECT seq AS id, REPEAT('x', 1000) AS v FROM seq_1_to_{BIG_ROWS}"
"""A read of ~100 KB: big enough to be cut in the middle of its result set."""
MARGIN: Final = 0.5
"""``deadline_margin`` of the decorated handlers (the decorator's default)."""
LAMBDA_TIMEOUT: Final = DEADLINE + MARGIN
"""The simulated Lambda timeout of a decorated invocation: its client gets DEADLINE seconds."""
TX_IDS: Final = (10, 11)
WRITE_ID: Final = 1

_tables = itertools.count(1)


@dataclass
class Attempt:
    """What one operation did: ``outcome`` is ``"ok"`` or the exception's class name."""

    outcome: str
    exc: BaseException | None
    elapsed: float
    value: Any = None

    @property
    def ok(self) -> bool:
        return self.exc is None


def attempt(fn: Callable[[], Any], leaks: LeakSink | None = None) -> Attempt:
    """Run ``fn``; capture its result or exception (library errors and PyMySQL errors alike) and its duration."""
    t0 = time.monotonic()
    try:
        value = fn()
    except Exception as exc:  # the outcome is what we record; the test asserts on it
        if leaks is not None:
            leaks.observe(exc)
        return Attempt(type(exc).__name__, exc, time.monotonic() - t0)
    return Attempt("ok", None, time.monotonic() - t0, value)


@dataclass
class Target:
    """An account, the endpoint its client uses (server or proxy) and the server to check data on as root."""

    server: MariaDBServer
    user: AppUser
    host: str
    port: int
    leaks: LeakSink
    table: str = ""
    clients: list[ServerlessMySQL] = field(default_factory=list)

    def options(self, **overrides: Any) -> dict[str, Any]:
        opts: dict[str, Any] = {
            **self.user.connect_kwargs(),
            "host": self.host,
            "port": self.port,
            "connect_timeout": 1.0,
            "read_timeout": None,
            **overrides,
        }
        return opts

    def client(self, **overrides: Any) -> ServerlessMySQL:
        db = ServerlessMySQL(**self.options(**overrides))
        self.clients.append(db)
        self.leaks.observe(db, db.get_config())
        return db

    def handler(self, **overrides: Any) -> MySQLHandler[Any]:
        """A ``@with_mysql`` handler for this target (decorated now: the Lambda init phase).

        ``event["op"]``: ``"read"`` runs ``SELECT 1``, ``"write"`` inserts ``WRITE_ID`` into the table.
        """
        table = self.table
        options = {"deadline_margin": MARGIN, "sigterm": False, **self.options(**overrides)}

        @with_mysql(**options)
        def handler(event: dict[str, Any], context: object, db: ServerlessMySQL) -> list[dict[str, Any]]:
            if event["op"] == "write":
                return list(db.query(f"INSERT INTO {table} (id, v) VALUES (%s, %s)", (WRITE_ID, "w")))
            return list(db.query("SELECT 1 AS one"))

        self.clients.append(handler.db)
        self.leaks.observe(handler.db, handler.db.get_config())
        return handler

    def make_table(self) -> str:
        name = f"`{self.server.database}`.`fm_{next(_tables)}_{time.monotonic_ns() % 10**6}`"
        self.server.execute(f"CREATE TABLE {name} (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB")
        self.table = name
        return name

    def ids(self) -> list[int]:
        """The table's ids, read as root on a separate connection."""
        return [int(r["id"]) for r in self.server.execute(f"SELECT id FROM {self.table} ORDER BY id")]

    def connections(self) -> int:
        return self.server.connection_count(self.user.name)

    def settle(self, expected: int = 0, timeout: float = 5.0) -> int:
        """Wait until the account has ``expected`` connections on the server (closing is asynchronous)."""
        return self.server.wait_for_connection_count(expected, self.user.name, timeout=timeout)

    def close_all(self) -> None:
        for db in self.clients:
            db.terminate()


# ------------------------------------------------------------------------------------------------ operations
def warm(db: ServerlessMySQL) -> None:
    """Connect and run one statement, so the fault hits an established, idle connection."""
    db.set_deadline(None)
    assert db.query("SELECT 1 AS one") == [{"one": 1}]


def op_read(db: ServerlessMySQL) -> Any:
    rows = db.query(BIG_READ)
    assert len(rows) == BIG_ROWS and rows[-1]["id"] == BIG_ROWS, "incomplete result set returned as success"
    return rows


def op_write(db: ServerlessMySQL, table: str) -> Any:
    return db.query(f"INSERT INTO {table} (id, v) VALUES (%s, %s)", (WRITE_ID, "w"))


def op_transaction(
    db: ServerlessMySQL,
    table: str,
    between: Callable[[], None] = lambda: None,
    before_commit: Callable[[], None] = lambda: None,
) -> None:
    with db.transaction() as tx:
        tx.query(f"INSERT INTO {table} (id, v) VALUES (%s, %s)", (TX_IDS[0], "a"))
        between()
        tx.query(f"INSERT INTO {table} (id, v) VALUES (%s, %s)", (TX_IDS[1], "b"))
        before_commit()


def invoke(
    handler: MySQLHandler[Any], op: str, leaks: LeakSink | None = None, timeout: float = LAMBDA_TIMEOUT
) -> Attempt:
    """One Lambda invocation of ``handler`` with a context whose remaining time counts down from ``timeout``."""
    return attempt(lambda: handler({"op": op}, LocalLambdaContext(timeout=timeout)), leaks)


def check_next_invocation(obs: Observation, handler: MySQLHandler[Any]) -> None:
    result = invoke(handler, "read", timeout=2 * LAMBDA_TIMEOUT)
    assert result.ok, f"the next invocation failed: {result.exc!r}"
    assert result.value == [{"one": 1}]
    obs.checks += ("next invocation works",)


# ------------------------------------------------------------------------------------------------ checks
def check_bounded(obs: Observation, result: Attempt, bound: float = DEADLINE) -> None:
    assert result.elapsed <= bound + SLACK, f"took {result.elapsed:.2f}s, bound {bound}s"
    obs.checks += (f"finished within the {bound:g} s bound",)


def check_write(obs: Observation, target: Target, result: Attempt) -> None:
    """Exactly once when the write succeeded, at most once when it raised; never twice (the key is unique, so a
    re-run shows up as a duplicate-key error, never as two rows - we also compare the count)."""
    ids = target.ids()
    if result.ok:
        assert ids == [WRITE_ID], f"a successful write must be applied exactly once; rows: {ids}"
        obs.checks += ("write applied exactly once",)
    else:
        assert ids in ([], [WRITE_ID]), f"rows after a failed write: {ids}"
        assert not (isinstance(result.exc, Exception) and "Duplicate entry" in str(result.exc)), (
            "the write ran twice (duplicate key on re-run)"
        )
        obs.checks += ("write applied at most once",)


def check_transaction(obs: Observation, target: Target, result: Attempt) -> None:
    ids = target.ids()
    if result.ok:
        assert ids == list(TX_IDS), f"a committed transaction must be complete; rows: {ids}"
        obs.checks += ("transaction committed completely",)
    else:
        assert ids in ([], list(TX_IDS)), f"a failed transaction must be all or nothing; rows: {ids}"
        obs.checks += ("transaction all or nothing",)


def check_recovers(obs: Observation, db: ServerlessMySQL, what: str = "same client works after heal") -> None:
    """After the fault is healed, the same client instance works again."""
    db.set_deadline(DEADLINE * 2)
    assert db.query("SELECT 2 AS two") == [{"two": 2}]
    db.set_deadline(None)
    obs.checks += (what,)


def check_no_leak(obs: Observation, target: Target, *clients: ServerlessMySQL) -> None:
    for db in clients:
        db.quit()
    count = target.settle(0)
    assert count == 0, f"{count} connection(s) of {target.user.name} left on the server"
    obs.checks += ("no connection leaked",)


def check_outcome(obs: Observation, result: Attempt, *expected: type[BaseException] | str) -> None:
    """Record the observed outcome and assert it is one of ``expected`` (``"ok"`` or exception classes)."""
    obs.outcome = result.outcome
    names = {e if isinstance(e, str) else e.__name__ for e in expected}
    if result.outcome in names:
        return
    if result.exc is not None and any(
        isinstance(e, type) and isinstance(result.exc, e) for e in expected
    ):  # a documented subclass
        return
    raise AssertionError(
        f"expected {' or '.join(sorted(names))}, observed {result.outcome}: {result.exc!r}"
        + (f" (cause: {result.exc.__cause__!r})" if result.exc is not None and result.exc.__cause__ else "")
    )


def is_library_error(exc: BaseException | None) -> bool:
    return isinstance(exc, ServerlessMySQLError)


@contextmanager
def deadline(db: ServerlessMySQL, seconds: float = DEADLINE) -> Iterator[None]:
    db.set_deadline(seconds)
    try:
        yield
    finally:
        db.set_deadline(None)
