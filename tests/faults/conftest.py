"""Fixtures and hooks of the fault suite: the matrix recorder and the secret-leak sink.

* ``matrix(...)`` records one cell of the fault matrix (see ``reliability.py``); each cell's test result is added
  by :func:`pytest_runtest_makereport`, and ``test_reliability_doc.py`` (moved to the very end of the run) renders
  ``docs/RELIABILITY.md`` from the cells and compares it with the committed file.
* Every test under ``tests/faults`` captures the ``serverless_mysql`` logs at DEBUG (message, arguments, every
  structured ``extra`` field and formatted tracebacks) into a session-wide :class:`LeakSink`, together with the
  exceptions, reprs and configs the tests hand to ``leaks.observe()``. A test fails at teardown when a
  registered secret (passwords, secret strings, tokens) shows up in what it captured, and
  ``test_zz_no_secret_leaked`` checks the whole session once more at the end.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.mariadb import AppUser, MariaDBServer
from tests.faults.reliability import Collector, Observation

if TYPE_CHECKING:
    from tests.faults.matrix import Target

COLLECTOR_KEY = pytest.StashKey[Collector]()
LEAKS_KEY = pytest.StashKey["LeakSink"]()
_HERE = Path(__file__).resolve().parent
_LAST_TESTS = ("test_reliability_doc.py", "test_zz_no_secret_leaked.py")
_STANDARD_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}


# ------------------------------------------------------------------------------------------------ leak sink
@dataclass
class LeakSink:
    """Everything the suite saw the library say, and the secrets that must never be in it."""

    secrets: set[str] = field(default_factory=set)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (nodeid, text)
    current: str = "session"

    def secret(self, value: str) -> str:
        """Register ``value`` as a secret (ignored if too short to search for without false positives)."""
        if isinstance(value, str) and len(value) >= 8:
            self.secrets.add(value)
        return value

    def observe(self, *things: object) -> None:
        """Capture ``str()`` and ``repr()`` of each thing; for exceptions, of the whole cause/context chain."""
        for thing in things:
            if isinstance(thing, BaseException):
                self._observe_exception(thing)
            else:
                self.texts.append((self.current, f"{thing!s}\n{thing!r}"))

    def _observe_exception(self, exc: BaseException) -> None:
        seen: set[int] = set()
        cur: BaseException | None = exc
        while cur is not None and id(cur) not in seen:
            seen.add(id(cur))
            self.texts.append((self.current, f"{cur!s}\n{cur!r}\n{cur.args!r}"))
            for attr in ("last_error",):
                value = getattr(cur, attr, None)
                if value is not None:
                    self.texts.append((self.current, repr(value)))
            cur = cur.__cause__ or cur.__context__
        self.texts.append((self.current, "".join(traceback.format_exception(exc))))

    def leaks(self, since: int = 0) -> list[tuple[str, str]]:
        """(nodeid, secret prefix) for every secret found in the texts captured since index ``since``."""
        return [
            (nodeid, secret[:3] + "…")
            for nodeid, text in self.texts[since:]
            for secret in self.secrets
            if secret in text
        ]


class _SinkHandler(logging.Handler):
    def __init__(self, sink: LeakSink) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            parts = [record.getMessage(), repr(record.args)]
            parts += [f"{k}={v!r}" for k, v in vars(record).items() if k not in _STANDARD_RECORD_ATTRS]
            if record.exc_info:
                parts.append(self._formatter.formatException(record.exc_info))
            if record.stack_info:
                parts.append(record.stack_info)
            self.sink.texts.append((self.sink.current, "\n".join(parts)))
        except Exception:  # a broken log record must not break the test; keep its raw form
            self.sink.texts.append((self.sink.current, repr(vars(record))))


# ------------------------------------------------------------------------------------------------ hooks
def pytest_configure(config: pytest.Config) -> None:
    config.stash[COLLECTOR_KEY] = Collector()
    config.stash[LEAKS_KEY] = LeakSink()
    config.addinivalue_line("markers", "matrix: a cell of the fault matrix (records into docs/RELIABILITY.md)")


def _is_matrix_item(item: pytest.Item) -> bool:
    """A cell of the matrix: marked ``@pytest.mark.matrix`` in a ``tests/faults/test_matrix_*.py`` module."""
    path = Path(str(item.path))
    return (
        path.parent == _HERE and path.name.startswith("test_matrix_") and item.get_closest_marker("matrix") is not None
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The document and the leak check summarize everything else: run them last, whatever the order plugins chose.
    last = [item for name in _LAST_TESTS for item in items if Path(str(item.path)).name == name]
    rest = [item for item in items if item not in last]
    items[:] = rest + last


def pytest_deselected(items: list[pytest.Item]) -> None:
    for item in items:
        if _is_matrix_item(item):
            item.config.stash[COLLECTOR_KEY].incomplete.append(item.nodeid)


def pytest_collection_finish(session: pytest.Session) -> None:
    collector = session.config.stash[COLLECTOR_KEY]
    collector.matrix_nodeids = {item.nodeid for item in session.items if _is_matrix_item(item)}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    if _is_matrix_item(item) and (report.when == "call" or report.outcome != "passed"):
        # outcome: passed, failed (also a strict xpass, or a failing teardown), skipped
        status = ("xfailed" if report.skipped else "xpassed") if hasattr(report, "wasxfail") else report.outcome
        collector = item.config.stash[COLLECTOR_KEY]
        if collector.results.get(item.nodeid) not in ("failed", "skipped"):
            collector.results[item.nodeid] = status
        collector.set_status(item.nodeid, collector.results[item.nodeid])
        obs = collector.observations.get(item.nodeid)
        if obs is not None and status == "xfailed":
            obs.note = str(getattr(report, "wasxfail", "")).split(". ")[0]
    return report


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture
def leaks(request: pytest.FixtureRequest) -> LeakSink:
    """The session's leak sink: ``leaks.secret(value)`` registers a secret, ``leaks.observe(x)`` captures x."""
    return request.config.stash[LEAKS_KEY]


@pytest.fixture(autouse=True)
def _capture_library_output(request: pytest.FixtureRequest, leaks: LeakSink) -> Iterator[None]:
    """Capture serverless_mysql's logs at DEBUG for the leak check; fail the test if it leaked a secret."""
    logger = logging.getLogger("serverless_mysql")
    handler = _SinkHandler(leaks)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    leaks.current = request.node.nodeid
    start = len(leaks.texts)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        leaks.current = "session"
    found = leaks.leaks(start)
    if found:
        pytest.fail(f"a secret leaked into logs, reprs or exception messages: {sorted(set(found))}")


@pytest.fixture
def matrix(request: pytest.FixtureRequest) -> Callable[..., Observation]:
    """``matrix(fault, operation, scenario=..., expected=...)`` -> the cell's :class:`Observation` to fill in."""
    collector = request.config.stash[COLLECTOR_KEY]

    def record(fault: str, operation: str, *, scenario: str, expected: str) -> Observation:
        obs = Observation(
            fault=fault,
            operation=operation,
            scenario=scenario,
            expected=expected,
            outcome="(not reached)",
            checks=(),
            nodeid=request.node.nodeid,
        )
        collector.add(obs)
        return obs

    return record


@pytest.fixture
def fault_user(mariadb: MariaDBServer, leaks: LeakSink) -> AppUser:
    """A fresh account on the session server whose password is registered as a secret."""
    user = mariadb.create_user()
    leaks.secret(user.password)
    return user


@pytest.fixture
def target(mariadb: MariaDBServer, fault_user: AppUser, leaks: LeakSink) -> Iterator[Target]:
    """A matrix target on the session server, direct (no proxy), with its own table; modules may override it."""
    from tests.faults.matrix import Target

    t = Target(server=mariadb, user=fault_user, host=mariadb.host, port=mariadb.port, leaks=leaks)
    t.make_table()
    yield t
    t.close_all()


@pytest.fixture
def register_user(leaks: LeakSink) -> Callable[[AppUser], AppUser]:
    """Register an account's password as a secret and return the account."""

    def register(user: AppUser) -> AppUser:
        leaks.secret(user.password)
        return user

    return register
