"""Fixtures of the failover drill: one local cluster (writer + two replicas, see harness/cluster.py) per module."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.cluster import LocalCluster
from harness.mariadb import AppUser, external_url

# Short in tests: the behaviour under test is the same with Aurora's 5 s DNS TTL, only slower.
TEST_SWITCH_DELAY = 1.0
_tables = itertools.count(1)


class Context:
    """A Lambda context whose remaining time counts down from ``seconds``."""

    def __init__(self, seconds: float = 30.0) -> None:
        self.deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A started cluster: a writer and two replicas behind a cluster endpoint and a round-robin reader endpoint."""
    if external_url() is not None:
        pytest.skip("the local cluster needs private MariaDB servers (SMYSQL_TEST_URL is set)")
    with LocalCluster(replicas=2, switch_delay=TEST_SWITCH_DELAY) as started:
        yield started


@pytest.fixture
def app(cluster: LocalCluster) -> AppUser:
    """A fresh application account (no SUPER) through the cluster endpoint."""
    return cluster.create_user()


@pytest.fixture
def drill_table(cluster: LocalCluster) -> str:
    """A fresh table ``<db>.drill_N(id AUTO_INCREMENT, k INT NOT NULL)`` (no unique key on k: a doubled write shows)."""
    name = f"app.drill_{next(_tables)}_{time.monotonic_ns() % 10**6}"
    cluster.root_execute(f"CREATE TABLE {name} (id INT AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL) ENGINE=InnoDB")
    cluster.wait_replicated()
    return name


def counts_on_writer(cluster: LocalCluster, table: str) -> dict[int, int]:
    """``k -> rows`` of ``table`` on the current writer, read as root."""
    rows = cluster.writer.execute(f"SELECT k, COUNT(*) AS n FROM {table} GROUP BY k")
    return {int(r["k"]): int(r["n"]) for r in rows}


def errno_of(exc: BaseException) -> int | None:
    """The MySQL error number of ``exc`` or of the PyMySQL error it was raised from."""
    seen: BaseException | None = exc
    while seen is not None:
        args: Any = getattr(seen, "args", ())
        if args and isinstance(args[0], int):
            return int(args[0])
        seen = seen.__cause__ or seen.__context__
    return None
