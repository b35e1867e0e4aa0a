"""Fixtures for tests of the client against a real server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import ServerlessMySQL

ClientFactory = Callable[..., ServerlessMySQL]


@pytest.fixture
def client_factory() -> Iterator[ClientFactory]:
    """``client_factory(user, **options)``: a client for ``user``; every client is closed at teardown."""
    clients: list[ServerlessMySQL] = []

    def make(user: AppUser, **options: Any) -> ServerlessMySQL:
        db = ServerlessMySQL(**{**user.connect_kwargs(), **options})
        clients.append(db)
        return db

    yield make
    for db in clients:
        db.terminate()


@pytest.fixture
def table(mariadb: MariaDBServer) -> Iterator[str]:
    """A fresh InnoDB table ``t(id AUTO_INCREMENT, v VARCHAR)`` in the app database; returns its qualified name."""
    name = f"t_{time.monotonic_ns() % 10**9}"
    mariadb.execute(
        f"CREATE TABLE {mariadb.database}.{name} (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(200)) ENGINE=InnoDB"
    )
    yield f"{mariadb.database}.{name}"
    mariadb.execute(f"DROP TABLE IF EXISTS {mariadb.database}.{name}")


def fill(server: MariaDBServer, user: AppUser, n: int) -> list[Any]:
    """Open ``n`` plain connections as ``user`` and keep them (the caller closes them)."""
    return [user.connect() for _ in range(n)]


def later(seconds: float, fn: Callable[[], object]) -> threading.Thread:
    """Run ``fn`` after ``seconds`` in a daemon thread."""

    def run() -> None:
        time.sleep(seconds)
        fn()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def values(server: MariaDBServer, table: str) -> list[str]:
    """The ``v`` column of ``table``, read through a separate root connection."""
    return [row["v"] for row in server.execute(f"SELECT v FROM {table} ORDER BY id")]
