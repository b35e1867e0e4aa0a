"""The overload policy (serverless_mysql.pressure) without a server: waits, pressure signals, independence."""

from __future__ import annotations

import random
import statistics

import pytest
from pymysql.err import OperationalError

from serverless_mysql.backoff import FullJitter
from serverless_mysql.errors import connect_failure_kind
from serverless_mysql.pressure import (
    DOWN,
    FINAL_RESERVE,
    FRESH,
    FULL,
    FULL_MEAN,
    GROWTH,
    LEARNED_FRESH,
    LEARNED_MAX_MEAN,
    LEFT_SHARE,
    LONGEST_MEAN,
    QUEUE_DELAY_MIN,
    QUEUE_SHARE,
    READ_ONLY_SPREAD,
    SHORTEST_MEAN,
    WINDOW,
    Pressure,
    herd_behind,
)


def paced(seed: int = 1, *, base: float = 0.05, cap: float = 1.0) -> Pressure:
    return Pressure(backoff=None, base=base, cap=cap, rng=random.Random(seed))


def test_server_down_waits_grow_from_base_to_cap() -> None:
    p = paced()
    previous, delays = 0.0, []
    for attempt in range(1, 400):
        previous = p.delay(DOWN, attempt, previous, waited=0.0)
        delays.append(previous)
    assert all(0.05 <= d <= 1.0 for d in delays)
    assert delays[0] <= 0.15  # the first retry comes soon: a restarting server is found quickly
    assert 0.3 < statistics.mean(delays) < 0.8  # then decorrelated jitter between base and cap


def test_read_only_waits_are_spread_evenly_whatever_the_cap() -> None:
    # A writer client waiting for the endpoint to move: a fleet's waiters must reach the new writer as a stream,
    # not as a herd within the down-server cap (the failover drill: docs/aurora.md).
    def chain(read_only: bool, p: Pressure) -> list[float]:
        previous, delays = 0.0, []
        for attempt in range(1, 2000):
            previous = p.delay(DOWN, attempt, previous, waited=0.0, read_only=read_only)
            delays.append(previous)
        return delays

    read_only, down = chain(True, paced()), chain(False, paced())
    assert all(0.05 <= d <= READ_ONLY_SPREAD for d in read_only)
    assert max(down) == 1.0  # a down server keeps the option's cap
    # Even: each tenth of the range holds about a tenth of the waits (not piled up at a cap like decorrelated jitter).
    width = (READ_ONLY_SPREAD - 0.05) / 10
    counts = [sum(1 for d in read_only if 0.05 + k * width <= d < 0.05 + (k + 1) * width) for k in range(10)]
    assert all(130 <= c <= 270 for c in counts), counts
    assert all(0.05 <= d <= READ_ONLY_SPREAD for d in chain(True, paced(cap=0.2)))  # cap does not apply
    assert min(chain(True, paced(base=2.5, cap=3.0))) == 2.5  # a base above the spread is the wait
    custom = Pressure(backoff=FullJitter(0.05, 3.0, random.Random(1)), base=0.05, cap=3.0, rng=random.Random(1))
    assert max(chain(True, custom)) > READ_ONLY_SPREAD  # a backoff strategy of the user's own is theirs


def test_server_full_waits_grow_with_the_wait_up_to_a_bound() -> None:
    p = paced()
    fresh = [p.delay(FULL, 1, 0.0, waited=0.0) for _ in range(4000)]
    grown = [p.delay(FULL, 5, 0.2, waited=2.4) for _ in range(4000)]
    longest = [p.delay(FULL, 9, 0.2, waited=100.0) for _ in range(4000)]
    assert 0.7 < statistics.mean(fresh) < 0.8  # 0.75 * cap
    assert 1.15 < statistics.mean(grown) < 1.25  # GROWTH of the 2.4 s waited: the longer the queue, the fewer polls
    assert 1.45 < statistics.mean(longest) < 1.55  # LONGEST_MEAN * cap: where the policy before polled every 0.4 s
    assert min(fresh) >= 0.375 and max(fresh) <= 1.125 and max(longest) <= 1.5 * LONGEST_MEAN
    # Time waited, not the attempt number or the previous delay, sets the wait.
    assert p.delay(FULL, 50, 5.0, waited=1.0) <= 1.5 * 0.75 * p.cap
    assert paced(cap=2.0).delay(FULL, 1, 0.0, waited=100.0) >= 0.5 * LONGEST_MEAN * 2.0  # scaled by cap


def test_a_long_wait_makes_a_third_to_a_half_of_the_attempts_that_shrinking_waits_made() -> None:
    def attempts(seconds: float, seed: int, *, until_the_end: bool) -> int:
        p = paced(seed, cap=1.0)
        t, n, previous = 0.0, 0, 0.0
        while t < seconds:
            left = seconds - t if until_the_end else None
            previous = p.delay(FULL, n + 1, previous, waited=t, left=left)
            t += previous
            n += 1
        return n

    short = statistics.mean(attempts(6.0, seed, until_the_end=False) for seed in range(200))
    long = statistics.mean(attempts(30.0, seed, until_the_end=False) for seed in range(200))
    to_the_end = statistics.mean(attempts(30.0, seed, until_the_end=True) for seed in range(200))
    assert 5 < short < 8  # 0.75 s apart, then GROWTH of the time waited
    assert 19 < long < 26  # 1.5 s apart from 3 s on: the policy before made about 70 attempts in 30 s
    assert 27 < to_the_end < 34  # a wait that runs to its deadline polls faster in its last 10 s
    assert GROWTH * 30.0 > LONGEST_MEAN  # the bound, not the growth, paces the middle of a long wait


def test_close_to_the_end_of_its_wait_a_waiter_polls_more_often_but_never_faster_than_the_bound() -> None:
    p = paced(cap=1.0)

    def mean(left: float | None) -> float:
        return statistics.mean(p.delay(FULL, 9, 0.2, waited=20.0, left=left) for _ in range(4000))

    assert 1.45 < mean(None) < 1.55 and 1.45 < mean(20.0) < 1.55  # far from the end: the grown wait
    assert 0.95 < mean(1.0 / LEFT_SHARE) < 1.05  # LEFT_SHARE of the time left
    assert 0.38 < mean(0.5) < 0.42  # SHORTEST_MEAN * cap: the rate every waiter had before, not a hammering
    assert LEFT_SHARE * 0.5 < SHORTEST_MEAN


def test_the_floor_is_base() -> None:
    p = paced(base=0.3, cap=1.0)
    assert min(p.delay(FULL, 9, 0.0, waited=100.0) for _ in range(2000)) >= 0.3


def test_a_serverless_mysql_strategy_is_used_for_both_kinds() -> None:
    strategy = FullJitter(0.002, 0.1, random.Random(5))
    p = Pressure(backoff=strategy, base=0.002, cap=0.1, rng=random.Random(5))
    assert all(p.delay(kind, 3, 0.0, waited=10.0) <= 0.1 for kind in (FULL, DOWN) for _ in range(200))


def test_retry_is_bounded_by_count_and_by_time_with_a_final_attempt_before_the_end() -> None:
    wait = Pressure.next_wait
    assert wait(attempt=3, max_retries=10, now=1.0, delay=0.5, wait_end=2.0) == 0.5
    assert wait(attempt=10, max_retries=10, now=1.0, delay=0.5, wait_end=None) is None  # the count
    last = wait(attempt=3, max_retries=10, now=1.6, delay=0.5, wait_end=2.0)  # would wake too late: cut short
    assert last == pytest.approx(2.0 - FINAL_RESERVE - 1.6)
    assert wait(attempt=4, max_retries=10, now=2.0 - FINAL_RESERVE + 0.01, delay=0.5, wait_end=2.0) is None
    assert wait(attempt=3, max_retries=10, now=1.6, delay=0.5, wait_end=None) == 0.5


def test_pressure_lasts_a_window_after_the_last_sign() -> None:
    p = paced()
    p.counters(10.0, 0, 0, busy=True)
    assert p.counters(11.0, 1, 0, busy=True)
    assert p.under_pressure(11.0) and p.under_pressure(11.0 + WINDOW - 0.01)
    assert not p.under_pressure(11.0 + WINDOW)  # it cannot lock itself in: it ends unless refusals go on


def test_the_refusal_counters_need_a_fresh_previous_reading() -> None:
    p = paced()
    assert not p.counters(0.0, 0, 100, busy=True)  # the first reading is a baseline
    assert not p.counters(1.0, 0, 100, busy=True) and not p.under_pressure(1.0)  # nobody refused: keep the slot
    assert p.counters(2.0, 0, 101, busy=True) and p.under_pressure(2.0)  # someone was refused in the last second
    assert not p.counters(2.0 + WINDOW + FRESH + 1, 0, 500, busy=True)  # too old to say anything about now
    assert not p.under_pressure(2.0 + WINDOW + FRESH + 1)


def test_aborted_connects_count_only_while_the_server_is_busy() -> None:
    p = paced()
    p.counters(0.0, 5, 100, busy=False)
    assert not p.counters(1.0, 5, 103, busy=False)  # bad passwords, health checks: noise on a quiet server
    assert p.counters(2.0, 6, 103, busy=False)  # a refusal for max_connections counts whatever the utilization
    q = paced()
    q.counters(0.0, 5, 100, busy=False)
    assert q.counters(1.0, 5, 101, busy=True)  # MariaDB's 1040 with the SUPER slot free: only Aborted_connects


def test_a_waiter_reads_the_counters_at_its_end_others_once_a_second() -> None:
    p = paced()
    assert p.counters_due(0.0, waited=False)  # never read
    p.counters(0.0, 0, 0, busy=True)
    assert not p.counters_due(0.5, waited=False) and p.counters_due(1.0, waited=False)
    assert p.counters_due(0.01, waited=True)  # it connected after refusals: were others refused since?


def test_the_account_at_its_limit_means_pressure() -> None:
    p = paced()
    p.account_full(3.0)
    assert p.under_pressure(3.0) and not p.under_pressure(3.0 + WINDOW)


def test_two_clients_keep_separate_state() -> None:
    a, b = paced(1), paced(1)
    a.counters(0.0, 7, 7, busy=True)
    a.counters(0.2, 8, 8, busy=True)
    assert a.under_pressure(0.5) and not b.under_pressure(0.5)
    assert not b.counters(1.0, 9, 9, busy=True)  # b's first reading: a baseline of its own, not a's


@pytest.mark.parametrize(
    ("errno", "message", "kind"),
    [
        (1040, "Too many connections", FULL),
        (1203, "User app already has more than 'max_user_connections' active connections", FULL),
        (1226, "User 'app' has exceeded the 'max_user_connections' resource", FULL),
        (1041, "Out of memory", FULL),
        (2003, "Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)", DOWN),
        (2013, "Lost connection to MySQL server during query", DOWN),
        (1053, "Server shutdown in progress", DOWN),
        (1045, "Access denied for user 'app'", None),
        (1226, "User 'app' has exceeded the 'max_questions' resource", None),
    ],
)
def test_refusals_are_classified(errno: int, message: str, kind: str | None) -> None:
    assert connect_failure_kind(OperationalError(errno, message)) == kind


def test_a_waiter_that_learned_a_long_queue_retries_about_twice_over_it_then_at_the_paced_rate() -> None:
    p = paced(cap=1.0)
    p.learn(0.0, 2.4, refused_full=True)  # its last connect waited 2.4 s for a full server
    p.start_wait(1.0)
    early = [p.delay(FULL, 1, 0.0, waited=0.5) for _ in range(4000)]
    assert 1.15 < statistics.mean(early) < 1.25  # 2.4 s / LEARNED_RETRIES, where the paced rate made 0.68
    late = [p.delay(FULL, 5, 2.0, waited=3.5) for _ in range(4000)]
    assert 1.45 < statistics.mean(late) < 1.55  # past it, the paced wait (LONGEST_MEAN * cap after 3.5 s)
    assert all(p.delay(DOWN, 1, 0.0, waited=0.5) <= 1.0 for _ in range(200))  # a down server: unchanged


def test_a_learned_wait_is_bounded_and_forgotten() -> None:
    p = paced(cap=1.0)
    p.learn(0.0, 30.0, refused_full=True)
    p.start_wait(0.5)
    bounded = [p.delay(FULL, 1, 0.0, waited=1.0) for _ in range(4000)]
    assert statistics.mean(bounded) < 1.05 * LEARNED_MAX_MEAN  # a shrinking queue is not slept through
    p.start_wait(LEARNED_FRESH + 1.0)  # too old to say how long the queue is now
    assert 0.7 < statistics.mean(p.delay(FULL, 1, 0.0, waited=0.0) for _ in range(4000)) < 0.8
    p.learn(20.0, 6.0, refused_full=False)  # it got in at once: no queue
    p.start_wait(20.5)
    assert 0.7 < statistics.mean(p.delay(FULL, 1, 0.0, waited=0.0) for _ in range(4000)) < 0.8


def test_a_reading_of_a_previous_connection_is_the_baseline_while_fresh() -> None:
    # The first end() of a new connection reads the counters (no reading right after connecting): a reading the
    # client took on its previous connection, at most FRESH seconds before, tells whether others were refused since.
    p = paced()
    p.counters(0.0, 3, 0, busy=True)  # the end() before it gave its connection back
    assert p.counters(FRESH, 4, 0, busy=True) and p.under_pressure(FRESH)
    q = paced()
    q.counters(0.0, 3, 0, busy=True)
    assert not q.counters(FRESH + 0.1, 4, 0, busy=True)  # too old: only a baseline for the next one


def test_a_first_reading_without_a_fresh_one_takes_a_herd_into_a_busy_server_for_a_queue() -> None:
    # The first end() of a new connection has no baseline of its own (none is read right after connecting): a cold
    # start that finds the server busy with a herd connecting after it got in at once, the others refused behind it.
    q = paced()
    assert q.counters(0.0, 3, 0, busy=True, herd=True) and q.under_pressure(0.0)
    for busy, herd in ((True, False), (False, True)):
        p = paced()
        assert not p.counters(0.0, 3, 0, busy=busy, herd=herd) and not p.under_pressure(0.0)
    r = paced()
    r.counters(0.0, 3, 0, busy=True)  # a fresh reading of its previous connection: compared with, as usual
    assert not r.counters(1.0, 3, 0, busy=True, herd=True) and not r.under_pressure(1.0)
    assert r.counters(2.0, 4, 0, busy=True)


def test_a_herd_is_connects_at_max_connections_a_second_since_ones_own() -> None:
    # Connection id 1,000 (the Connections counter at its handshake) on a 100-connection server.
    assert herd_behind(1000, 0.0, 0.5, 1000 + 50, 100)  # 100 a second over half a second
    assert not herd_behind(1000, 0.0, 0.5, 1000 + 49, 100)  # a busy server's churn
    assert herd_behind(1000, 0.0, 0.01, 1000 + 10, 100)  # within 10 ms: judged over HERD_WINDOW_MIN
    assert not herd_behind(1000, 0.0, 0.01, 1000 + 9, 100)
    assert not herd_behind(1000, 0.0, 60.0, 1000 + 5000, 100)  # a connection read a minute after its connect
    assert not herd_behind(1000, 0.0, 0.5, None, 100)
    assert not herd_behind(1000, 0.0, 0.5, 900, 100)  # ids numbered otherwise (a proxy's own)
    assert not herd_behind(5, 0.0, 0.5, (1 << 32) + 5000, 100)  # the handshake's id is 32 bits wide


def test_after_a_wait_for_its_slot_the_server_still_busy_is_the_sign_whatever_the_counters_did() -> None:
    # A queue of a few slow pollers refuses nobody in the tenth of a second between a connect and its end(): the
    # closed loop's last waiters waited behind holders that saw no refusal and kept their slots (issue 20).
    p = paced()
    assert p.counters(0.0, 0, 0, busy=True, waited=True) and p.under_pressure(0.0)  # no baseline needed
    q = paced()
    q.counters(0.0, 0, 0, busy=True)
    assert not q.counters(0.1, 0, 9, busy=False, waited=True)  # the queue it waited in is gone: keep the slot
    assert not q.under_pressure(0.1)
    assert not q.counters(0.2, 0, 9, busy=True)  # and that reading is the next one's baseline


def test_a_connect_that_gets_its_slot_at_once_ends_the_pressure() -> None:
    # A sign lasted WINDOW seconds, and an environment invoked every few milliseconds reconnected on every one of
    # its invocations meanwhile, without being refused: hundreds of logins a second between the seed's bursts.
    p = paced()
    p.counters(0.0, 0, 0, busy=True)
    p.counters(0.5, 1, 1, busy=True)
    p.learn(0.6, 0.3, refused_full=True)  # it waited behind others: the pressure goes on
    assert p.under_pressure(0.7)
    p.learn(0.8, 0.0, refused_full=False)  # nobody was ahead of it
    assert not p.under_pressure(0.8)


def give_back_wait(p: Pressure, now: float) -> float:
    return statistics.mean(p.queue_delay(now) for _ in range(4000))


def test_a_waiters_fresh_refusal_stands_for_the_reading_at_its_end() -> None:
    # The end() of a connection that waited: a refusal of its own less than WINDOW ago says what the counters would
    # (the queue it waited in is still there), without a statement that costs the server more than a login.
    p = paced()
    p.learn(1.5, 0.4, refused_full=True, refused_at=1.4, own_share=0.5)
    assert p.own_refusal(1.6) and p.under_pressure(1.6)
    assert p.under_pressure(1.4 + WINDOW - 0.01) and not p.under_pressure(1.4 + WINDOW)  # from the refusal on
    # An older refusal says nothing about now: the client reads the counters.
    old = paced()
    old.learn(1.5, 0.4, refused_full=True, refused_at=1.4, own_share=0.5)
    assert not old.own_refusal(1.4 + WINDOW) and not old.under_pressure(1.4 + WINDOW)


def test_without_a_share_measured_lately_the_wait_after_a_give_back_takes_its_own_connects() -> None:
    # Without a reading the share would go stale and the wait after the give-back be the least: in the closed loops
    # the attempts per invocation grew (2.42-2.53 in the 20x against 2.25-2.26). A share measured lately stands.
    cap = 1.0
    measured = paced(cap=cap)
    measured.counters(0.0, 0, 100, busy=True, connects=1_000)
    measured.counters(1.0, 0, 105, busy=True, connects=1_100)  # 5 % refused
    own = paced(cap=cap)
    for p in (measured, own):
        p.learn(2.0, 1.0, refused_full=True, refused_at=1.9, own_share=2 / 3)  # refused twice, in at the third
        assert p.own_refusal(2.1)
    assert give_back_wait(measured, 2.2) == pytest.approx(FULL_MEAN * cap * 0.05 / QUEUE_SHARE, rel=0.1)
    assert give_back_wait(own, 2.2) == pytest.approx(FULL_MEAN * cap, rel=0.05)


def test_the_wait_after_giving_the_slot_back_grows_with_the_share_of_refused_connects() -> None:
    # Behind a long queue it waits before its first attempt (the freed slot goes to a waiter, and its own first
    # attempt is not a refusal); where few are refused that wait is only latency (the seed's p99).
    cap = 1.0
    busy = paced(cap=cap)
    busy.counters(0.0, 0, 100, busy=True, connects=1_000)
    busy.counters(1.0, 0, 160, busy=True, connects=1_200)  # 60 of 200 connects refused: 30 %
    assert 0.72 < give_back_wait(busy, 1.5) < 0.78  # 0.75 * cap from QUEUE_SHARE on
    light = paced(cap=cap)
    light.counters(0.0, 0, 100, busy=True, connects=1_000)
    light.counters(1.0, 0, 110, busy=True, connects=1_200)  # 5 %: a fifth of the longest wait
    assert 0.95 * 0.75 * cap * 0.05 / QUEUE_SHARE < give_back_wait(light, 1.5) < 1.05 * 0.75 * cap * 0.05 / QUEUE_SHARE
    few = paced(cap=cap)
    few.counters(0.0, 0, 100, busy=True, connects=1_000)
    few.counters(1.0, 0, 101, busy=True, connects=1_200)  # 0.5 %: the floor
    assert QUEUE_DELAY_MIN * 0.95 < give_back_wait(few, 1.5) < QUEUE_DELAY_MIN * 1.05
    assert QUEUE_DELAY_MIN * 0.95 < give_back_wait(busy, 1.0 + FRESH + WINDOW + 0.1) < QUEUE_DELAY_MIN * 1.05  # stale
    assert QUEUE_DELAY_MIN * 0.95 < give_back_wait(paced(), 0.0) < QUEUE_DELAY_MIN * 1.05  # never read
