"""What a herd of newcomers costs the server: no statement that walks every connection for each of them.

After a failover ~1,000 environments reconnect at once to a server holding ~2,000 connections; each new
connection's first ``end()`` used to scan the processlist (O(connections)) and its counter baseline summed every
connection's status (``SHOW GLOBAL STATUS``): O(N^2) on the server, its largest cost in the failover drill.
"""

from __future__ import annotations

import random
import threading
import time

import pymysql
import pytest

from harness.mariadb import MariaDBServer
from serverless_mysql import ServerlessMySQL, pressure
from serverless_mysql.housekeeping import REFUSALS_SQL, Housekeeper
from serverless_mysql.results import Stats
from tests.conftest import ServerFactory, UserFactory
from tests.integration.conftest import ClientFactory, small_server

pytestmark = pytest.mark.integration

CROWD = 2 * Housekeeper.FIRST_SCAN_ALL  # more connections than a newcomer scans through unconditionally


class Draws(random.Random):
    """A generator whose ``random()`` always returns ``value`` (which side of a lot the client falls on)."""

    def __init__(self, value: float) -> None:
        super().__init__(7)
        self.value = value

    def random(self) -> float:
        return self.value


def selects(server: MariaDBServer) -> int:
    """The server's SELECT count (the harness's own monitor reads it with SHOW STATUS, not counted there)."""
    return int(server.status("Com_select") or 0)


def reads(server: MariaDBServer) -> int:
    """SELECTs and SHOW PROCESSLISTs (a small server's scan is the latter)."""
    return selects(server) + int(server.status("Com_show_processlist") or 0)


def newcomer(
    server: MariaDBServer,
    make_user: UserFactory,
    client_factory: ClientFactory,
    *,
    draw: float,
) -> tuple[Stats, int, ServerlessMySQL]:
    """A new client among ``CROWD`` idle connections of another user, and one zombie of its own past
    ``zombie_max_timeout`` (a scan kills it; a count does not see it): (stats after one invocation, SELECTs run,
    zombies left after a second invocation)."""
    app = make_user(server, process=True)
    server.open_zombies(make_user(server), CROWD)
    server.open_zombies(app, 1)
    time.sleep(1.1)  # TIME counts whole seconds
    db = client_factory(app, random=Draws(draw), zombie_min_timeout=1, zombie_max_timeout=1)
    before = selects(server)
    db.query("SELECT 1")
    db.end()
    return db.get_stats(), selects(server) - before, db


@pytest.fixture
def crowded(server_factory: ServerFactory) -> MariaDBServer:
    return server_factory(max_connections=4 * CROWD)


def test_a_newcomer_far_below_the_threshold_counts_instead_of_scanning(
    crowded: MariaDBServer, make_user: UserFactory, client_factory: ClientFactory
) -> None:
    stats, ran, _ = newcomer(crowded, make_user, client_factory, draw=0.99)
    # SELECT 1 and the server's limits (a cold start); the count is the one read with the counters at end(): no
    # scan, so the expired zombie is still there for a later one. ~CROWD + 3 connections of 4 * CROWD.
    assert ran == 2
    assert (stats.housekeeping_runs, stats.housekeeping_statements, stats.zombies_killed) == (1, 2, 0)
    assert stats.last_utilization is not None and 0.24 <= stats.last_utilization <= 0.3


def test_a_writer_newcomer_sends_no_select_at_its_first_end(
    crowded: MariaDBServer, make_user: UserFactory, client_factory: ClientFactory
) -> None:
    # The writability check brings the limits along, and the count comes with the counters: in a herd of newcomers
    # (the drain after a failover) the first end() costs the server one SHOW STATUS and no SELECT.
    app = make_user(crowded)
    crowded.open_zombies(make_user(crowded), CROWD)
    db = client_factory(app, random=Draws(0.99), server_role="writer")
    before = selects(crowded)
    db.query("SELECT 1")
    after_query = selects(crowded)
    db.end()
    stats = db.get_stats()
    assert after_query - before == 2  # the writability check (with the limits) and SELECT 1
    assert selects(crowded) == after_query  # end(): no limits, no scan
    assert (stats.housekeeping_runs, stats.housekeeping_statements) == (1, 1)  # the counters (SHOW) only
    assert stats.last_utilization is not None and 0.24 <= stats.last_utilization <= 0.3


def test_a_newcomer_scans_by_lot(crowded: MariaDBServer, make_user: UserFactory, client_factory: ClientFactory) -> None:
    stats, ran, _ = newcomer(crowded, make_user, client_factory, draw=0.0)
    assert ran == 3  # SELECT 1, the limits (before the counters: "busy" needs them) and the scan
    assert (stats.housekeeping_runs, stats.zombies_killed) == (1, 1)


def test_a_newcomer_near_the_threshold_scans(
    server_factory: ServerFactory, make_user: UserFactory, client_factory: ClientFactory
) -> None:
    server = server_factory(max_connections=CROWD + 20)  # ~CROWD of CROWD + 20: over HEADROOM * 0.8
    stats, ran, _ = newcomer(server, make_user, client_factory, draw=0.99)
    assert ran == 3  # SELECT 1, the limits, then the scan all the same
    assert stats.zombies_killed == 1
    assert stats.last_utilization is not None and stats.last_utilization > 0.8


def test_the_counters_read_in_session_scope_are_the_servers(
    crowded: MariaDBServer, make_user: UserFactory, client_factory: ClientFactory
) -> None:
    # The counters are read in SESSION scope (no sum over every connection): these four have only a global value.
    assert "SHOW SESSION STATUS" in REFUSALS_SQL
    app = make_user(crowded)
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(**{**app.connect_kwargs(), "password": "wrong"}).close()  # Aborted_connects > 0
    crowded.open_zombies(make_user(crowded), 5)
    db = client_factory(app)
    session = {row["Variable_name"]: int(row["Value"]) for row in db.query(REFUSALS_SQL)}
    glob = {row["Variable_name"]: int(row["Value"]) for row in db.query(REFUSALS_SQL.replace("SESSION", "GLOBAL"))}
    assert set(session) == {"Connection_errors_max_connections", "Aborted_connects", "Connections", "Threads_connected"}
    assert session == glob and session["Aborted_connects"] > 0 and session["Threads_connected"] >= 6


@pytest.fixture
def quick_herd(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' herds connect one by one from one thread (slower on a loaded machine than a herd of environments):
    the rate that makes a herd (pressure.HERD_RATE, unit-tested on its own) is scaled down for them."""
    monkeypatch.setattr(pressure, "HERD_RATE", 0.01)


@pytest.mark.usefixtures("quick_herd")
@pytest.mark.parametrize("draw", [0.1, 0.9])
def test_a_rotating_end_under_pressure_scans_by_lot(
    server_factory: ServerFactory, make_user: UserFactory, client_factory: ClientFactory, draw: float
) -> None:
    # 40 connections: an end() under pressure scans with probability PRESSURE_SCAN_ROWS / 40 = 0.25. The lot
    # that scans finds the zombie and kills it in place of its own slot; the other gives its slot back unscanned
    # when its connection is the rotation's (it waited for it), and keeps it otherwise (nothing it saw says that
    # the user's slots are all in use).
    limit = 40
    assert Housekeeper.PRESSURE_SCAN_ROWS / limit == 0.25
    server, other, app = small_server(server_factory, make_user, limit)
    held = [other.connect() for _ in range(limit - 3)]
    db = client_factory(app, random=Draws(draw), conn_utilization=0.5, zombie_min_timeout=0)
    db.query("SELECT 1")
    # Somebody is refused a slot (the server counts it) before the first end(): that end() is under pressure.
    held += [other.connect() for _ in range(limit - server.connection_count())]
    with pytest.raises(pymysql.err.OperationalError, match="Too many connections"):
        other.connect()
    held.pop().close()
    # Its first end(): no earlier reading to compare with, but the server is busy and a herd connected after it: a
    # queue. Under pressure from the start, it scans by lot too. The scan finds the user has no other connection
    # (nothing to kill for a waiter): it gives its slot back. Unscanned, it got its slot at once and keeps it.
    db.end()
    first = db.get_stats()
    scanned = draw < 0.25
    assert (first.pressure_quits, first.housekeeping_runs) == ((1, 1) if scanned else (0, 0))
    if not scanned:
        assert db.get_client() is not None
        db.quit()  # for the rest: a connection of the rotation
    zombie = server.open_zombies(app, 1)
    held += [other.connect() for _ in range(limit - server.connection_count())]
    threading.Timer(2.0, held.pop().close).start()  # after its wait before a first attempt (<= 1.125 s)
    before = selects(server)
    # It reconnects after a refusal (a connect that got its slot at once would end its pressure), into a server
    # that is full again: its end() is under pressure from the start.
    db.query("SELECT 1")
    assert db.get_stats().refused_full >= 1
    db.end()
    stats = db.get_stats()
    if draw < 0.25:  # scanned: killed the zombie in place of its own slot, and keeps its connection
        assert (stats.housekeeping_runs, stats.zombies_killed, stats.pressure_quits) == (2, 1, 1)
        assert server.wait_listed(zombie, set()) == set()
        assert db.get_client() is not None
    else:  # gave its slot back unscanned: the query was the only SELECT
        assert (stats.housekeeping_runs, stats.zombies_killed, stats.pressure_quits) == (0, 0, 1)
        assert selects(server) - before == 1
        assert server.wait_listed(zombie, set(zombie)) == set(zombie)
        assert db.get_client() is None
    for conn in held:
        conn.close()


@pytest.mark.parametrize("late", [False, True])
def test_a_cold_start_that_waited_reads_the_limits_not_a_scan(
    server_factory: ServerFactory,
    make_user: UserFactory,
    client_factory: ClientFactory,
    late: bool,
) -> None:
    # A cold environment of a herd (it does not know the server's limits yet) gets its slot after a refusal, into a
    # server that stays full: its first end() reads the limits (a SELECT of two variables) and gives its slot back
    # unscanned when the lot says so. It used to scan for the limits: a fifth of the spike's scans. Its own refusal
    # a moment ago says the queue is there: no counters either (a statement that costs the server more than a
    # login). An end() WINDOW seconds after that refusal or later reads them, and finds the server still full.
    limit = 40
    server, other, app = small_server(server_factory, make_user, limit)
    zombie = server.open_zombies(app, 1)
    held = [other.connect() for _ in range(limit - server.connection_count())]
    db = client_factory(app, random=Draws(0.9), conn_utilization=0.5, zombie_min_timeout=0)
    threading.Timer(1.0, held.pop().close).start()
    before = selects(server)
    db.query("SELECT 1")
    assert db.get_stats().refused_full >= 1
    if late:
        time.sleep(pressure.WINDOW)
    db.end()
    stats = db.get_stats()
    assert (stats.housekeeping_runs, stats.zombies_killed, stats.pressure_quits) == (0, 0, 1)
    assert stats.housekeeping_statements == (2 if late else 1)  # the limits, and only late the counters
    assert selects(server) - before == 2  # the query and the limits
    assert server.wait_listed(zombie, set(zombie)) == set(zombie)  # not scanned: the zombie waits for a lot
    assert db.get_client() is None
    for conn in held:
        conn.close()


@pytest.mark.usefixtures("quick_herd")
@pytest.mark.parametrize("draw", [0.1, 0.9])
def test_a_newcomer_that_a_herd_queues_behind_is_under_pressure(
    server_factory: ServerFactory, make_user: UserFactory, client_factory: ClientFactory, draw: float
) -> None:
    # A cold environment of a herd gets its slot at once, and the herd connects after it into the full server. Its
    # first end() has no earlier reading of the counters to compare with (none is read right after connecting), but
    # the server is busy and the herd connected after it (the server's Connections counter is past its own
    # connection id): a queue, so it is under pressure. It scans only by lot: the scan finds no other connection of
    # its user (nothing a waiter could get by a kill) and it gives its slot back; unscanned, it got its slot without
    # waiting and nothing says its user's slots are all in use, so it keeps it, with the short idle timeout. A busy
    # server's churn after it is no pressure (the next test).
    limit = 40
    server, other, app = small_server(server_factory, make_user, limit)
    db = client_factory(app, random=Draws(draw), conn_utilization=0.5)
    db.query("SELECT 1")
    held = [other.connect() for _ in range(limit - server.connection_count())]
    with pytest.raises(pymysql.err.OperationalError, match="Too many connections"):
        other.connect()
    before = reads(server)
    db.end()
    stats = db.get_stats()
    assert db._pressure.under_pressure(time.monotonic())
    if draw < 0.25:
        assert (stats.housekeeping_runs, stats.pressure_quits) == (1, 1)
        assert reads(server) - before == 2  # the limits and the scan (the counters are a SHOW STATUS)
        assert db.get_client() is None
    else:
        assert (stats.housekeeping_runs, stats.pressure_quits) == (0, 0)
        assert reads(server) - before == 1  # the limits: no scan
        assert db.query("SELECT @@SESSION.wait_timeout AS t")[0]["t"] == 3
    for conn in held:
        conn.close()


def test_a_newcomer_on_a_busy_server_keeps_its_slot_through_a_few_connects_after_its_own(
    server_factory: ServerFactory, make_user: UserFactory, client_factory: ClientFactory
) -> None:
    # The server is busy (other users' connections), and a couple of connects come after the newcomer's own: the
    # churn of a busy server (other applications, monitoring), not a herd (pressure.HERD_RATE: 40 connects a second
    # on this server). Nobody is refused, so it keeps its slot and scans as a newcomer does on a small server.
    limit = 40
    server, other, app = small_server(server_factory, make_user, limit)
    held = [other.connect() for _ in range(limit - 5 - server.connection_count())]
    db = client_factory(app, random=Draws(0.9), conn_utilization=0.5)
    db.query("SELECT 1")
    held += [other.connect() for _ in range(2)]
    time.sleep(0.2)  # two connects in 0.2 s and more: under 0.2 * 40
    db.end()
    stats = db.get_stats()
    assert (stats.housekeeping_runs, stats.pressure_quits) == (1, 0)
    assert db.get_client() is not None
    for conn in held:
        conn.close()
