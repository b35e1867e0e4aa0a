"""The failover scenarios' judgement (bench/failover_report.py): worst run, issue 17's targets, the timeline table."""

from __future__ import annotations

from typing import Any

from bench.failover import failover_scenarios
from bench.failover_report import check_failover_targets, reported_failover, timeline_markdown
from bench.scenarios import RunResult


def _run(
    scenario: str,
    run: int = 1,
    *,
    strategy: str = "with_mysql",
    errors: dict[str, int] | None = None,
    after: int = 0,
    late: int = 0,
    lost: int = 0,
    doubled: int = 0,
    ttc: float | None = 1.0,
    stray: int | None = 0,
) -> RunResult:
    codes = errors or {}
    failover: dict[str, Any] = {
        "errors_before": 0,
        "errors_during": sum(codes.values()) - after,
        "errors_after": after,
        "errors_from_2s_after_switch": late,
        "errors_not_in_flight": stray if scenario == "failover-crash" else None,
        "errors_not_in_flight_by_code": {},
        "lost": lost,
        "doubled": doubled,
        "time_to_clean_s": ttc,
        "clean_at_s": None if ttc is None else 15 + ttc,
        "failover_at_s": 10.0,
        "switch_at_s": 15.0,
        "timeline": {
            "ok": [200] * 20,
            "errors_by_arrival": [0] * 20,
            "busy_envs_max": [5] * 20,
            "client_cpu": [0.5] * 20,
            "forwarder_cpu": [0.1] * 20,
            "servers_cpu": [0.25] * 20,
        },
    }
    data = {"strategy": strategy, "errors": sum(codes.values()), "errors_by_code": codes, "failover": failover}
    return RunResult(strategy, scenario, data=data, run=run)


def test_the_worst_library_run_is_reported() -> None:
    runs = [
        _run("failover-demote", 1),
        _run("failover-demote", 2, errors={"x": 3}, after=3),
        _run("failover-demote", 3),
    ]
    rows, by_strategy = reported_failover(runs, "failover-demote")
    assert [r.run for r in rows] == [2]
    assert len(by_strategy["with_mysql"]) == 3


def test_demotion_target_needs_no_error_no_loss_and_clean_within_two_seconds() -> None:
    assert check_failover_targets([_run("failover-demote")])[0][1] is True
    for bad in (
        _run("failover-demote", errors={"1290": 1}),
        _run("failover-demote", lost=1),
        _run("failover-demote", doubled=1),
        _run("failover-demote", ttc=2.5),
        _run("failover-demote", ttc=None),
    ):
        assert check_failover_targets([_run("failover-demote"), bad])[0][1] is False


def test_crash_target_allows_only_in_flight_connection_losses() -> None:
    lost_in_flight = {"ConnectionLostError<-2013 CR_SERVER_LOST": 2}
    assert check_failover_targets([_run("failover-crash", errors=lost_in_flight)])[0][1] is True
    for bad in (
        _run("failover-crash", errors=lost_in_flight, stray=1),
        _run("failover-crash", errors={"Unfinished": 1}),
        _run("failover-crash", errors=lost_in_flight, late=1),
        _run("failover-crash", doubled=1),
        _run("failover-crash", lost=1),
    ):
        assert check_failover_targets([bad])[0][1] is False


def test_peers_are_not_judged() -> None:
    assert check_failover_targets([_run("failover-demote", strategy="npm-serverless-mysql", lost=5)]) == []


def test_timeline_marks_the_failover_and_the_switch() -> None:
    text = timeline_markdown([_run("failover-demote")], 10.0, 15.0)
    assert "| 10 failover | 200 / 0 / 5 / 0.5-0.1-0.2 |" in text
    assert "| 15 switch |" in text


def test_scenarios_follow_the_issue() -> None:
    full = {s.key: s for s in failover_scenarios(quick=False)}
    assert set(full) == {"failover-demote", "failover-crash"}
    for sc in full.values():
        assert (sc.failover_at_s, sc.switch_at_s, sc.timeout, sc.duration) == (10.0, 15.0, 30.0, 30.0)
        assert sc.load.rate == 200  # type: ignore[union-attr]
