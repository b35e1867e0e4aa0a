"""bench.queue_sim: the discrete-event model of a fleet waiting for a full server's slots (issue 20)."""

from __future__ import annotations

from bench import queue_sim


def run(policy: str, key: str, seed: int = 1) -> dict[str, float]:
    case = queue_sim.CASES[key]
    return queue_sim.simulate(case, queue_sim.POLICIES[policy], seed=seed).row(case)


def test_the_model_drives_the_library_policy_and_shows_issue_20() -> None:
    # 500 environments on 25 slots on a starved machine: the library's waits, which grow with the wait, cost fewer
    # attempts per invocation than the shrinking waits before them (3.4 here) but leave a longer tail, as the
    # benchmark measured (2.24-2.29 attempts, p99 4.6-4.7x the mean; before: 2.74-2.87 and about 3x).
    row = run("library", "crowd-real")
    assert row["errors"] == 0 and row["util"] > 0.9, row
    assert 2.2 < row["att/inv"] < 3.0 and row["p99/mean"] > 3.5, row


def test_in_the_model_sleeping_until_its_turn_halves_the_attempts_and_the_tail() -> None:
    # The idea tried: what the model promises (a real server did not confirm it: docs/overload-log.md, issue 20).
    row = run("turn", "crowd-real")
    assert row["errors"] == 0 and row["util"] > 0.9, row
    assert row["att/inv"] < 2.2 and row["p99/mean"] < 2.0, row


def test_a_run_is_deterministic_and_counts_every_invocation_of_a_bounded_load() -> None:
    assert run("library", "test100", seed=3) == run("library", "test100", seed=3)
    assert run("library", "test100")["inv"] == 300  # 100 environments x 3 invocations
