"""Pure analysis of the overload scenarios: per-second timelines, trigger windows, time to clean service, worst run.

Nothing here touches a server or a clock; ``tests/unit/test_bench_overload.py`` checks the rules.

Definitions (docs/overload.md and ``bench/RESULTS.md`` repeat them):

* **Seconds** are buckets ``[k, k + 1)`` of time since the start of the load. *ok* counts invocations by the second
  they **completed**; *offered* load and *errors* by the second they **arrived** (an invocation that arrived in the
  spike and fails 30 s later is damage done by the spike, not a failure to serve what arrives later; the charts
  also show errors by completion). Invocations still running when the run gives up waiting count as errors.
* A **trigger** is a time window: the spike, the outage (crash until the server accepts connections again), the
  KILL storm (first KILL until the last), the stall (SIGSTOP until SIGCONT), each burst.
* **Errors during** a trigger: failed invocations that arrived inside ``[start, end + 2 s)`` of any trigger;
  **errors after**: the ones that arrived later than that (from 2 s after the end of the last trigger, or
  between two triggers' windows); **errors before**: arrived before the first trigger started.
* **Clean service from second s**: no invocation that arrived in a second ``k >= s`` failed, and every whole
  second ``s <= k < floor(duration)`` has ``ok[k] >= 0.9 * offered[k]``. The **time to
  clean service** is ``s - end of the last trigger`` for the first whole second ``s >= end`` from which service is
  clean; ``None`` ("never") when there is no such second with at least one whole second of load left.
* **Metastable** (the issue's "Done when"): not clean from ``ceil(end + 2 s)`` on.
* **Worst run** of several: the most errors after the trigger, then the most errors in total, then the longest
  time to clean service ("never" is longest).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "AFTER_MARGIN_S",
    "CLEAN_OK_FRACTION",
    "Window",
    "bucket",
    "clean_from",
    "counter_per_second",
    "error_split",
    "is_metastable",
    "max_per_second",
    "worst_index",
]

AFTER_MARGIN_S = 2.0  # the "from 2 s after its trigger ends"
CLEAN_OK_FRACTION = 0.9  # ok >= 90% of the arrivals of the same second: Poisson noise of a second stays inside it


@dataclass(frozen=True)
class Window:
    """A trigger: ``start`` and ``end`` in seconds since the start of the load."""

    start: float
    end: float
    label: str = ""


def bucket(times: Iterable[float], seconds: int) -> list[int]:
    """How many of ``times`` (seconds since the start) fall in each second ``[k, k + 1)``, ``0 <= k < seconds``;
    times outside are dropped."""
    out = [0] * seconds
    for t in times:
        k = math.floor(t)
        if 0 <= k < seconds:
            out[k] += 1
    return out


def max_per_second(samples: Iterable[tuple[float, int | None]], seconds: int) -> list[int | None]:
    """The largest sampled value in each second (``None`` where no sample was taken or all failed)."""
    out: list[int | None] = [None] * seconds
    for t, value in samples:
        k = math.floor(t)
        if value is None or not 0 <= k < seconds:
            continue
        current = out[k]
        out[k] = value if current is None else max(current, value)
    return out


def counter_per_second(snapshots: Sequence[tuple[float, float]], seconds: int) -> list[float | None]:
    """Per-second increments of a cumulative counter read at irregular times ``(t, total)``.

    The increment between two readings goes to the second of their midpoint (readings every second at ``k + 0.01``
    give second ``k`` what happened in it); a second that no midpoint falls in (the server was down, or the host
    process was stopped, so the readings around it are further apart) is ``None``. The first reading is the
    baseline.
    """
    out: list[float | None] = [None] * seconds
    for (t0, before), (t1, after) in itertools.pairwise(snapshots):
        k = min(max(math.floor((t0 + t1) / 2), 0), seconds - 1) if seconds else -1
        if k < 0:
            continue
        out[k] = (out[k] or 0.0) + max(0.0, after - before)
    return out


def error_split(error_times: Iterable[float], windows: Sequence[Window]) -> tuple[int, int, int]:
    """``(before, during, after)`` counts of failed invocations by their (arrival) time (see the module docstring).

    Without a trigger every error is "after": the scenario is the overload itself (oversubscription).
    """
    if not windows:
        return 0, 0, sum(1 for _ in error_times)
    first = min(w.start for w in windows)
    before = during = after = 0
    for t in error_times:
        if t < first:
            before += 1
        elif any(w.start <= t < w.end + AFTER_MARGIN_S for w in windows):
            during += 1
        else:
            after += 1
    return before, during, after


def clean_from(
    ok: Sequence[int],
    errors: Sequence[int],
    offered: Sequence[int],
    trigger_end: float,
    duration: float,
    *,
    fraction: float = CLEAN_OK_FRACTION,
) -> int | None:
    """The first whole second ``s >= trigger_end`` from which service is clean (module docstring), or None.

    ``errors`` are failed invocations per second of arrival; ``ok`` (per second of completion) and ``offered`` are
    only compared on whole seconds of load, ``[s, floor(duration))``.
    """
    full = math.floor(duration)
    first = math.ceil(trigger_end)
    # Walk backwards once: the latest second that breaks the rule bounds every candidate.
    last_bad = -1
    for k in range(len(errors) - 1, -1, -1):
        if errors[k] > 0:
            last_bad = k
            break
    for k in range(min(full, len(ok), len(offered)) - 1, last_bad, -1):
        if ok[k] < fraction * offered[k]:
            last_bad = max(last_bad, k)
            break
    s = max(first, last_bad + 1)
    return s if s <= full - 1 else None


def is_metastable(clean_second: int | None, trigger_end: float) -> bool:
    """True when service is not clean from ``ceil(trigger_end + 2 s)`` on (the issue's metastability test)."""
    return clean_second is None or clean_second > math.ceil(trigger_end + AFTER_MARGIN_S)


def worst_index(runs: Sequence[tuple[int | None, int, float | None]]) -> int:
    """Index of the worst of ``(errors_after, errors_total, time_to_clean)`` runs: most errors after the trigger,
    then most errors in total, then the longest time to clean service (None = never = longest). Ties: the first."""
    if not runs:
        raise ValueError("no runs")

    def key(i: int) -> tuple[int, int, float]:
        after, total, ttc = runs[i]
        return (after or 0, total, math.inf if ttc is None else ttc)

    return max(range(len(runs)), key=lambda i: (key(i), -i))
