from __future__ import annotations

import random

import pytest

from serverless_mysql.client import is_plain_read
from serverless_mysql.housekeeping import REFUSALS_SQL, Housekeeper, Usage, Zombie, parse_zombies, plan, usage_sql

OLD = tuple(Zombie(i, 1000 - i) for i in range(1, 31))


def test_limit_uses_the_account_limit_when_set() -> None:
    assert Usage(100, 0, total=50, user_total=5).limit == 100
    assert Usage(100, 0, total=50, user_total=5).used == 50
    assert Usage(100, 20, total=50, user_total=5).limit == 20
    assert Usage(100, 20, total=50, user_total=5).used == 5
    assert Usage(10, 20, total=5, user_total=5).limit == 10


def test_no_pressure_kills_only_zombies_past_max_timeout() -> None:
    zombies = (Zombie(7, 1200), Zombie(8, 901), Zombie(9, 899), Zombie(10, 5))
    decision = plan(Usage(100, 0, 60, 60, zombies), conn_utilization=0.8, zombie_max_timeout=900, max_kills=10)
    assert [z.thread_id for z in decision.kill] == [7, 8]  # 0.6 is not above the headroom (0.75 * 0.8)


def test_pressure_kills_just_enough_oldest_first() -> None:
    zombies = tuple(Zombie(i, 60 - i) for i in range(1, 7))
    decision = plan(Usage(20, 0, 20, 20, zombies), conn_utilization=0.8, zombie_max_timeout=900, max_kills=10)
    assert [z.thread_id for z in decision.kill] == [1, 2, 3, 4, 5, 6]  # 20 used, headroom target 12: all 6
    decision = plan(Usage(100, 0, 64, 64, zombies), conn_utilization=0.8, zombie_max_timeout=900, max_kills=10)
    assert [z.thread_id for z in decision.kill] == [1, 2, 3, 4]  # 64 used, headroom target 60
    decision = plan(Usage(100, 0, 81, 81, zombies), conn_utilization=0.8, zombie_max_timeout=900, max_kills=10)
    assert len(decision.kill) == 6


def test_when_someone_is_refused_every_zombie_dies() -> None:
    zombies = tuple(Zombie(i, 10 - i) for i in range(1, 6))
    quiet = Usage(100, 0, 40, 40, zombies)  # far below the headroom: normally only expired zombies die
    assert plan(quiet, conn_utilization=0.8, zombie_max_timeout=900, max_kills=10).kill == ()
    decision = plan(quiet, conn_utilization=0.8, zombie_max_timeout=900, max_kills=10, pressure=True)
    assert decision.kill == zombies  # each one is a slot for a waiter
    assert len(plan(quiet, conn_utilization=0.8, zombie_max_timeout=900, max_kills=2, pressure=True).kill) == 2


def test_pressure_kills_are_capped() -> None:
    decision = plan(Usage(100, 0, 100, 100, OLD), conn_utilization=0.5, zombie_max_timeout=900, max_kills=3)
    assert len(decision.kill) == 3


def test_both_failed_connect_counters_are_read() -> None:
    # MariaDB counts an ordinary 1040 only in Aborted_connects; pressure.counters() weighs that noisier one.
    assert "'Connection_errors_max_connections'" in REFUSALS_SQL and "'Aborted_connects'" in REFUSALS_SQL


def test_at_threshold_is_not_over_but_zombies_die_down_to_the_headroom() -> None:
    decision = plan(Usage(10, 0, 8, 8, OLD[:3]), conn_utilization=0.8, zombie_max_timeout=9999, max_kills=10)
    assert len(decision.kill) == 2  # 8 used, headroom 0.6: back to 6


def test_parse_zombies_excludes_own_ids() -> None:
    assert parse_zombies(b"12:40,13:20,99:10", frozenset({13})) == (Zombie(12, 40), Zombie(99, 10))
    assert parse_zombies(None) == ()
    assert parse_zombies("") == ()


def test_usage_sql_reads_limits_only_when_stale() -> None:
    assert "@@max_connections" in usage_sql(with_limits=True)
    assert "@@max_connections" not in usage_sql(with_limits=False)
    for sql in (usage_sql(with_limits=True), usage_sql(with_limits=False)):
        assert '"' not in sql  # ANSI_QUOTES servers reject double-quoted literals
        assert "CONNECTION_ID()" in sql
        assert sql.count("%s") == 1


def share_due(hk: Housekeeper, utilization: float, period: float, n: int = 10_000) -> float:
    """The share of ``n`` end() calls, ``period`` seconds apart, that measure."""
    hk.last_utilization, hk.last_run = utilization, -1e9
    runs = 0
    for i in range(n):
        if hk.due(i * period):
            runs += 1
            hk.last_run = i * period
    return runs / n


def test_adaptive_schedule_is_cheap_when_idle_and_eager_when_close() -> None:
    hk = Housekeeper(conn_utilization=0.8, used_conns_freq=None, max_conns_freq=15, rng=random.Random(7))
    assert hk.due(0.0)  # a client's first end() always measures
    assert 0.07 < share_due(hk, 0.1, period=0.5) < 0.13  # far below: one end() in ten
    assert 0.07 < share_due(hk, 0.1, period=5.0) < 0.13  # however slow the traffic
    # ... but a hot environment (1,000 end()s a second) ~10 times a second: 0.1 s, then ~10 more end()s
    assert 0.0085 < share_due(hk, 0.1, period=0.001, n=100_000) < 0.0097
    # From half-way on, once a second and not also one end() in ten (two thirds of the scans in the bursts).
    assert share_due(hk, 0.5, period=0.01) == pytest.approx(0.01, abs=0.001)  # half-way, busy: once a second
    assert share_due(hk, 0.5, period=2.0) == 1.0  # half-way, quiet: once a second is every end()
    assert share_due(hk, 0.75, period=0.01) == pytest.approx(0.01, abs=0.001)  # near it too
    assert share_due(hk, 0.85, period=0.3) == 1.0  # over it: four times a second, and
    assert 0.09 < share_due(hk, 0.85, period=0.01) < 0.13  # and one end() in ten: a busy environment ~0.1 + 4/s


def test_fixed_frequency_schedule() -> None:
    hk = Housekeeper(conn_utilization=0.8, used_conns_freq=2.0, max_conns_freq=15)
    assert hk.due(10.0)
    hk.last_run = 10.0
    assert not hk.due(11.9)
    assert hk.due(12.0)
    every = Housekeeper(conn_utilization=0.8, used_conns_freq=0.0, max_conns_freq=15, last_run=5.0)
    assert every.due(5.0)


def test_plain_reads_are_recognised_conservatively() -> None:
    assert is_plain_read("SELECT * FROM t WHERE id = %s")
    assert is_plain_read("  /* c */ select 1")
    assert is_plain_read("SHOW TABLES")
    assert is_plain_read("WITH x AS (SELECT 1) SELECT * FROM x")
    assert not is_plain_read("SELECT * FROM t FOR UPDATE")
    assert not is_plain_read("SELECT * FROM t LOCK IN SHARE MODE")
    assert not is_plain_read("SELECT GET_LOCK('x', 1)")
    assert not is_plain_read("SELECT a INTO @v FROM t")
    assert not is_plain_read("INSERT INTO t VALUES (1)")
    assert not is_plain_read("UPDATE t SET a = 1")
    assert not is_plain_read("WITH x AS (SELECT 1) DELETE FROM t")
    assert not is_plain_read("CALL proc()")


def test_from_half_the_threshold_the_fleet_not_each_environment_measures_about_once_a_second() -> None:
    """Issue 17's failover drill: 1,000 environments, each invoked every ~5 s, at 2,000-3,000 connections.

    "Once a second per environment" made nearly every end() of the fleet scan the whole processlist (O(N) each, so
    O(N^2) for the fleet): the server fell behind and the fleet never shrank. The interval scales with the
    connections counted (each one may belong to a measuring environment), bounding the fleet's rate.
    """
    hk = Housekeeper(conn_utilization=0.8, used_conns_freq=None, max_conns_freq=15, rng=random.Random(7))
    usage = Usage(max_connections=4000, max_user_connections=0, total=2400, user_total=2400)  # 0.6: half-way on
    hk.record(0.0, usage)
    assert hk.last_used == 2400
    # One environment invoked every 5 s: it measured every time; now once per 120 s.
    assert share_due(hk, usage.utilization, period=5.0) == pytest.approx(5.0 / 120.0, abs=0.005)
    fleet_rate = 1000 * 0.2 * share_due(hk, usage.utilization, period=5.0)  # 1,000 environments, 200 end()s/s
    assert fleet_rate <= Housekeeper.MID_FLEET_RATE  # was 200 a second: every end() of the fleet
    # A small fleet measures as before: at 40 connections, once a second still is every quiet end().
    hk.record(0.0, Usage(max_connections=60, max_user_connections=0, total=40, user_total=40))
    assert share_due(hk, hk.last_utilization or 0.0, period=2.0) == 1.0


def test_under_pressure_scans_go_by_lot_unless_a_fresh_scan_found_zombies() -> None:
    hk = Housekeeper(conn_utilization=0.8, used_conns_freq=None, max_conns_freq=60, rng=random.Random(4))
    rows = Housekeeper.PRESSURE_SCAN_ROWS
    hk.store_limits(0.0, 1000, 0)
    # It never scanned: by lot all the same (each of a spike's ~1,000 cold environments scanning once was a fifth
    # of the spike's scans).
    assert sum(hk.pressure_scan(0.0) for _ in range(1000)) < 30
    hk.scanned(0.0, zombies=3)
    assert all(hk.pressure_scan(1.0) for _ in range(1000))  # zombies seen: it keeps scanning while they last
    assert sum(hk.pressure_scan(Housekeeper.SCAN_FRESH + 0.1) for _ in range(1000)) < 30  # that scan is stale
    hk.scanned(1.0, zombies=0)
    # Rotating environments that found no zombie walk about PRESSURE_SCAN_ROWS rows each, whatever the server's size.
    for limit in (90, 1000):
        hk.store_limits(0.0, limit, 0)
        scans = sum(hk.pressure_scan(2.0) for _ in range(40_000))
        assert abs(scans * limit / 40_000 - rows) < 0.1 * rows
    hk.store_limits(0.0, rows, 0)
    assert all(hk.pressure_scan(2.0) for _ in range(1000))  # the test suite's small servers: as before


def test_a_newcomer_scans_every_time_on_a_small_server_and_by_lot_on_a_large_one() -> None:
    hk = Housekeeper(conn_utilization=0.8, used_conns_freq=None, max_conns_freq=60, rng=random.Random(3))
    rows = Housekeeper.FIRST_SCAN_ROWS
    assert all(hk.first_scan(Housekeeper.FIRST_SCAN_ALL) for _ in range(1000))
    # A herd's newcomers walk about FIRST_SCAN_ROWS rows each, whatever the server's connection count.
    for connections in (2 * Housekeeper.FIRST_SCAN_ALL, 20 * Housekeeper.FIRST_SCAN_ALL):
        scans = sum(hk.first_scan(connections) for _ in range(20_000))
        assert abs(scans * connections / 20_000 - rows) < 0.1 * rows


def test_a_holder_keeps_its_slot_unless_its_scans_find_the_users_other_connections_all_in_use() -> None:
    hk = Housekeeper(conn_utilization=0.8, used_conns_freq=None, max_conns_freq=60, rng=random.Random(5))

    def scan(now: float, running: int, total: int = 90) -> None:  # running: this connection included
        usage = Usage(max_connections=90, max_user_connections=0, total=total, user_total=total, user_running=running)
        hk.record(now, usage)
        hk.scanned(now, zombies=0)

    assert hk.keeps_slot(0.0)  # nothing says the slots are all in use
    scan(0.0, running=40)  # 39 of the 89 others run a statement: the rest are idle holders, the waiters' slots
    assert hk.keeps_slot(0.5)
    # All in use (80% or more of the others running): a closed loop, whose waiters only get slots given back. One
    # scan may catch a burst's onset: it keeps for SATURATED_FOR seconds of such scans, then gives back.
    scan(1.0, running=80)
    assert hk.keeps_slot(1.5)
    scan(1.9, running=90)
    assert not hk.keeps_slot(2.0)
    assert hk.keeps_slot(1.9 + Housekeeper.SCAN_GAP + 0.1)  # that scan is stale: it says nothing about now
    scan(4.5, running=30)  # a scan finds idle holders again: it keeps
    assert hk.keeps_slot(4.6)
    scan(5.0, running=85)
    scan(5.0 + Housekeeper.SCAN_GAP + 0.5, running=85)  # scans too far apart: each starts the count again
    assert hk.keeps_slot(5.0 + Housekeeper.SCAN_GAP + 0.6)
    # Alone on the server (no other connection of the user): nothing to kill for a waiter, so it gives back.
    scan(10.0, running=1, total=1)
    assert not hk.keeps_slot(10.1)
    # A count without a scan (a newcomer's first end() on a quiet server) tells nothing about running statements.
    hk.record(10.2, Usage(max_connections=90, max_user_connections=0, total=10, user_total=0))
    assert not hk.keeps_slot(10.3)
