"""The deadline bounds a whole statement and a whole connect, not each socket read.

PyMySQL's socket timeouts bound one ``recv`` or one write at a time: a statement whose rows keep arriving, or a
handshake whose every step is slow, can run far past any per-read timeout. These tests make the server (or the
fault proxy) deliver bytes steadily but slowly and check that the client gives up at the deadline, with
:class:`DeadlineExceededError` whose cause is the PyMySQL error (and, behind it, the socket timeout).

MariaDB collects a result in its network buffer (``net_buffer_length``, 16 KB) and sends it when the buffer is
full or the statement ends, so ``SELECT SLEEP(0.3) FROM seq_1_to_10`` alone arrives in one piece after 3 s. A
20 000-byte column makes every row overflow the buffer: one row on the wire every 0.3 s.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from harness.faultproxy import FaultProxy
from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import ServerlessMySQL
from serverless_mysql.errors import DeadlineExceededError, ServerlessMySQLError
from tests.faults.conftest import LeakSink

pytestmark = pytest.mark.timeout(30)

STREAMING_ROWS = "SELECT SLEEP(0.3) AS s, REPEAT('x', 20000) AS pad FROM seq_1_to_10"  # a row every 0.3 s, 3 s in all
MARGIN = 0.25  # scheduling slack on a busy 2-core machine; the library itself overruns by at most 5 ms


@pytest.fixture
def proxy(mariadb: MariaDBServer) -> Iterator[FaultProxy]:
    with FaultProxy(mariadb.host, mariadb.port, record=1 << 20) as p:
        yield p


def client(user: AppUser, **options: object) -> ServerlessMySQL:
    return ServerlessMySQL(**{**user.connect_kwargs(), **options})


def check_deadline_error(exc: BaseException) -> None:
    """The deadline error keeps the PyMySQL error (and the socket timeout behind it) reachable."""
    assert isinstance(exc, DeadlineExceededError), repr(exc)
    cause = exc.__cause__
    assert isinstance(cause, pymysql.err.OperationalError), repr(cause)
    assert exc.last_error is cause
    assert isinstance(cause.__context__, TimeoutError), repr(cause.__context__)


def test_rows_streaming_slowly_stop_at_the_deadline(fault_user: AppUser, leaks: LeakSink) -> None:
    db = client(fault_user)
    db.connect()
    db.set_deadline(1.5)
    t0 = time.monotonic()
    with pytest.raises(DeadlineExceededError) as info:
        db.query(STREAMING_ROWS)
    elapsed = time.monotonic() - t0
    leaks.observe(info.value)
    assert 1.5 - 0.05 <= elapsed < 1.5 + MARGIN, elapsed
    check_deadline_error(info.value)
    assert db.get_client() is None  # the connection was mid-result: discarded
    db.set_deadline(None)
    assert db.query("SELECT 1 AS one") == [{"one": 1}]  # and the client carries on with a new one
    db.quit()


def test_rows_streaming_slowly_are_not_stopped_by_read_timeout(fault_user: AppUser) -> None:
    """The premise of the test above: every read is short, so a per-read timeout never fires, the rows stream."""
    db = client(fault_user, read_timeout=1.0)
    t0 = time.monotonic()
    rows = db.query(STREAMING_ROWS)
    assert len(rows) == 10 and time.monotonic() - t0 >= 2.9
    db.quit()


def test_one_packet_trickling_in_stops_at_the_deadline(fault_user: AppUser, proxy: FaultProxy, leaks: LeakSink) -> None:
    """A 1 MB row arrives in >= 16 pieces of <= 64 KB, 0.15 s apart: one read of one packet, many ``recv`` calls;
    each of them is bounded by the time left."""
    db = client(fault_user, host=proxy.host, port=proxy.port, read_timeout=1.0)
    db.connect()
    proxy.delay(0.15)
    db.set_deadline(1.0)
    t0 = time.monotonic()
    with pytest.raises(DeadlineExceededError) as info:
        db.query("SELECT REPEAT('x', 1048576) AS big")
    elapsed = time.monotonic() - t0
    leaks.observe(info.value)
    assert elapsed < 1.0 + MARGIN, elapsed
    check_deadline_error(info.value)
    db.set_deadline(None)
    # Without the deadline the same read completes: no recv waits anywhere near read_timeout.
    t0 = time.monotonic()
    assert len(db.query("SELECT REPEAT('x', 1048576) AS big")[0]["big"]) == 1048576
    assert time.monotonic() - t0 > 1.0 + MARGIN
    db.quit()


def test_connect_with_slow_greeting_and_stalled_auth_reply_stops_at_the_deadline(
    fault_user: AppUser, proxy: FaultProxy, leaks: LeakSink
) -> None:
    """Every chunk is held 0.9 s: the greeting comes after 0.9 s, the answer to the login after 2.7 s. Each read
    stays under connect_timeout (1 s) or just over it; the deadline (1.5 s) bounds them all."""
    proxy.delay(0.9)
    db = client(fault_user, host=proxy.host, port=proxy.port, connect_timeout=1.0)
    db.set_deadline(1.5)
    t0 = time.monotonic()
    with pytest.raises(DeadlineExceededError) as info:
        db.connect()
    elapsed = time.monotonic() - t0
    leaks.observe(info.value)
    assert elapsed < 1.5 + MARGIN, elapsed
    check_deadline_error(info.value)
    assert db.get_stats().connects == 0 and db.get_client() is None


def test_statements_that_finish_in_time_are_unaffected(fault_user: AppUser) -> None:
    db = client(fault_user)
    db.set_deadline(1.5)
    rows = db.query("SELECT SLEEP(0.3) AS s, REPEAT('x', 20000) AS pad FROM seq_1_to_3")  # 0.9 s, streaming
    assert len(rows) == 3
    conn = db.get_client()
    for _ in range(200):  # many short statements: one settimeout() per few milliseconds at most
        assert db.query("SELECT 1 AS one") == [{"one": 1}]
    assert db.get_client() is conn
    db.set_deadline(None)
    db.quit()


@pytest.mark.parametrize("change", ["removed", "extended"])
def test_a_new_deadline_replaces_the_old_bound(fault_user: AppUser, change: str) -> None:
    """The socket timeout left over from a short deadline does not cut a later, longer statement short."""
    db = client(fault_user)
    db.set_deadline(0.5)
    db.query("SELECT 1")
    conn = db.get_client()
    db.set_deadline(None if change == "removed" else 5.0)
    assert db.query("SELECT SLEEP(0.8) AS s") == [{"s": 0}]
    assert db.get_client() is conn
    db.set_deadline(None)
    db.quit()


def test_quit_after_the_deadline_still_says_goodbye(fault_user: AppUser, proxy: FaultProxy) -> None:
    """COM_QUIT (5 bytes) is sent even when the deadline has passed: the server frees the slot without logging
    an aborted connection."""
    db = client(fault_user, host=proxy.host, port=proxy.port)
    db.set_deadline(0.3)
    db.query("SELECT 1")
    time.sleep(0.35)
    db.quit()
    proxy.wait_for_connections(0)
    (conn,) = proxy.finished
    assert bytes(conn.recorded).endswith(b"\x01\x00\x00\x00\x01"), bytes(conn.recorded[-16:])


@pytest.fixture
def slow_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A host name whose resolution takes 5 s, then answers 127.0.0.1 (a stalled DNS server; nothing else changes).

    The system resolver cannot be slowed on loopback without root, so ``socket.getaddrinfo`` is wrapped for this
    one name only; every other name resolves as before.
    """
    name = "slow-dns.serverless-mysql.invalid"
    real = socket.getaddrinfo
    released = threading.Event()

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == name:
            released.wait(5.0)
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield name
    released.set()


@pytest.mark.parametrize("bound", ["connect_timeout", "deadline"])
def test_host_name_resolution_is_bounded(bound: str, fault_user: AppUser, slow_resolver: str) -> None:
    """DNS resolution is part of connecting: bounded by ``connect_timeout`` and by the deadline like the rest."""
    options: dict[str, Any] = {**fault_user.connect_kwargs(), "host": slow_resolver}
    if bound == "connect_timeout":
        db = ServerlessMySQL(**options, connect_timeout=0.5, max_retries=0)
    else:
        db = ServerlessMySQL(**options, connect_timeout=10.0)
        db.set_deadline(1.0)
    t0 = time.monotonic()
    with pytest.raises(ServerlessMySQLError) as info:
        db.connect()
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0, f"{elapsed:.1f} s for a bound of {'0.5 s' if bound == 'connect_timeout' else '1 s'}"
    assert "resolv" in str(info.value) or isinstance(info.value, DeadlineExceededError), info.value


def test_the_deadline_reached_reading_the_counters_of_a_new_connection_skips_no_on_connect(
    fault_user: AppUser,
) -> None:
    """A new connection's ``on_connect`` runs whatever finds the deadline spent once the connection is in place.

    The client's clock jumps past the deadline the moment the new connection is in place. An optional read right
    after the handshake (the refusal counters' baseline, read there until 2026-12) once found no time left and
    skipped ``on_connect`` for a connection that stayed in use: its session never got the settings ``on_connect``
    gives."""
    connected: list[int] = []
    holder: list[ServerlessMySQL] = []

    def clock() -> float:
        return time.monotonic() + (100.0 if holder and holder[0].get_client() is not None else 0.0)

    def on_connect(conn: Any) -> None:
        connected.append(int(conn.thread_id()))

    db = ServerlessMySQL(**fault_user.connect_kwargs(), clock=clock, on_connect=on_connect, manage_conns=True)
    holder.append(db)
    try:
        db.set_deadline(30.0)
        with contextlib.suppress(DeadlineExceededError):
            db.connect()
        db.set_deadline(None)
        own = int(db.query("SELECT CONNECTION_ID() AS id")[0]["id"])
        assert own in connected, f"connection {own} is in use, on_connect ran for {connected}"
    finally:
        db.terminate()
