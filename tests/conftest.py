"""Shared fixtures: real, private MariaDB servers (see harness/mariadb.py, incl. ``SMYSQL_TEST_URL``)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.mariadb import AppUser, MariaDBServer, PrivateServerRequired, external_url, session_server

ServerFactory = Callable[..., MariaDBServer]
UserFactory = Callable[..., AppUser]

_SERVER_FIXTURES = frozenset({"mariadb", "server_factory", "app_user", "make_user", "requires_private_server"})


def skip_unless_private() -> None:
    """Skip the test (or the fixture's tests) when running against an external server (SMYSQL_TEST_URL)."""
    if external_url() is not None:
        pytest.skip("needs a private MariaDB server (SMYSQL_TEST_URL is set)")


def private_server(**server_args: Any) -> Iterator[MariaDBServer]:
    """The body of a module's own server fixture (``yield from private_server(max_connections=40)``): a private
    MariaDB started with ``server_args`` (as for :class:`MariaDBServer`), cleaned up after; skipped under
    SMYSQL_TEST_URL."""
    skip_unless_private()
    with MariaDBServer(**server_args) as server:
        yield server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: needs a real MariaDB server (added automatically by fixtures)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "private_server: needs a private server; skipped when SMYSQL_TEST_URL is set")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("private_server") is not None:
        skip_unless_private()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    # mariadb.crash()/restart()/... on the external server: skip the test instead of failing it.
    try:
        return (yield)
    except PrivateServerRequired as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    """The session's server: a private MariaDB started once, or the one from SMYSQL_TEST_URL."""
    server = session_server()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def requires_private_server() -> None:
    """Skip the test when running against an external server (SMYSQL_TEST_URL)."""
    skip_unless_private()


@pytest.fixture
def server_factory(requires_private_server: None) -> Iterator[ServerFactory]:
    """``server_factory(max_connections=10, extra_args=(), port=None, tmp_root=None) -> MariaDBServer``: fresh
    started private servers."""
    servers: list[MariaDBServer] = []

    def start(
        max_connections: int = 10, extra_args: Sequence[str] = (), port: int | None = None, tmp_root: Path | None = None
    ) -> MariaDBServer:
        server = MariaDBServer(max_connections=max_connections, extra_args=extra_args, port=port, tmp_root=tmp_root)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.cleanup()


@pytest.fixture
def make_user(mariadb: MariaDBServer) -> Iterator[UserFactory]:
    """``make_user(server=None, process=False, max_user_connections=0) -> AppUser``; zombies closed at teardown."""
    used: list[MariaDBServer] = []

    def make(server: MariaDBServer | None = None, process: bool = False, max_user_connections: int = 0) -> AppUser:
        target = mariadb if server is None else server
        if target not in used:
            used.append(target)
        return target.create_user(process=process, max_user_connections=max_user_connections)

    yield make
    for server in used:
        server.close_zombies()


@pytest.fixture
def app_user(make_user: UserFactory) -> AppUser:
    """A fresh user on the session server: ALL on its database, no PROCESS, nothing global."""
    return make_user()
