from __future__ import annotations

import random

import pytest

from serverless_mysql.backoff import CustomBackoff, DecorrelatedJitter, FullJitter, RetryBudget, make_backoff


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_full_jitter_bounds_grow_then_cap() -> None:
    strategy = FullJitter(base=0.002, cap=0.1, rng=random.Random(1))
    for attempt in range(1, 12):
        ceiling = min(0.1, 0.002 * 2**attempt)
        draws = [strategy(attempt, 0.0) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling * 0.8  # the whole range is used, not a constant


def test_full_jitter_survives_huge_attempts() -> None:
    assert 0 <= FullJitter(0.002, 0.1, random.Random(0))(5000, 0.0) <= 0.1


def test_decorrelated_first_delay_starts_from_base() -> None:
    # serverless-mysql seeds with 0 and returns base - 1 on the first retry; AWS seeds with base.
    strategy = DecorrelatedJitter(base=0.002, cap=0.1, rng=random.Random(2))
    firsts = [strategy(1, 0.0) for _ in range(200)]
    assert all(0.002 <= d <= 0.006 for d in firsts)
    assert len({round(d, 6) for d in firsts}) > 50


def test_decorrelated_grows_from_previous_and_caps() -> None:
    strategy = DecorrelatedJitter(base=0.002, cap=0.1, rng=random.Random(3))
    previous = 0.0
    seen = []
    for attempt in range(1, 30):
        delay = strategy(attempt, previous)
        assert 0.002 <= delay <= min(0.1, 3 * max(previous, 0.002))
        previous = delay
        seen.append(delay)
    assert max(seen) > 0.05


def test_custom_backoff_gets_attempt_and_previous_and_is_checked() -> None:
    calls: list[tuple[int, float]] = []

    def fn(attempt: int, previous: float) -> float:
        calls.append((attempt, previous))
        return 0.01 * attempt

    budget = RetryBudget(make_backoff(fn, base=0.002, cap=0.1), max_retries=3)
    assert [budget.next_delay() for _ in range(4)] == [0.01, 0.02, pytest.approx(0.03), None]
    assert calls == [(1, 0.0), (2, 0.01), (3, 0.02)]
    with pytest.raises(ValueError, match="custom backoff returned -1"):
        CustomBackoff(lambda a, p: -1)(1, 0.0)
    with pytest.raises(ValueError, match="nan"):
        CustomBackoff(lambda a, p: float("nan"))(1, 0.0)


def test_make_backoff_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="decorrelated-jitter"):
        make_backoff("decorrelated-jitter", base=0.002, cap=0.1)


def test_budget_is_bounded_by_count() -> None:
    budget = RetryBudget(FullJitter(0.002, 0.1, random.Random(4)), max_retries=5)
    delays = [budget.next_delay() for _ in range(10)]
    assert sum(d is not None for d in delays) == 5
    assert delays[5:] == [None] * 5


def test_budget_is_bounded_by_deadline_without_oversleeping() -> None:
    clock = FakeClock()
    budget = RetryBudget(
        make_backoff(lambda a, p: 0.4, base=0.002, cap=0.1), max_retries=50, deadline=101.0, clock=clock
    )
    assert budget.next_delay() == 0.4
    clock.now += 0.4
    assert budget.next_delay() == 0.4
    clock.now += 0.4
    assert budget.next_delay() is None  # 100.8 + 0.4 would pass the deadline: stop instead of sleeping
    assert budget.attempt == 2
    clock.now = 101.0
    assert budget.next_delay() is None and budget.attempt == 2  # at the deadline: no retry at all


def test_each_loop_starts_with_a_full_budget() -> None:
    strategy = FullJitter(0.002, 0.1, random.Random(5))
    for _ in range(3):
        budget = RetryBudget(strategy, max_retries=4)
        assert sum(budget.next_delay() is not None for _ in range(6)) == 4
