"""``python -m bench.queue_sim``: a discrete-event model of a fleet waiting for a full server's slots (issue 20).

No server, no threads: ``N`` environments, each with its own real :class:`~serverless_mysql.pressure.Pressure`
(its own rng, the model's clock passed in as ``now``), want ``S`` slots. Each invocation connects the way
:meth:`serverless_mysql._connect.Connector.open` does (the wait before the first attempt of an environment that has
just given its slot back, the paced retries, what the environment learns from the wait), holds its slot for a
service time (the connect, the handler's statement and the housekeeping: ``hold`` seconds, uniform +-30%) and gives
it back, as every environment does under pressure. A connect attempt is instantaneous: it takes a free slot or is
refused. What it reports per scenario: connect attempts per invocation (every attempt, as the server counts logins
+ refusals), the mean and p99 of the wait for a slot (from the start of the invocation), the slots' utilisation
(throughput against ``S / hold``) and, for a load that stops, how long its last waiters needed.

It answers "which waiting policy" cheaply; the benchmark (``python -m bench``) and the integration tests answer
"does it hold on a real server".
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from serverless_mysql.pressure import DOWN, FULL, WINDOW, Pressure

MakePolicy = Callable[[random.Random], Pressure]
KEEPERS = True  # an environment not under pressure keeps its connection (False: every invocation gives it back)


@dataclass(frozen=True)
class Case:
    """One model run: ``n`` environments on ``slots`` slots."""

    key: str
    n: int
    slots: int
    hold: float
    duration: float | None = None  # closed loop for this long (then the load stops), or
    invocations: int | None = None  # each environment invokes this many times back to back
    timeout: float = 30.0  # the Lambda timeout: a wait ends there (an error)
    warmup: float = 3.0  # closed loop: the first seconds are not counted
    connect: float = 0.0  # seconds a successful connect takes after the server accepted it (part of the hold)
    lag: float = 0.0  # a sleep overshoots by up to this (a starved host process wakes late)


CASES = {
    "test100": Case("test100", 100, 10, 0.2, invocations=3, timeout=10.0),  # the integration test, loaded machine
    "test100q": Case("test100q", 100, 10, 0.1, invocations=3, timeout=10.0),  # the same, quiet machine
    "oversub": Case("oversub", 300, 30, 0.11, duration=20.0),
    "crowd": Case("crowd", 500, 25, 0.11, duration=20.0),
    "crowd-slow": Case("crowd-slow", 500, 25, 0.2, duration=20.0),
    # A starved machine: each successful connect takes 50 ms, every sleep overshoots by up to 30 ms.
    "oversub-real": Case("oversub-real", 300, 30, 0.15, duration=20.0, connect=0.05, lag=0.03),
    "crowd-real": Case("crowd-real", 500, 25, 0.15, duration=20.0, connect=0.05, lag=0.03),
    "probe-real": Case("probe-real", 100, 10, 0.15, duration=20.0, connect=0.05, lag=0.03),
}


@dataclass
class _Env:
    pressure: Pressure
    left: int
    inv_start: float = 0.0
    started: float = 0.0
    gave_back_at: float = -math.inf
    attempt: int = 0
    previous: float = 0.0
    refused: int = 0
    wait_end: float = 0.0
    queued: bool = False
    waited: bool = False  # its connection was refused before it got its slot (until its first end())
    first: bool = False  # its connection has not seen an end() yet


@dataclass
class Result:
    """What one model run measured."""

    invocations: int = 0
    attempts: int = 0
    errors: int = 0
    waits: list[float] = field(default_factory=list)
    busy: float = 0.0  # slot-seconds held in the measured window
    window: float = 0.0
    drain: float = 0.0  # seconds from the end of the load to the last invocation's end

    def row(self, case: Case) -> dict[str, float]:
        """The summary numbers."""
        waits = sorted(self.waits) or [0.0]
        mean = statistics.fmean(waits)
        p99 = waits[min(len(waits) - 1, int(0.99 * len(waits)))]
        return {
            "inv": self.invocations,
            "att/inv": self.attempts / max(1, self.invocations),
            "mean": mean,
            "p99": p99,
            "p99/mean": p99 / mean if mean else 0.0,
            "max": waits[-1],
            "util": self.busy / (case.slots * self.window) if self.window else 0.0,
            "errors": self.errors,
            "drain": self.drain,
        }


def simulate(case: Case, make: MakePolicy, seed: int = 1) -> Result:
    """Run ``case`` with every environment's policy from ``make`` (given its own rng)."""
    rng = random.Random(seed)
    left = case.invocations if case.invocations is not None else 1 << 30
    envs = [_Env(make(random.Random(rng.random())), left) for _ in range(case.n)]
    free = case.slots
    out = Result()
    events: list[tuple[float, int, int, str]] = []
    seq = 0
    lo = case.warmup if case.duration is not None else 0.0
    hi = case.duration if case.duration is not None else math.inf
    last_end = 0.0
    refusals = 0  # the server's refusal counter, which a holder reads
    tries = 0  # the server's connect counter (logins and refusals)

    def at(when: float, i: int, what: str) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (when, seq, i, what))

    def start(i: int, now: float) -> None:
        env = envs[i]
        env.inv_start = env.started = now
        env.attempt, env.previous, env.refused = 0, 0.0, 0
        env.wait_end = now + case.timeout - 0.5
        p = env.pressure
        p.start_wait(now)
        env.queued = now - env.gave_back_at < WINDOW  # Connector.open: it gave its slot back a moment ago
        first = (p.first_wait() if isinstance(p, Turn) else p.queue_delay(now)) if env.queued else 0.0
        at(now + first + (rng.uniform(0.0, case.lag) if env.queued else 0.0), i, "attempt")

    for i in range(case.n):
        at(rng.uniform(0.0, 0.05), i, "start")
    while events:
        now, _, i, what = heapq.heappop(events)
        env = envs[i]
        if what == "start":
            start(i, now)
        elif what == "attempt":
            counted = lo <= env.inv_start < hi
            tries += 1
            if counted:
                out.attempts += 1
            if free > 0:
                free -= 1
                p = env.pressure
                env.waited = env.refused > 0
                env.first = True
                if isinstance(p, Turn):  # the wait until the attempt that got the slot began, not its handshake
                    p.learn_turn(now + case.connect, now - env.started, slept=env.queued, refused=env.refused > 0)
                else:  # Connector.open: the wait until connected
                    p.learn(now + case.connect, now + case.connect - env.started, refused_full=env.refused > 0)
                hold = case.hold * rng.uniform(0.7, 1.3)
                if counted:
                    out.waits.append(now - env.inv_start)
                    out.invocations += 1
                a, b = max(now, lo), min(now + hold, hi)
                out.busy += max(0.0, b - a)
                at(now + hold, i, "release")
                continue
            env.refused += 1
            refusals += 1
            p = env.pressure
            wanted = p.delay(FULL, env.attempt + 1, env.previous, now - env.started, left=env.wait_end - now)
            delay = p.next_wait(attempt=env.attempt, max_retries=10_000, now=now, delay=wanted, wait_end=env.wait_end)
            if delay is None:
                if counted:
                    out.errors += 1
                    out.invocations += 1
                env.gave_back_at = -math.inf
                _next(env, i, now, hi, at)
                continue
            env.attempt += 1
            env.previous = delay
            at(now + delay + rng.uniform(0.0, case.lag), i, "attempt")
        elif what == "free":  # a kept connection of an environment that is not invoked again: its idle timeout
            free += 1
        else:  # end(): it gives its slot back under pressure, else keeps it for its next invocation
            last_end = max(last_end, now)
            p = env.pressure
            if KEEPERS and not p.under_pressure(now):
                # _housekeeping_io: the counters are read at the first end() of a connection, after a wait for the
                # slot, else at most once a second while the server is busy; a refusal since the last fresh reading
                # means pressure, and so does the server still busy after a wait for the slot (here it always is),
                # or at a first end() without a fresh reading, with a herd after its own (here there always is one).
                if env.first or p.counters_due(now, waited=env.waited):
                    p.counters(
                        now,
                        refusals,
                        refusals,
                        busy=True,
                        waited=env.waited,
                        herd=env.first,
                        connects=tries,
                    )
                env.waited = env.first = False
                if not p.under_pressure(now):
                    env.left -= 1
                    if env.left > 0 and now < hi:  # its next invocation runs on the kept connection
                        hold = case.hold * rng.uniform(0.7, 1.3)
                        if lo <= now < hi:
                            out.waits.append(0.0)
                            out.invocations += 1
                        out.busy += max(0.0, min(now + hold, hi) - max(now, lo))
                        at(now + hold, i, "release")
                    else:
                        at(now + 3.0, i, "free")  # pressure_idle_timeout: the server closes it 3 s later
                    continue
            free += 1
            env.gave_back_at = now
            _next(env, i, now, hi, at)
    out.window = min(hi, last_end) - lo
    out.drain = max(0.0, last_end - hi) if case.duration is not None else last_end
    return out


def _next(env: _Env, i: int, now: float, hi: float, at: Callable[[float, int, str], None]) -> None:
    env.left -= 1
    if env.left > 0 and now < hi:
        at(now, i, "start")


def paced(rng: random.Random) -> Pressure:
    """The library's policy with the default options."""
    return Pressure(backoff=None, base=0.05, cap=1.0, rng=rng)


POLL_MEAN = 0.4
"""``Turn``'s polls after its turn (the library's aged rate when ``Turn`` was tried)."""


class Turn(Pressure):
    """The idea tried for issue 20 (better in this model, worse on a real server): sleep until its turn, then poll.

    A connect first sleeps ``turn`` times the wait its previous connect needed (at most ``most`` seconds), then
    polls every ``POLL_MEAN * cap`` on average, the same rate for every waiter (``pace`` > 0 instead polls every
    ``pace`` times its learned wait: the waiters that learned short waits then win). A connect that slept and got
    in at once learns that sleep, shortened by ``turn`` once more for each such connect in a row when ``streak``.
    """

    __slots__ = ("most", "pace", "slept_streak", "streak", "turn")

    def __init__(
        self, rng: random.Random, *, turn: float = 0.9, most: float = 4.0, pace: float = 0.0, streak: bool = True
    ) -> None:
        super().__init__(backoff=None, base=0.05, cap=1.0, rng=rng)
        self.turn, self.most, self.pace, self.streak = turn, most, pace, streak
        self.slept_streak = 0

    def turn_at(self) -> float:
        """Seconds into a connect at which it polls: ``turn`` of its previous wait, capped (0: none learned)."""
        return min(self.turn * self.learned_wait, self.most)

    def first_wait(self) -> float:
        """The sleep before the first attempt of an environment that has just given its slot back."""
        at = self.turn_at()
        return max(self.base, at * self.rng.uniform(0.95, 1.05)) if at > 0 else self._paced(0.0, None, 0.0)

    def delay(
        self,
        kind: str,
        attempt: int,
        previous: float,
        waited: float,
        *,
        read_only: bool = False,
        left: float | None = None,
    ) -> float:
        """Until its turn, then the aged rate (or ``pace`` times its learned wait)."""
        at = self.turn_at()
        if kind == DOWN or at <= 0:
            kind_ = FULL if kind == FULL else DOWN
            return super().delay(kind_, attempt, previous, waited, read_only=read_only, left=left)
        if waited < 0.95 * at:
            return max(self.base, (at - waited) * self.rng.uniform(0.95, 1.05))
        mean = min(0.5, self.pace * self.learned_wait) if self.pace else POLL_MEAN * self.cap
        return max(self.base, self.rng.uniform(0.5, 1.5) * mean)

    def learn_turn(self, now: float, waited: float, *, slept: bool, refused: bool) -> None:
        """What a connect that got its slot after ``waited`` seconds teaches the next one."""
        self.learned_at = now
        if refused or not slept:
            self.slept_streak = 0
            self.learned_wait = waited if refused else 0.0
            return
        self.slept_streak += 1
        self.learned_wait = waited * (self.turn ** (self.slept_streak - 1) if self.streak else 1.0)


POLICIES: dict[str, MakePolicy] = {
    "library": paced,
    "turn": Turn,
    "turn-nostreak": lambda rng: Turn(rng, streak=False),
    "turn-0.8": lambda rng: Turn(rng, turn=0.8),
    "turn-own-pace": lambda rng: Turn(rng, pace=0.15, streak=False),
}


def main(argv: list[str] | None = None) -> None:
    """Print one row per (policy, case, seed)."""
    parser = argparse.ArgumentParser(prog="python -m bench.queue_sim", description=__doc__)
    parser.add_argument("--cases", nargs="+", default=["test100", "oversub", "crowd"], choices=sorted(CASES))
    parser.add_argument("--policies", nargs="+", default=["library", "turn"], choices=sorted(POLICIES))
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    cols = ["inv", "att/inv", "mean", "p99", "p99/mean", "max", "util", "errors", "drain"]
    print(f"{'policy':<12} {'case':<11} {'seed':>4} " + " ".join(f"{c:>8}" for c in cols))
    for name in args.policies:
        for key in args.cases:
            for seed in range(1, args.seeds + 1):
                row = simulate(CASES[key], POLICIES[name], seed).row(CASES[key])
                cells = " ".join(f"{row[c]:>8.2f}" if isinstance(row[c], float) else f"{row[c]:>8}" for c in cols)
                print(f"{name:<12} {key:<11} {seed:>4} {cells}")


if __name__ == "__main__":
    main()
