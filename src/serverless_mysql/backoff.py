"""Jittered backoff strategies and a retry budget bounded by attempts and by time.

The formulas are AWS's "Exponential Backoff And Jitter"
(https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/), with delays in seconds:

- full jitter: ``uniform(0, min(cap, base * 2**attempt))``
- decorrelated jitter: ``min(cap, uniform(base, 3 * previous))`` with ``previous`` seeded with ``base``

``attempt`` counts retries of one loop, starting at 1; each loop starts afresh, so one exhausted loop never
shortens the next (serverless-mysql keeps its counter across calls and then retries zero times).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # Backoff is a Protocol for type checkers, a plain base class at runtime (no typing)

__all__ = ["Backoff", "BackoffFn", "DecorrelatedJitter", "FullJitter", "RetryBudget", "make_backoff"]

BackoffFn = Callable[[int, float], float]
"""A custom strategy: ``(attempt, previous_delay) -> delay`` in seconds."""


class Backoff(Protocol):
    """A backoff strategy: the delay before retry number ``attempt`` (1-based), given the previous delay."""

    @property
    def name(self) -> str:
        """``"full"``, ``"decorrelated"`` or ``"custom"``, as passed to ``on_retry``."""
        ...

    def __call__(self, attempt: int, previous: float) -> float:
        """Return the delay in seconds before retry ``attempt``."""
        ...


# NOTE: plain classes with __slots__, not dataclasses: generating four dataclasses cost ~2.5 ms of import time.
class _Jitter:
    __slots__ = ("base", "cap", "rng")

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base={self.base!r}, cap={self.cap!r})"


class FullJitter(_Jitter):
    """AWS Full Jitter: ``uniform(0, min(cap, base * 2**attempt))``."""

    __slots__ = ()
    name = "full"

    def __call__(self, attempt: int, previous: float) -> float:
        """Return the delay in seconds before retry ``attempt``."""
        # 2**attempt overflows floats past ~1000 retries; the cap has long been reached by then.
        ceiling = self.cap if attempt > 60 else min(self.cap, self.base * 2**attempt)
        return self.rng.uniform(0.0, ceiling)


class DecorrelatedJitter(_Jitter):
    """AWS Decorrelated Jitter: ``min(cap, uniform(base, 3 * previous))``, the first ``previous`` being ``base``."""

    __slots__ = ()
    name = "decorrelated"

    def __call__(self, attempt: int, previous: float) -> float:
        """Return the delay in seconds before retry ``attempt``."""
        prev = previous if previous >= self.base else self.base
        return min(self.cap, self.rng.uniform(self.base, 3.0 * prev))


class CustomBackoff:
    """A user's ``(attempt, previous_delay) -> delay`` callable, with its result checked."""

    __slots__ = ("fn",)
    name = "custom"

    def __init__(self, fn: BackoffFn) -> None:
        self.fn = fn

    def __call__(self, attempt: int, previous: float) -> float:
        """Return the user's delay, checked to be a finite number of seconds >= 0."""
        delay = self.fn(attempt, previous)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not math.isfinite(delay) or delay < 0:
            raise ValueError(f"custom backoff returned {delay!r}; it must return a finite number of seconds >= 0")
        return float(delay)

    def __repr__(self) -> str:
        return f"CustomBackoff({self.fn!r})"


def make_backoff(spec: str | BackoffFn, *, base: float, cap: float, rng: random.Random | None = None) -> Backoff:
    """Build a strategy from an option value: ``"full"``, ``"decorrelated"`` or a callable."""
    rng = rng or random.Random()
    if spec == "full":
        return FullJitter(base, cap, rng)
    if spec == "decorrelated":
        return DecorrelatedJitter(base, cap, rng)
    if callable(spec):
        return CustomBackoff(spec)
    raise ValueError(f"unknown backoff {spec!r}; expected 'full', 'decorrelated' or a callable")


class RetryBudget:
    """Counts the retries of one loop and bounds them by number and by a monotonic deadline.

    ``next_delay()`` returns the delay before the next retry, or ``None`` when the loop must stop: either the
    count is spent, or sleeping would reach the deadline (the delay is never cut short to squeeze in a last
    attempt that would have no time to run).
    """

    __slots__ = ("attempt", "clock", "deadline", "max_retries", "previous", "strategy")

    def __init__(
        self,
        strategy: Backoff,
        max_retries: int,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.strategy = strategy
        self.max_retries = max_retries
        self.deadline = deadline
        self.clock = clock
        self.attempt = 0
        self.previous = 0.0

    def next_delay(self) -> float | None:
        """The delay before the next retry, or ``None`` if the count or the time budget is spent."""
        if self.attempt >= self.max_retries:
            return None
        delay = self.strategy(self.attempt + 1, self.previous)
        if self.deadline is not None and self.clock() + delay >= self.deadline:
            return None
        self.attempt += 1
        self.previous = delay
        return delay
