"""The micro-benchmark's statistics (bench/micro.py): pure functions, no server."""

from __future__ import annotations

import pytest

from bench.micro import INVOCATION_TARGET, MIN_BATCHES, QUERY_TARGET, _compare, hot_path, spread


def test_spread_gives_median_quartiles_and_extremes() -> None:
    assert spread([5.0, 1.0, 3.0, 2.0, 4.0]) == {"median": 3.0, "q1": 2.0, "q3": 4.0, "min": 1.0, "max": 5.0}
    assert spread([7.0]) == {"median": 7.0, "q1": 7.0, "q3": 7.0, "min": 7.0, "max": 7.0}


def test_overhead_is_the_median_of_per_batch_ratios() -> None:
    # Batch 2 ran on a slow machine for both sides: paired ratios ignore it, a ratio of medians would not.
    raw = [100.0, 400.0, 100.0]
    lib = [104.0, 416.0, 110.0]
    result = _compare(raw, lib, QUERY_TARGET)
    assert result["overhead"]["median"] == pytest.approx(0.04)
    assert result["overhead"]["max"] == pytest.approx(0.10)
    assert result["met"] is True
    assert _compare(raw, [150.0, 600.0, 150.0], INVOCATION_TARGET)["met"] is False


def test_targets_are_the_issue_s() -> None:
    assert (QUERY_TARGET, INVOCATION_TARGET, MIN_BATCHES) == (0.05, 0.40, 15)


def test_fewer_batches_than_the_method_needs_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 15 batches"):
        hot_path(batches=MIN_BATCHES - 1)
