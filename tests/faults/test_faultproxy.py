"""The fault proxy itself, against the real MariaDB: each fault does exactly what the matrix relies on."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pymysql.cursors
import pytest

from harness.faultproxy import FaultProxy, FaultProxyError
from harness.mariadb import AppUser, MariaDBServer

pytestmark = pytest.mark.timeout(60)

CR_CONN_HOST_ERROR = 2003
CR_SERVER_LOST = 2013
CR_SERVER_GONE = 2006


@pytest.fixture
def proxy(mariadb: MariaDBServer) -> Iterator[FaultProxy]:
    with FaultProxy(mariadb.host, mariadb.port) as p:
        yield p


def connect(user: AppUser, proxy: FaultProxy, **kw: Any) -> pymysql.connections.Connection[pymysql.cursors.DictCursor]:
    params: dict[str, Any] = {
        "host": proxy.host,
        "port": proxy.port,
        "connect_timeout": 2,
        "read_timeout": 2,
        "write_timeout": 2,
        "autocommit": True,
        **kw,
    }
    return user.connect(**params)


def errno_of(exc: BaseException) -> int:
    return int(exc.args[0])


def make_table(mariadb: MariaDBServer, name: str) -> str:
    table = f"`{mariadb.database}`.`{name}`"
    mariadb.execute(f"DROP TABLE IF EXISTS {table}")
    mariadb.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY)")
    return table


def test_passthrough_and_large_result(proxy: FaultProxy, app_user: AppUser, mariadb: MariaDBServer) -> None:
    with connect(app_user, proxy) as conn, conn.cursor() as cur:
        cur.execute("SELECT REPEAT('x', 1000) AS v FROM seq_1_to_2000")
        rows = cur.fetchall()
        assert len(rows) == 2000
        assert all(r["v"] == "x" * 1000 for r in rows)
        assert mariadb.connection_count(app_user.name) == 1
        [pc] = proxy.connections()
        assert pc.bytes_from_server > 2_000_000
    assert proxy.wait_for_connections(0) == 0
    assert mariadb.wait_for_connection_count(0, app_user.name) == 0


def test_blackhole_existing_connection_times_out_and_nothing_reaches_server(
    proxy: FaultProxy, app_user: AppUser, mariadb: MariaDBServer
) -> None:
    table = make_table(mariadb, "fp_blackhole")
    conn = connect(app_user, proxy, read_timeout=0.5, write_timeout=0.5)
    proxy.blackhole()
    t0 = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError) as info:
        conn.cursor().execute(f"INSERT INTO {table} VALUES (1)")
    elapsed = time.monotonic() - t0
    assert errno_of(info.value) == CR_SERVER_LOST
    assert 0.4 < elapsed < 2.0
    # The statement never reached the server; the server-side connection is still there (no RST, no FIN).
    assert mariadb.execute(f"SELECT COUNT(*) AS n FROM {table}") == [{"n": 0}]
    assert mariadb.connection_count(app_user.name) == 1
    assert proxy.connection_count == 1
    proxy.heal()
    # pymysql force-closed its side; the proxy passes the close on and the server forgets the connection.
    assert mariadb.wait_for_connection_count(0, app_user.name) == 0


def test_blackhole_new_connection_gets_no_greeting(
    proxy: FaultProxy, app_user: AppUser, mariadb: MariaDBServer
) -> None:
    proxy.blackhole()
    t0 = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(app_user, proxy, connect_timeout=0.5, read_timeout=0.5)
    assert time.monotonic() - t0 < 2.0
    assert errno_of(info.value) in (CR_CONN_HOST_ERROR, CR_SERVER_LOST)
    assert mariadb.connection_count(app_user.name) == 0
    proxy.heal()
    with connect(app_user, proxy) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 AS one")
        assert list(cur.fetchall()) == [{"one": 1}]


def test_blackhole_then_heal_resumes_buffered_bytes(proxy: FaultProxy) -> None:
    proxy.blackhole()
    with socket.create_connection(proxy.address, timeout=0.3) as raw:
        with pytest.raises(TimeoutError):
            raw.recv(1)  # no greeting while blackholed, and no EOF either
        proxy.heal()
        raw.settimeout(3)
        greeting = raw.recv(4096)
        assert len(greeting) > 4  # the MySQL handshake packet


def test_reset_aborts_both_sides(proxy: FaultProxy, app_user: AppUser, mariadb: MariaDBServer) -> None:
    conn = connect(app_user, proxy)
    conn.cursor().execute("SELECT 1")
    assert mariadb.connection_count(app_user.name) == 1
    assert proxy.reset() == 1
    with pytest.raises(pymysql.err.OperationalError) as info:
        conn.cursor().execute("SELECT 1")
    assert errno_of(info.value) in (CR_SERVER_LOST, CR_SERVER_GONE)
    assert "reset" in repr(info.value.args).lower() or errno_of(info.value) == CR_SERVER_LOST
    assert mariadb.wait_for_connection_count(0, app_user.name) == 0
    # Reset is one shot: new connections work.
    with connect(app_user, proxy) as conn2, conn2.cursor() as cur:
        cur.execute("SELECT 2 AS two")
        assert list(cur.fetchall()) == [{"two": 2}]


def test_delay_slows_every_round_trip(proxy: FaultProxy, app_user: AppUser) -> None:
    with connect(app_user, proxy) as conn, conn.cursor() as cur:
        proxy.delay(0.3)
        t0 = time.monotonic()
        cur.execute("SELECT 1")
        slow = time.monotonic() - t0
        proxy.heal()
        t0 = time.monotonic()
        cur.execute("SELECT 1")
        fast = time.monotonic() - t0
    assert slow >= 0.58  # request and answer each held 0.3 s
    assert fast < 0.3


def test_delay_beyond_read_timeout_fails_the_read(proxy: FaultProxy, app_user: AppUser) -> None:
    conn = connect(app_user, proxy, read_timeout=0.3)
    proxy.delay(1.0)
    with pytest.raises(pymysql.err.OperationalError) as info:
        conn.cursor().execute("SELECT 1")
    assert errno_of(info.value) == CR_SERVER_LOST


def test_cut_after_interrupts_a_result_set(proxy: FaultProxy, app_user: AppUser, mariadb: MariaDBServer) -> None:
    conn = connect(app_user, proxy)
    [pc] = proxy.connections()
    before = pc.bytes_from_server
    assert proxy.cut_after(50_000) == 1
    with pytest.raises(pymysql.err.OperationalError) as info:
        conn.cursor().execute("SELECT REPEAT('x', 1000) AS v FROM seq_1_to_2000")
    assert errno_of(info.value) == CR_SERVER_LOST
    assert pc.wait_closed()
    assert pc.bytes_from_server - before == 50_000
    assert pc.close_reason == "cut"
    assert mariadb.wait_for_connection_count(0, app_user.name) == 0


def test_cut_after_zero_applies_the_write_but_loses_the_answer(
    proxy: FaultProxy, app_user: AppUser, mariadb: MariaDBServer
) -> None:
    table = make_table(mariadb, "fp_cut0")
    conn = connect(app_user, proxy)
    proxy.cut_after(0)
    with pytest.raises(pymysql.err.OperationalError) as info:
        conn.cursor().execute(f"INSERT INTO {table} VALUES (1)")
    assert errno_of(info.value) in (CR_SERVER_LOST, CR_SERVER_GONE)
    # The ambiguous case the library must handle: the client saw an error, the server applied the write.
    deadline = time.monotonic() + 3
    while mariadb.execute(f"SELECT COUNT(*) AS n FROM {table}") != [{"n": 1}]:
        assert time.monotonic() < deadline, "the INSERT never reached the server"
        time.sleep(0.01)


def test_refuse_new_refuses_but_keeps_existing(proxy: FaultProxy, app_user: AppUser) -> None:
    conn = connect(app_user, proxy)
    proxy.refuse_new()
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(app_user, proxy)
    assert errno_of(info.value) == CR_CONN_HOST_ERROR
    assert "refused" in str(info.value).lower()
    with conn.cursor() as cur:
        cur.execute("SELECT 3 AS three")
        assert list(cur.fetchall()) == [{"three": 3}]
    proxy.heal()
    with connect(app_user, proxy) as conn2, conn2.cursor() as cur:
        cur.execute("SELECT 4 AS four")
        assert list(cur.fetchall()) == [{"four": 4}]
    conn.close()


def test_per_connection_faults_hit_one_connection_only(proxy: FaultProxy, app_user: AppUser) -> None:
    a = connect(app_user, proxy, read_timeout=0.4)
    b = connect(app_user, proxy, read_timeout=0.4)
    pa, pb = proxy.connections()
    pa.blackhole()
    with pytest.raises(pymysql.err.OperationalError):
        a.cursor().execute("SELECT 1")
    b.cursor().execute("SELECT 1")
    pb.reset()
    assert pb.wait_closed()
    with pytest.raises(pymysql.err.OperationalError):
        b.cursor().execute("SELECT 1")


def test_connection_cap_resets_extra_connections(mariadb: MariaDBServer, app_user: AppUser) -> None:
    with FaultProxy(mariadb.host, mariadb.port, max_connections=2) as proxy:
        conns = [connect(app_user, proxy) for _ in range(2)]
        with pytest.raises(pymysql.err.OperationalError):
            connect(app_user, proxy)
        assert proxy.rejected == 1
        for c in conns:
            c.close()


def test_stop_is_prompt_and_leaves_no_threads(mariadb: MariaDBServer, app_user: AppUser) -> None:
    proxy = FaultProxy(mariadb.host, mariadb.port).start()
    conns = [connect(app_user, proxy) for _ in range(3)]
    proxy.connections()[0].blackhole()
    proxy.delay(5)
    names = {f"faultproxy-{proxy.port}"} | {f"faultproxy-conn-{c.id}" for c in proxy.connections()}
    t0 = time.monotonic()
    proxy.stop()
    assert time.monotonic() - t0 < 2.0
    assert not [t for t in threading.enumerate() if t.name in names]
    assert proxy.connection_count == 0
    assert mariadb.wait_for_connection_count(0, app_user.name) == 0
    for c in conns:
        c.close()
    proxy.stop()  # idempotent


def test_only_loopback() -> None:
    with pytest.raises(FaultProxyError):
        FaultProxy("10.1.2.3", 3306)
    with pytest.raises(FaultProxyError):
        FaultProxy("127.0.0.1", 3306, listen_host="0.0.0.0")


def test_cut_new_after_cuts_only_the_next_connects(proxy: FaultProxy, app_user: AppUser) -> None:
    proxy.cut_new_after(20, connections=1)
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(app_user, proxy)  # cut 20 bytes into the server greeting
    # 2013 when PyMySQL sees EOF mid-packet, 2003 when the RST surfaces as ECONNRESET inside connect().
    assert errno_of(info.value) in (CR_SERVER_LOST, CR_CONN_HOST_ERROR)
    with connect(app_user, proxy) as conn, conn.cursor() as cur:  # the next one is not armed
        cur.execute("SELECT 5 AS five")
        assert list(cur.fetchall()) == [{"five": 5}]
