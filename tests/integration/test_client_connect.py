"""Behaviour 1 and 8 of the core client: lazy connect, bounded retries, errors that keep their cause."""

from __future__ import annotations

import gc
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
import pytest

from harness.faultproxy import FaultProxy
from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import ConnectError, DeadlineExceededError, RetriesExhaustedError, ServerlessMySQL
from serverless_mysql._driver import DriverConnection
from tests.integration.conftest import ClientFactory, FullServer, later

pytestmark = pytest.mark.integration

Factory = Any


def test_connect_is_lazy_and_the_connection_is_reused(
    mariadb: MariaDBServer, app_user: AppUser, client_factory: ClientFactory
) -> None:
    db = client_factory(app_user)
    assert mariadb.connection_count(app_user.name) == 0
    assert db.get_client() is None
    first = db.query("SELECT CONNECTION_ID() AS id")[0]["id"]
    db.end()
    second = db.query("SELECT CONNECTION_ID() AS id")[0]["id"]
    assert first == second
    assert mariadb.connection_count(app_user.name) == 1
    assert db.get_stats().connects == 1


def test_retries_too_many_connections_until_a_slot_frees(
    full_server: FullServer, client_factory: ClientFactory
) -> None:
    app, held = full_server.app, full_server.held
    retries: list[tuple[int, float, str]] = []
    db = client_factory(
        app, backoff="full", base=0.002, cap=0.05, on_retry=lambda err, n, delay, kind: retries.append((n, delay, kind))
    )
    later(0.4, held.pop().close)
    started = time.monotonic()
    assert db.query("SELECT 1 AS one") == [{"one": 1}]
    assert time.monotonic() - started >= 0.35
    assert len(retries) >= 2
    assert [n for n, _, _ in retries] == list(range(1, len(retries) + 1))
    assert all(kind == "full" and 0 <= delay <= 0.05 for _, delay, kind in retries)
    assert db.get_stats().connect_retries == len(retries)


@contextmanager
def collector_paused() -> Iterator[Callable[[], list[object]]]:
    """Collect, then keep the cycle collector off for the block; ``unreachable()`` lists what it would free now."""
    gc.collect()
    gc.disable()

    def unreachable() -> list[object]:
        gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds unreachable is kept in gc.garbage to look at
        gc.collect()
        found = list(gc.garbage)
        gc.garbage.clear()
        return found

    try:
        yield unreachable
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_a_wait_for_a_slot_leaves_nothing_for_the_cycle_collector(
    full_server: FullServer, client_factory: ClientFactory
) -> None:
    """Each refused attempt's connection and error are freed at once, not left in a cycle for the collector.

    The wait's frame held the last error and the error's traceback held the frame: every refused attempt of a wait
    (its connection, socket and packets) stayed in memory until the next full collection, and a benchmark host of 500
    waiting environments paused 300-500 ms in each (issue 20).
    """
    db = client_factory(full_server.app, backoff="full", base=0.002, cap=0.02)
    later(0.3, full_server.held.pop().close)
    with collector_paused() as unreachable:
        assert db.query("SELECT 1 AS one") == [{"one": 1}]
        assert db.get_stats().connect_retries >= 3
        left = [type(o).__name__ for o in unreachable() if isinstance(o, (DriverConnection, pymysql.MySQLError))]
    assert left == []
    # A wait that ends in an error still names PyMySQL's own, with the traceback of where PyMySQL raised it.
    quick = client_factory(full_server.app, max_retries=1, backoff="full", base=0.001, cap=0.002)
    with pytest.raises(RetriesExhaustedError) as info:
        quick.connect()
    printed = "".join(traceback.format_exception(info.value))
    assert "pymysql/connections.py" in printed and "Too many connections" in printed


def test_a_wait_for_a_server_that_is_down_leaves_no_socket_for_the_cycle_collector() -> None:
    """Refused TCP connects (nothing listens) are freed at once too, sockets included; the final error still chains."""
    with socket.socket() as bound:  # bound, never listening: every connect is refused, and nobody else gets the port
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        db = ServerlessMySQL(
            host="127.0.0.1", port=port, user="u", password="p", max_connect_wait=0.3, base=0.01, cap=0.02
        )
        with collector_paused() as unreachable:
            with pytest.raises(DeadlineExceededError) as info:
                db.query("SELECT 1")
            assert db.get_stats().connect_attempts >= 5
            assert isinstance(info.value.__cause__, pymysql.err.OperationalError)
            del info  # the error raised is one chain the collector frees; the attempts before it must not be
            left = [type(o).__name__ for o in unreachable() if isinstance(o, (socket.socket, DriverConnection))]
    assert left == []


def test_exhausted_retries_chain_the_last_pymysql_error_and_every_connect_gets_a_full_budget(
    full_server: FullServer, client_factory: ClientFactory
) -> None:
    db = client_factory(full_server.app, max_retries=3, backoff="decorrelated", base=0.001, cap=0.01)
    for round_ in range(1, 3):
        with pytest.raises(RetriesExhaustedError) as info:
            db.connect()
        err = info.value
        assert isinstance(err.__cause__, pymysql.err.OperationalError)
        assert err.errno == 1040
        assert err.__cause__.args[0] == 1040
        assert err.attempts == 4
        assert "Too many connections" in str(err)
        # serverless-mysql retries zero times after one exhaustion; we retry fully every time.
        assert db.get_stats().connect_attempts == 4 * round_
    assert db.get_error_count() == 8


@pytest.mark.parametrize(
    ("change", "errno"),
    # Without global privileges an unknown database is reported as 1044 (access denied to it), not 1049.
    [({"password": "wrong-password"}, {1045}), ({"database": "no_such_db"}, {1044, 1049})],
)
def test_non_retryable_errors_raise_at_once(
    app_user: AppUser, client_factory: ClientFactory, change: dict[str, str], errno: set[int]
) -> None:
    failures: list[BaseException] = []
    db = client_factory(app_user, **change, on_connect_error=failures.append)
    with pytest.raises(ConnectError) as info:
        db.query("SELECT 1")
    assert not isinstance(info.value, RetriesExhaustedError)
    assert info.value.errno in errno
    assert info.value.attempts == 1
    assert db.get_stats().connect_attempts == 1
    assert failures and failures[0] is info.value.__cause__
    assert "wrong-password" not in str(info.value)


def test_refused_connects_are_retried_until_the_server_is_up(
    requires_private_server: None, make_user: Factory, client_factory: ClientFactory
) -> None:
    server = MariaDBServer(max_connections=10)
    try:
        server.start()
        app = make_user(server)
        server.stop()
        db = client_factory(app, cap=0.1, max_retries=100)
        later(0.5, server.restart)
        assert db.query("SELECT 1 AS one") == [{"one": 1}]
        assert db.get_stats().connect_retries >= 2
    finally:
        server.cleanup()


def test_deadline_bounds_connect_retries(full_server: FullServer, client_factory: ClientFactory) -> None:
    app = full_server.app
    db = client_factory(app, max_retries=10_000, base=0.002, cap=0.05)
    db.set_deadline(0.5)
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError) as info:
        db.query("SELECT 1")
    elapsed = time.monotonic() - started
    assert elapsed < 0.6
    assert info.value.errno == 1040
    assert isinstance(info.value.last_error, pymysql.err.OperationalError)
    assert "deadline reached" in str(info.value) and "Too many connections" in str(info.value)


@pytest.mark.parametrize(
    ("stall_at", "named"),
    [
        (0.5, 1040),  # the last attempt had 0.1 s at most: its timeout says nothing, the refusal before it does
        (0.1, 2013),  # the last attempt waited 0.4 s or more for a greeting: that is what the error names
    ],
)
def test_a_final_attempt_the_deadline_cut_short_does_not_hide_the_full_server(
    full_server: FullServer, client_factory: ClientFactory, stall_at: float, named: int
) -> None:
    # Refused as full, then from `stall_at` connects get no greeting (as on a host too loaded to finish a handshake in
    # the few milliseconds the deadline leaves): the attempt that runs into the deadline times out.
    with FaultProxy(full_server.server.host, full_server.server.port) as proxy:
        db = client_factory(full_server.app, host=proxy.host, port=proxy.port, base=0.002, cap=0.05)
        db.set_deadline(0.6)
        later(stall_at, proxy.blackhole)
        with pytest.raises(DeadlineExceededError) as info:
            db.query("SELECT 1")
    error = info.value
    assert error.errno == named and error.__cause__ is error.last_error
    if named == 1040:  # what made it wait, not "can't connect"; the attempt that timed out is kept
        assert "Too many connections" in str(error) and "the final attempt ran out of time" in str(error)
        final = error.__context__
        assert isinstance(final, pymysql.err.OperationalError) and "timed out" in str(final)


def test_concurrent_cold_calls_on_a_full_server_all_finish(
    full_server: FullServer, client_factory: ClientFactory
) -> None:
    server, app, held = full_server.server, full_server.app, full_server.held
    db = client_factory(app, base=0.002, cap=0.02, max_retries=200)
    outcomes: list[object] = []

    def call() -> None:
        try:
            outcomes.append(db.query("SELECT 1 AS one"))
        except Exception as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    later(0.3, held.pop().close)
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a caller hung"
    assert outcomes == [[{"one": 1}]] * 8
    assert server.connection_count(app.name) == 1


def test_concurrent_cold_calls_fail_within_budget_when_no_slot_frees(
    full_server: FullServer, client_factory: ClientFactory
) -> None:
    app = full_server.app
    db = client_factory(app, base=0.002, cap=0.01, max_retries=5)
    outcomes: list[object] = []

    def call() -> None:
        try:
            outcomes.append(db.query("SELECT 1"))
        except Exception as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert len(outcomes) == 6 and all(isinstance(o, RetriesExhaustedError) for o in outcomes)


def test_caller_statement_errors_pass_through_unchanged(app_user: AppUser, client_factory: ClientFactory) -> None:
    db = client_factory(app_user)
    with pytest.raises(pymysql.err.ProgrammingError) as info:
        db.query("SELEC 1")
    assert info.value.args[0] == 1064
    db.query("CREATE TABLE IF NOT EXISTS dup (id INT PRIMARY KEY)")
    db.query("INSERT INTO dup VALUES (1)")
    with pytest.raises(pymysql.err.IntegrityError) as dup:
        db.query("INSERT INTO dup VALUES (%s)", (1,))
    assert dup.value.args[0] == 1062
    assert db.query("SELECT COUNT(*) AS n FROM dup") == [{"n": 1}]  # the connection survived both
    assert db.get_stats().connects == 1


def test_rows_carry_affected_rows_insert_id_and_columns(app_user: AppUser, client_factory: ClientFactory) -> None:
    db = client_factory(app_user)
    db.query("CREATE TABLE IF NOT EXISTS r (id INT AUTO_INCREMENT PRIMARY KEY, v TEXT)")
    inserted = db.query("INSERT INTO r (v) VALUES (%s), (%s)", ("a", "b"))
    assert inserted == [] and inserted.affected_rows == 2 and inserted.insert_id >= 1
    rows = db.query("SELECT id, v FROM r WHERE v = %(v)s", {"v": "b"})
    assert rows.columns == ("id", "v") and rows[0]["v"] == "b"


def test_events_fire_and_a_failing_handler_breaks_nothing(app_user: AppUser, client_factory: ClientFactory) -> None:
    seen: list[str] = []

    def boom(*_: object) -> None:
        seen.append("connect")
        raise RuntimeError("handler bug")

    db = client_factory(app_user, on_connect=boom, on_close=lambda: seen.append("close"))
    assert db.query("SELECT 1 AS one") == [{"one": 1}]
    db.quit()
    assert seen == ["connect", "close"]
    assert db.get_client() is None


def test_instances_are_independent(app_user: AppUser, make_user: Factory, client_factory: ClientFactory) -> None:
    other = make_user()
    a, b = client_factory(app_user), client_factory(other)
    assert a.query("SELECT CURRENT_USER() AS u")[0]["u"].startswith(app_user.name)
    assert b.query("SELECT CURRENT_USER() AS u")[0]["u"].startswith(other.name)


def test_url_option_connects(app_user: AppUser) -> None:
    db = ServerlessMySQL(url=app_user.url() + "?connect_timeout=3&manage_conns=false")
    try:
        assert db.query("SELECT DATABASE() AS d") == [{"d": app_user.database}]
    finally:
        db.quit()


def test_default_tls_setup_is_built_once_per_process(
    app_user: AppUser, client_factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PyMySQL's "TLS if offered" mode loads the CA store per Connection(); the client builds that context once."""
    import ssl

    from serverless_mysql._driver import DriverConnection

    built: list[ssl.SSLContext] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(DriverConnection, "_shared_tls", None)
    monkeypatch.setattr(ssl, "create_default_context", counting)
    clients = [client_factory(app_user) for _ in range(3)]
    for db in clients:
        db.query("SELECT 1")
    contexts = {id(getattr(db.get_client(), "ctx", None)) for db in clients}
    assert len(built) == 1 and contexts == {id(built[0])}
    # Explicit TLS options still get a context of their own (and make TLS required, which this server lacks).
    explicit = client_factory(app_user, connect_args={"ssl_verify_cert": True})
    with pytest.raises(ConnectError, match="SSL is required"):
        explicit.connect()
    assert len(built) == 2


def test_deadline_at_the_top_of_the_connect_loop_names_the_last_error(
    full_server: FullServer, client_factory: ClientFactory
) -> None:
    """Issue 11 item 6: a backoff sleep overruns the deadline (a loaded machine, a frozen environment), so the next
    turn of the connect loop finds no time left; the error still names the refusal that caused the wait."""
    app = full_server.app
    db = client_factory(app, max_retries=100, base=0.002, cap=0.01, sleep=lambda delay: time.sleep(1.1))
    db.set_deadline(1.0)  # the first attempt (refused at once) has ample time, the sleep overruns the rest
    with pytest.raises(DeadlineExceededError) as info:
        db.query("SELECT 1")
    err = info.value
    assert "of connecting" in str(err)  # raised by the check at the top of the loop
    assert "last error: (1040)" in str(err) and "Too many connections" in str(err)
    assert isinstance(err.last_error, pymysql.err.OperationalError)
    assert err.__cause__ is err.last_error
    assert err.errno == 1040
    assert db.get_stats().connect_attempts == 1
