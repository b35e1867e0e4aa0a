"""The driver boundary without a server: liveness poll, deadline-bounded I/O limits, status bits, escaping."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pymysql
import pytest
from pymysql.constants import SERVER_STATUS

from serverless_mysql._driver import DriverConnection, connect, escape_any_mode


@pytest.fixture
def conn() -> Iterator[DriverConnection]:
    c = DriverConnection(host="127.0.0.1", defer_connect=True, read_timeout=5.0, write_timeout=6.0)
    yield c
    c._sock = None


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_alive_is_false_without_a_socket(conn: DriverConnection) -> None:
    assert not conn.alive()


def test_alive_polls_for_an_unexpected_byte_or_eof(
    conn: DriverConnection, pair: tuple[socket.socket, socket.socket]
) -> None:
    ours, server = pair
    conn._sock = ours
    assert conn.alive()  # silent: alive
    assert conn.alive()  # the poller is reused
    server.send(b"\xff")  # the server spoke out of turn (a farewell packet)
    assert not conn.alive()


def test_alive_sees_the_server_close(conn: DriverConnection, pair: tuple[socket.socket, socket.socket]) -> None:
    ours, server = pair
    conn._sock = ours
    server.close()
    assert not conn.alive()


def test_io_limits_without_a_deadline_are_pymysqls_timeouts(conn: DriverConnection) -> None:
    conn.set_io_limits(1.5, 2.5, None)
    assert (conn._read_timeout, conn._write_timeout) == (1.5, 2.5)
    conn.set_deadline(None)  # unchanged: nothing to do
    assert (conn._read_timeout, conn._write_timeout) == (1.5, 2.5)


def test_a_deadline_bounds_the_next_operation(
    conn: DriverConnection, pair: tuple[socket.socket, socket.socket]
) -> None:
    ours, _ = pair
    conn._sock = ours
    conn._current_timeout = None
    now = time.monotonic()
    conn.set_io_limits(30.0, 30.0, now + 0.5)
    conn._bound_io(write=True)
    assert 0 < ours.gettimeout() <= 0.5  # type: ignore[operator]
    conn.set_deadline(now - 1)
    with pytest.raises(TimeoutError, match="deadline"):
        conn._bound_io(write=False)


def test_status_bits_and_connection_id(conn: DriverConnection) -> None:
    assert conn.connection_id == 0 and not conn.in_transaction
    # What the handshake and each OK packet set (not in PyMySQL's type stubs).
    conn.server_status = SERVER_STATUS.SERVER_STATUS_IN_TRANS | SERVER_STATUS.SERVER_STATUS_AUTOCOMMIT
    conn.server_thread_id = (42,)  # type: ignore[attr-defined]
    assert conn.in_transaction and conn.connection_id == 42


def test_close_quietly_never_raises(conn: DriverConnection, pair: tuple[socket.socket, socket.socket]) -> None:
    conn._sock = pair[0]
    conn.close_quietly()
    conn.close_quietly()
    assert conn._sock is None


def test_a_silent_server_fails_the_handshake_at_the_deadline() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts (kernel backlog), never speaks
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError) as info:
            connect(
                {"host": "127.0.0.1", "port": port, "user": "u", "password": "p"},
                timeout=5.0,
                deadline=started + 0.3,
                clock=time.monotonic,
            )
    assert time.monotonic() - started < 2.0
    assert info.value.args[0] == 2013 and "timed out" in str(info.value)


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain 'quoted'", "'plain ''quoted'''"),
        ("back\\slash", "_utf8mb4 X'" + b"back\\slash".hex() + "'"),
        ("line\nbreak", "_utf8mb4 X'" + b"line\nbreak".hex() + "'"),
        (b"\x00\x01", "X'0001'"),
        ([1, "a"], "(1,'a')"),
        (None, "NULL"),
        (3.5, "3.5e0"),  # PyMySQL writes floats as doubles
    ],
)
def test_escape_reads_the_same_in_both_sql_modes(value: object, literal: str) -> None:
    assert escape_any_mode(value) == literal


def test_a_name_lookup_without_a_time_bound_starts_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Second review: every lookup ran in a thread, even with nothing to bound; one without a bound runs inline."""
    import threading

    from serverless_mysql import _tcp

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def no_thread(*args: object, **kwargs: object) -> None:
        raise AssertionError("a thread was started for a lookup with no time bound")

    monkeypatch.setattr(threading, "Thread", no_thread)
    try:
        _tcp.open_tcp("localhost", port, left=lambda: None)[0].close()
    finally:
        listener.close()


def test_a_peer_gone_right_after_accepting_is_a_failed_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    """A forwarder whose target has just died accepts and then drops the connection: reading the peer's address fails
    with ENOTCONN. That is a failed connect (2003, which the client waits out as a server down), not a bare OSError
    for the handler: a failover drill in CI got ``OSError(107)`` from an invocation right after the writer crashed."""
    import errno

    from serverless_mysql.errors import connect_failure_kind

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    closed: list[socket.socket] = []
    real_close = socket.socket.close

    def gone(self: socket.socket) -> object:
        raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")

    def close(self: socket.socket) -> None:
        closed.append(self)
        real_close(self)

    monkeypatch.setattr(socket.socket, "getpeername", gone)
    monkeypatch.setattr(socket.socket, "close", close)
    try:
        with pytest.raises(pymysql.err.OperationalError) as info:
            connect(
                {"host": "127.0.0.1", "port": listener.getsockname()[1], "user": "app"},
                timeout=2.0,
                deadline=None,
                clock=time.monotonic,
            )
    finally:
        monkeypatch.undo()
        listener.close()
    assert info.value.args[0] == 2003
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.ENOTCONN
    assert connect_failure_kind(info.value) == "down"
    assert closed and closed[0].fileno() == -1  # the half-open socket was closed, not leaked
