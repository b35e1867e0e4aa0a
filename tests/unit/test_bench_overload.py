"""The benchmark's pure overload rules (bench/overload.py, bench/report.py): no server, no clock."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench.fleet import OpenLoop
from bench.overload import (
    Window,
    bucket,
    clean_from,
    counter_per_second,
    error_split,
    is_metastable,
    max_per_second,
    worst_index,
)
from bench.report import check_overload_targets, reported, run_key
from bench.scenarios import RunResult, scenarios

# ---- per-second buckets ------------------------------------------------------------------------------------------


def test_bucket_counts_by_whole_second_and_drops_outside() -> None:
    assert bucket([0.0, 0.99, 1.0, 2.5, -0.1, 3.0], 3) == [2, 1, 1]


def test_max_per_second_keeps_none_for_seconds_without_a_sample() -> None:
    assert max_per_second([(0.1, 3), (0.6, 5), (1.2, None), (2.0, 1)], 3) == [5, None, 1]


def test_counter_per_second_gives_increments_to_the_midpoint_of_two_readings() -> None:
    snapshots = [(0.0, 10.0), (0.5, 12.0), (1.0, 15.0), (1.5, 16.0), (4.5, 40.0), (5.01, 41.0)]
    # midpoints 0.25 and 0.75 -> second 0 (+2 +3); 1.25 -> second 1 (+1); 3.0 -> second 3 (+24, a gap: second 2 has
    # none); 4.755 -> second 4 (+1)
    assert counter_per_second(snapshots, 6) == [5.0, 1.0, None, 24.0, 1.0, None]


# ---- errors before / during / after ------------------------------------------------------------------------------


def test_error_split_uses_two_seconds_after_the_trigger() -> None:
    windows = [Window(10.0, 11.0, "spike")]
    assert error_split([5.0, 10.0, 12.99, 13.0, 20.0], windows) == (1, 2, 2)


def test_error_split_between_bursts_counts_as_after() -> None:
    windows = [Window(10.0, 12.0), Window(20.0, 22.0)]
    assert error_split([11.0, 15.0, 21.0, 30.0], windows) == (0, 2, 2)


def test_error_split_without_trigger_counts_everything_after() -> None:
    assert error_split([1.0, 2.0], []) == (0, 0, 2)


# ---- time to clean service ---------------------------------------------------------------------------------------


def _flat(n: int, value: int) -> list[int]:
    return [value] * n


def test_clean_right_after_the_trigger() -> None:
    offered = _flat(30, 200)
    ok = _flat(30, 200)
    errors = _flat(32, 0)
    errors[10] = 100  # inside the spike second
    assert clean_from(ok, errors, offered, trigger_end=11.0, duration=30) == 11


def test_clean_waits_for_the_last_error_and_for_ok_to_reach_the_offered_load() -> None:
    offered = _flat(30, 200)
    ok = _flat(30, 200)
    errors = _flat(32, 0)
    errors[14] = 1
    ok[16] = 179  # below 90% of 200
    ok[17] = 180  # exactly 90%: clean
    assert clean_from(ok, errors, offered, trigger_end=11.0, duration=30) == 17


def test_never_clean_when_an_invocation_of_the_last_second_fails() -> None:
    offered = _flat(30, 200)
    ok = _flat(30, 200)
    errors = _flat(35, 0)
    errors[29] = 1  # it arrived in the last second (and failed whenever, even while the fleet drained)
    assert clean_from(ok, errors, offered, trigger_end=11.0, duration=30) is None


def test_never_clean_when_service_only_comes_back_in_the_last_partial_second() -> None:
    offered = _flat(30, 200)
    ok = _flat(30, 200)
    ok[28] = 10
    errors = _flat(30, 0)
    assert clean_from(ok, errors, offered, trigger_end=11.0, duration=29.5) is None


def test_clean_starts_at_the_first_whole_second_after_a_fractional_trigger_end() -> None:
    offered = _flat(30, 200)
    assert clean_from(offered, _flat(30, 0), offered, trigger_end=13.4, duration=30) == 14


def test_metastable_rule() -> None:
    assert not is_metastable(13, trigger_end=11.0)
    assert not is_metastable(16, trigger_end=13.4)  # ceil(15.4) = 16
    assert is_metastable(17, trigger_end=13.4)
    assert is_metastable(None, trigger_end=11.0)


# ---- worst run ---------------------------------------------------------------------------------------------------


def test_worst_run_most_errors_after_first() -> None:
    assert worst_index([(0, 500, 1.0), (3, 10, 1.0), (2, 900, None)]) == 1


def test_worst_run_then_total_errors_then_time_to_clean() -> None:
    assert worst_index([(0, 5, 1.0), (0, 7, 1.0), (0, 6, None)]) == 1
    assert worst_index([(0, 5, 1.0), (0, 5, None), (0, 5, 9.0)]) == 1  # never is the longest
    assert worst_index([(0, 5, 1.0), (0, 5, 3.0), (0, 5, 2.0)]) == 1
    assert worst_index([(0, 0, 1.0), (0, 0, 1.0)]) == 0  # a tie: the first
    assert worst_index([(None, 4, None), (None, 2, None)]) == 0  # no trigger: total errors decide


def test_worst_run_needs_runs() -> None:
    with pytest.raises(ValueError, match="no runs"):
        worst_index([])


def _result(strategy: str, run: int, errors: int, after: int, ttc: float | None) -> RunResult:
    data: dict[str, Any] = {
        "strategy": strategy,
        "errors": errors,
        "overload": {"errors_after": after, "time_to_clean_s": ttc},
    }
    return RunResult(strategy, "spike", data=data, run=run)


def test_reported_rows_are_the_worst_run_per_strategy() -> None:
    runs = [
        _result("with_mysql", 1, 0, 0, 0.0),
        _result("with_mysql", 2, 1200, 900, None),
        _result("with_mysql", 3, 3, 0, 1.0),
        _result("naive-per-invocation", 1, 114, 0, 0.0),
    ]
    rows, by_strategy = reported(runs, "spike")
    assert [(r.strategy, r.run) for r in rows] == [("with_mysql", 2), ("naive-per-invocation", 1)]
    assert [r.run for r in by_strategy["with_mysql"]] == [1, 2, 3]
    assert run_key(runs[1].data) == (900, 1200, None)


# ---- the scenarios are the issue's ---------------------------------------------------------------------------------


def test_full_scenarios_have_the_issue_parameters() -> None:
    by_key = {sc.key: sc for sc in scenarios(quick=False)}
    assert set(by_key) == {
        "spike",
        "restart",
        "oversubscription",
        "crowd",
        "kill-storm",
        "bursts",
        "stall",
        "seed",
        "lastwait",
    }
    for sc in by_key.values():
        assert sc.timeout == 30.0
        assert sc.idle_ttl == (3.0, 3.0)
    spike = by_key["spike"]
    assert (spike.max_connections, spike.hold, spike.duration) == (60, 0.05, 30)
    assert isinstance(spike.load, OpenLoop)
    assert [spike.load.rate_at(t) for t in (9.99, 10.0, 10.99, 11.0)] == [200, 1500, 1500, 200]
    restart = by_key["restart"]
    assert (restart.crash_time, restart.down_for, restart.hold, restart.max_connections) == (10.0, 3.3, 0.02, 60)
    over = by_key["oversubscription"]
    assert (over.concurrency, over.max_connections, over.hold, over.duration) == (300, 30, 0.1, 20)
    assert math.isclose(over.physical_limit, 300)
    assert by_key["kill-storm"].kill_times == [10.0]
    bursts = by_key["bursts"]
    assert (bursts.max_connections, bursts.hold, bursts.duration) == (90, 0.12, 40)
    assert isinstance(bursts.load, OpenLoop)
    assert [bursts.load.rate_at(t) for t in (9.9, 10.0, 11.9, 12.0, 20.5, 35.0)] == [150, 450, 450, 150, 450, 150]
    stall = by_key["stall"]
    assert (stall.stall_at_s, stall.stall_for, stall.max_connections, stall.hold) == (10.0, 2.0, 60, 0.05)
    crowd = by_key["crowd"]  # issue 20: 500 environments on 25 slots
    assert (crowd.concurrency, crowd.max_connections, crowd.hold, crowd.duration) == (500, 25, 0.1, 20)
    seed = by_key["seed"]  # issue 20: the seed's announced load
    assert (seed.max_connections, seed.hold, seed.duration) == (90, 0.04, 40)
    assert isinstance(seed.load, OpenLoop)
    assert [seed.load.rate_at(t) for t in (9.9, 10.0, 11.9, 12.0, 20.5)] == [500, 1500, 1500, 500, 1500]
    # Issue 19: a 5 s outage on 40 slots, 200/s for 30 s; the drain waits for the restart's last waiters.
    last = by_key["lastwait"]
    assert (last.crash_time, last.down_for, last.max_connections, last.hold, last.duration) == (10.0, 5.0, 40, 0.02, 30)
    assert isinstance(last.load, OpenLoop) and last.load.rate == 200 and last.drain_limit == 12.0


def _lib_run(run: int, statements: float, attempts: float) -> RunResult:
    data: dict[str, Any] = {
        "strategy": "with_mysql",
        "errors": 0,
        "statements_per_invocation": statements,
        "overload": {
            "errors_after": 0,
            "time_to_clean_s": 0.0,
            "trigger_end_s": 32.0,
            "clean_at_s": 32,
            "metastable": False,
            "server_attempts_per_invocation": attempts,
            "client_attempts_per_invocation": attempts,
        },
    }
    return RunResult("with_mysql", "bursts", data=data, run=run)


def test_targets_use_the_worst_of_the_runs_for_numbers_outside_the_worst_run_key() -> None:
    # Three runs tie on the worst-run key (0 errors each): run 1 is reported, but run 2 has 1.3 statements and
    # run 3 has 4 connect attempts per invocation; both targets must be missed.
    runs = [_lib_run(1, 1.1, 0.1), _lib_run(2, 1.3, 0.2), _lib_run(3, 1.15, 4.0)]
    targets = {name: (met, text) for name, met, text in check_overload_targets(runs)}
    assert targets["bursts: 0 errors and <= 1.2 statements per invocation"][0] is False
    assert "1.30" in targets["bursts: 0 errors and <= 1.2 statements per invocation"][1]
    server = targets["<= 3 connect attempts per invocation in every scenario (server-counted)"]
    assert server[0] is False
    assert "bursts 4.00" in server[1]
    assert targets["bursts: not metastable (0 errors and the offered load served from 2 s after the trigger ends)"][0]


def test_p99_offered_counts_a_failure_as_slower_than_any_served_invocation() -> None:
    from bench.report import _offered
    from bench.scenarios import _p99_offered

    served = [float(ms) for ms in range(1, 991)]  # 990 served, 1 ms .. 990 ms
    assert _p99_offered(served, 0) == 981.0  # nearest rank: the 981st of 990
    # 10 failures of 1,000 fill exactly the slowest 1%: the p99 is the slowest served one.
    assert _p99_offered(served, 10) == 990.0
    # One more failure reaches into the p99 itself: it is a failure, whatever the served ones did.
    assert _p99_offered(served[:-1], 11) is None
    assert _p99_offered([], 3) is None

    def run(p99_offered: float | None) -> dict[str, Any]:
        return {"latency_ms": {"p99_offered": p99_offered}}

    assert _offered([run(120.0), run(310.0)]) == "310"
    assert _offered([run(120.0), run(None)]) == "failed"


def test_between_bursts_reads_the_connections_held_in_the_second_before_each_burst() -> None:
    from bench.report import between_bursts

    bursts = [{"start": 2.0, "end": 4.0, "label": "burst"}, {"start": 7.0, "end": 9.0, "label": "burst"}]

    def run(held: list[float | None], windows: list[dict[str, Any]]) -> dict[str, Any]:
        return {"overload": {"timeline": {"connections_max": held}, "windows": windows}}

    # Before the first burst 41 connections, then the fleet stays at the limit: 88 before the second burst.
    assert between_bursts(run([41, 41, 90, 90, 90, 89, 88, 90, 90, 60], bursts)) == 88
    assert between_bursts(run([41, 41, 90, 90, 70, 50, 45, 90, 90, 60], bursts)) == 45
    spike = [{"start": 7.0, "end": 8.0, "label": "spike"}]
    assert between_bursts(run([40.0] * 10, spike)) is None  # no burst, nothing between bursts
    assert between_bursts({"overload": {}}) is None
