"""Overload without collapse: many environments, few slots, a restart under load, idle slots under pressure.

Every environment is its own ``@with_mysql`` handler (its own client and policy state), run in its own thread
against a private MariaDB; what counts is what the server saw (its ``Connections`` counter counts every connect
attempt, refused ones included) and that every invocation was served.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pymysql
import pytest

from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import DeadlineExceededError, ServerlessMySQL, with_mysql
from serverless_mysql.lambda_context import LocalLambdaContext
from serverless_mysql.pressure import LONGEST_MEAN
from tests.integration.conftest import ClientFactory, FullServer, fake_clock_client, fill, later

pytestmark = pytest.mark.integration
Factory = Any
Handler = Callable[[dict[str, Any], LocalLambdaContext], Any]


def environments(user: AppUser, n: int, sql: str = "SELECT SLEEP(0.05) AS s", **options: Any) -> list[Any]:
    """``n`` independent decorated handlers, as ``n`` Lambda environments would each import them."""

    def handler(event: dict[str, Any], context: LocalLambdaContext, db: ServerlessMySQL) -> Any:
        return db.query(sql)

    return [with_mysql(**user.connect_kwargs(), sigterm=False, **options)(handler) for _ in range(n)]


def run_all(handlers: list[Any], invocations: int, timeout: float) -> list[tuple[float, float, str]]:
    """Invoke every handler ``invocations`` times in its own thread; (start, end, outcome) per invocation."""
    results: list[tuple[float, float, str]] = []
    lock = threading.Lock()

    def env(handler: Any) -> None:
        for _ in range(invocations):
            started = time.monotonic()
            try:
                handler({}, LocalLambdaContext(timeout))
                outcome = "ok"
            except Exception as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            with lock:
                results.append((started, time.monotonic(), outcome))

    threads = [threading.Thread(target=env, args=(h,)) for h in handlers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(invocations * (timeout + 5))
    assert not any(t.is_alive() for t in threads), "an invocation outlived its Lambda timeout"
    return results


def connections_counter(server: MariaDBServer) -> int:
    """Every connect attempt the server accepted a socket for, refused ones included."""
    return int(server.status("Connections") or 0)


def test_a_hundred_environments_share_ten_connections(server_factory: Factory, make_user: Factory) -> None:
    server = server_factory(max_connections=10)
    app = make_user(server, process=True)
    handlers = environments(app, 100)
    before = connections_counter(server)
    results = run_all(handlers, invocations=3, timeout=10.0)
    attempts_seen_by_server = connections_counter(server) - before
    failures = [outcome for _, _, outcome in results if outcome != "ok"]
    assert len(results) == 300 and failures == []
    client_attempts = sum(h.db.get_stats().connect_attempts for h in handlers)
    full = sum(h.db.get_stats().refused_full for h in handlers)
    down = sum(h.db.get_stats().refused_down for h in handlers)
    print(
        f"100 environments x 3 on 10 slots: {attempts_seen_by_server} attempts seen by the server, {client_attempts}"
        f" by the clients ({full} refused as full, {down} as down)"
    )
    assert attempts_seen_by_server <= 3 * 300, attempts_seen_by_server
    assert client_attempts <= 3 * 300, client_attempts
    assert max(end - start for start, end, _ in results) < 10.0


def test_a_server_restart_under_load_leaves_no_failure_once_it_is_back(
    requires_private_server: None, make_user: Factory
) -> None:
    server = MariaDBServer(max_connections=20)
    try:
        server.start()
        app = make_user(server, process=True)
        handlers = environments(app, 40, sql="SELECT SLEEP(0.02) AS s")
        times: dict[str, float] = {}

        def outage() -> None:
            server.crash()
            times["down"] = time.monotonic()
            time.sleep(1.0)
            server.start()
            times["up"] = time.monotonic()

        later(1.0, outage)
        results = run_all(handlers, invocations=25, timeout=10.0)
        assert "up" in times
        failures = [(start, outcome) for start, _, outcome in results if outcome != "ok"]
        # Waits end at the deadline, not after a retry count: an outage shorter than the deadline costs nothing.
        assert failures == []
        served_after = [r for r in results if r[0] >= times["up"]]
        assert served_after, "the load went on after the restart"
        attempts = sum(h.db.get_stats().connect_attempts for h in handlers)
        assert attempts <= 3 * len(results), attempts
    finally:
        server.cleanup()


def test_two_clients_keep_separate_policy_state(
    server_factory: Factory, make_user: Factory, client_factory: ClientFactory
) -> None:
    busy = server_factory(max_connections=10)
    hog, pressed_user = make_user(busy), make_user(busy, process=True)
    a = client_factory(pressed_user, conn_utilization=0.5)
    b = client_factory(make_user())  # another server, nobody refused there
    a.query("SELECT 1")
    b.query("SELECT 1")
    held = fill(busy, hog, 10 - busy.connection_count())
    with pytest.raises(pymysql.err.OperationalError, match="Too many connections"):
        hog.connect()  # someone is refused a slot on a's server
    a.end()
    b.end()
    assert a.get_client() is None and a.get_stats().pressure_quits == 1
    assert b.get_client() is not None and b.get_stats().pressure_quits == 0
    assert a._pressure is not b._pressure and a._pressure.rng is not b._pressure.rng
    now = time.monotonic()
    assert a._pressure.under_pressure(now) and not b._pressure.under_pressure(now)
    # Their jitter differs too: environments never draw the same waits.
    assert [a._pressure.delay("full", 1, 0.0, 0.0) for _ in range(5)] != [
        b._pressure.delay("full", 1, 0.0, 0.0) for _ in range(5)
    ]
    for conn in held:
        conn.close()


def test_a_connect_wait_is_bounded_without_a_deadline(full_server: FullServer, client_factory: ClientFactory) -> None:
    db = fake_clock_client(client_factory, full_server.app)  # no deadline, no max_connect_wait: 30 s
    with pytest.raises(DeadlineExceededError) as info:
        db.connect()
    assert 29.0 <= info.value.waited <= 30.0
    assert info.value.errno == 1040 and "Too many connections" in str(info.value)
    attempts = db.get_stats().connect_attempts
    # Paced: 0.75 s apart at first, then further apart as the wait grows (never more than 1.5 * LONGEST_MEAN * cap),
    # closer again near the end: about 30 attempts, where waits that shrank with the wait made about 70.
    assert 30 / (1.5 * LONGEST_MEAN) <= attempts <= 40, attempts


def test_under_pressure_the_server_closes_idle_slots_and_gives_them_back_after(
    server_factory: Factory, make_user: Factory, client_factory: ClientFactory
) -> None:
    server = server_factory(max_connections=10)
    other, app = make_user(server), make_user(server, process=True)
    db = client_factory(app, conn_utilization=0.5, pressure_idle_timeout=1)
    held = fill(server, other, 6)
    db.query("SELECT 1")
    db.end()  # 7 of 10 (+ monitors): busy, nobody refused: keep the slot, but let the server close it when idle
    assert db.get_client() is not None and db.get_stats().pressure_quits == 0
    assert db.query("SELECT @@SESSION.wait_timeout AS t")[0]["t"] == 1
    time.sleep(2.5)  # an environment frozen this long under pressure: the server frees its slot
    server.wait_for_connection_count(0, app.name)
    for conn in held:
        conn.close()
    db.query("SELECT 1")  # found closed before use: one transparent reconnect
    assert db.get_stats().connects == 2
    db.end()  # quiet again: the server's own idle timeout is restored
    row = db.query("SELECT @@SESSION.wait_timeout AS s, @@GLOBAL.wait_timeout AS g")[0]
    assert row["s"] == row["g"] > 60


@pytest.mark.slow
def test_a_warm_environment_idle_for_a_minute_keeps_its_connection_while_nobody_waits(
    app_user: AppUser, client_factory: ClientFactory
) -> None:
    db = client_factory(app_user)
    first = db.query("SELECT CONNECTION_ID() AS id")[0]["id"]
    db.end()
    time.sleep(61)
    assert db.query("SELECT CONNECTION_ID() AS id")[0]["id"] == first
    assert db.get_stats().connects == 1


def test_mariadb_counts_an_ordinary_refusal_only_in_aborted_connects(
    server_factory: Factory, make_user: Factory
) -> None:
    # Why the policy reads both counters (serverless_mysql.pressure.Pressure.counters): the premise was
    # that Connection_errors_max_connections counts every 1040; MariaDB 10.11 counts it only when it refuses before
    # authentication (more than max_connections + 1 connections at that moment).
    server = server_factory(max_connections=10)
    hog = make_user(server)
    before = {name: int(server.status(name) or 0) for name in ("Aborted_connects", "Connection_errors_max_connections")}
    held = fill(server, hog, 10 - server.connection_count())
    for _ in range(3):
        with pytest.raises(pymysql.err.OperationalError, match="Too many connections"):
            hog.connect()
    after = {name: int(server.status(name) or 0) for name in before}
    assert after["Aborted_connects"] - before["Aborted_connects"] == 3
    assert after["Connection_errors_max_connections"] == before["Connection_errors_max_connections"]
    for conn in held:
        conn.close()


def test_failed_logins_on_a_quiet_server_do_not_read_as_someone_waiting(
    server_factory: Factory, make_user: Factory, client_factory: ClientFactory
) -> None:
    server = server_factory(max_connections=20)
    app, other = make_user(server, process=True), make_user(server)
    db = client_factory(app, used_conns_freq=0)  # measures at every end()
    db.query("SELECT 1")
    for _ in range(3):  # bad passwords, health checks: Aborted_connects grows, nobody waits
        with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
            pymysql.connect(host=other.host, port=other.port, user=other.name, password="wrong", connect_timeout=2)
    db.end()
    assert db.get_client() is not None and db.get_stats().pressure_quits == 0


def test_after_giving_its_slot_back_it_queues_behind_the_waiters(
    server_factory: Factory, make_user: Factory, client_factory: ClientFactory
) -> None:
    server = server_factory(max_connections=10)
    hog, app = make_user(server), make_user(server, process=True)
    slept: list[float] = []
    db = client_factory(app, conn_utilization=0.5, sleep=slept.append)
    db.query("SELECT 1")
    db.end()  # a reading of the counters on a quiet server: the baseline of the next one
    db.quit()
    db.query("SELECT 1")
    held = fill(server, hog, 10 - server.connection_count())
    for _ in range(10):  # a queue: most of the server's connects since db's last reading are refused
        with pytest.raises(pymysql.err.OperationalError, match="Too many connections"):
            hog.connect()
    db.end()
    assert db.get_client() is None and db.get_stats().pressure_quits == 1
    held.pop().close()  # the slot it gave back (and one more) is free for the waiters
    db.query("SELECT 1")
    # It did not take the slot straight back: one wait first (the longest, as most connects were refused), then a
    # single attempt that went through.
    assert len(slept) == 1 and 0.75 * 0.5 <= slept[0] <= 0.75 * 1.5
    assert db.get_stats().connect_attempts == 3 and db.get_stats().refused_full == 0
    for conn in held:
        conn.close()
