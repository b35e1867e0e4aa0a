"""Fixtures for tests of the client against a real server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest

from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import ServerlessMySQL
from tests.conftest import ServerFactory, UserFactory

ClientFactory = Callable[..., ServerlessMySQL]
Factory = Callable[..., Any]


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


def small_server(
    server_factory: ServerFactory, make_user: UserFactory, limit: int = 40
) -> tuple[MariaDBServer, AppUser, AppUser]:
    """A server of ``limit`` connections, another user to fill it, and the client's user (with PROCESS)."""
    server = server_factory(max_connections=limit)
    return server, make_user(server), make_user(server, process=True)


def later(seconds: float, fn: Callable[[], object]) -> threading.Thread:
    """Run ``fn`` after ``seconds`` in a daemon thread."""

    def run() -> None:
        time.sleep(seconds)
        fn()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def conn_id(db: ServerlessMySQL) -> int:
    """The server's thread id of the client's connection, asked on that connection (connecting if needed)."""
    return int(db.query("SELECT CONNECTION_ID() AS id")[0]["id"])


def kill_and_wait(server: MariaDBServer, user: AppUser, thread_id: int) -> None:
    """KILL ``thread_id`` from outside and wait until ``user`` has no connection left (the kill took effect)."""
    server.kill(thread_id)
    server.wait_for_connection_count(0, user.name)


def values(server: MariaDBServer, table: str) -> list[str]:
    """The ``v`` column of ``table``, read through a separate root connection."""
    return [row["v"] for row in server.execute(f"SELECT v FROM {table} ORDER BY id")]


class FullServer(NamedTuple):
    """A private server with ``max_connections=10``, every slot taken by ``hog``'s connections (``held``: pop and
    close one to free a slot; the rest are closed at teardown), and ``app``, a second user with none."""

    server: MariaDBServer
    hog: AppUser
    app: AppUser
    held: list[Any]


@pytest.fixture
def full_server(server_factory: Factory, make_user: Factory) -> Iterator[FullServer]:
    """A full private server: see :class:`FullServer`."""
    server = server_factory(max_connections=10)
    hog, app = make_user(server), make_user(server)
    full = FullServer(server, hog, app, fill(server, hog, 10))
    yield full
    for conn in full.held:
        conn.close()


def fake_clock_client(client_factory: ClientFactory, user: AppUser, **options: Any) -> ServerlessMySQL:
    """A client whose clock only its own sleeps advance: a connect wait of many seconds takes none."""
    fake = [0.0]

    def sleep(seconds: float) -> None:
        fake[0] += seconds

    return client_factory(user, clock=lambda: fake[0], sleep=sleep, **options)
