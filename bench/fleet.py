"""The simulated Lambda service: environments, warm reuse, cold starts, freezing and silent destruction.

Model (the parts of Lambda that matter to database connections):

* An **environment** runs one invocation at a time and owns its own client (module scope of one Lambda
  container). Between invocations it is *frozen*: not scheduled at all, its connection just sleeps on the server.
* For each invocation the scheduler takes the most recently used idle environment (warm start); if none is idle
  it cold-starts a new one, up to ``concurrency``; beyond that the invocation waits in a FIFO queue.
* An environment idle longer than its time-to-live (drawn per environment) is **destroyed without any cleanup**:
  its client is kept referenced (so no socket is closed, not even by garbage collection) and never used again;
  on the server its connection stays open as a zombie, exactly like a vanished Lambda container.
* An invocation that runs past ``timeout`` counts as ``Lambda.Timeout`` and its environment is discarded (Lambda
  resets an environment after a timeout).

Latency is end-to-end: from the invocation's scheduled arrival to its completion, so queueing for an environment
and cold starts count. Load is either open-loop (arrivals at a given rate, independent of completions) or
closed-loop (``callers`` clients that each invoke again as soon as their previous invocation returns, after a
pause when it failed). Every loop here is bounded in time and stops by itself.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "ClosedLoop",
    "Env",
    "FakeContext",
    "Fleet",
    "Invocation",
    "LoadGen",
    "OpenLoop",
    "Strategy",
]


class FakeContext:
    """A Lambda context whose remaining time really counts down from the function timeout."""

    function_name = "bench-fleet"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-fleet"
    log_group_name = "/aws/lambda/bench-fleet"
    log_stream_name = "bench"

    def __init__(self, timeout: float, *, deadline: float | None = None) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.deadline = deadline if deadline is not None else time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class Env(Protocol):
    """One simulated execution environment (one Lambda container) of a strategy."""

    def invoke(self, event: dict[str, Any], context: FakeContext) -> None:
        """Run the handler once; raise on failure."""

    def thread_id(self) -> int | None:
        """Server thread id of the connection this environment holds open, if any (for zombie accounting)."""

    def destroy(self) -> None:
        """The environment vanishes: no cleanup, no close; its connection (if any) stays open on the server."""

    def reset(self) -> None:
        """Lambda killed the runtime after a timeout: the kernel closes its sockets (no COM_QUIT, no zombie)."""


class Strategy(Protocol):
    """A way of talking to the database from Lambda; creates one :class:`Env` per cold start."""

    name: str

    def new_env(self, env_id: int) -> Env:
        """Cold start: the module-scope initialisation of one new environment."""

    def error_key(self, exc: BaseException) -> str:
        """Short, stable name of an invocation error, e.g. ``1040 ER_CON_COUNT_ERROR``."""

    def live_thread_ids(self, envs: Sequence[Env]) -> set[int]:
        """Thread ids of the connections held by live environments."""

    def close(self) -> None:
        """End of a run: close every connection this strategy ever opened (live and destroyed environments)."""


@dataclass
class Invocation:
    """One invocation and what happened to it (times are ``time.monotonic()``)."""

    arrival: float
    caller: int | None = None
    start: float = 0.0
    end: float = 0.0
    ok: bool = False
    error: str | None = None
    env_id: int = -1
    cold: bool = False
    payload: dict[str, Any] | None = None  # the event it ran (kept when the fleet's event is a function)

    @property
    def latency(self) -> float:
        return self.end - self.arrival


@dataclass
class _Slot:
    env_id: int
    ttl: float
    env: Env | None = None
    idle_since: float = 0.0


@dataclass
class FleetCounters:
    cold_starts: int = 0
    warm_starts: int = 0
    destroyed_idle: int = 0
    destroyed_timeout: int = 0
    queued: int = 0
    peak_envs: int = 0
    peak_busy: int = 0  # environments running an invocation at once: the Lambda concurrency the fleet used
    init_errors: int = 0


class Fleet:
    """Schedules invocations onto environments of one strategy (thread-based: one thread per busy environment)."""

    def __init__(
        self,
        strategy: Strategy,
        *,
        event: dict[str, Any] | Callable[[], dict[str, Any]],
        concurrency: int,
        idle_ttl: tuple[float, float],
        timeout: float,
        rng: random.Random,
        on_done: Callable[[Invocation], None] | None = None,
    ) -> None:
        self.strategy = strategy
        self.event = event
        self.concurrency = concurrency
        self.idle_ttl = idle_ttl
        self.timeout = timeout
        self.rng = rng
        self.on_done = on_done
        self.counters = FleetCounters()
        self.invocations: list[Invocation] = []
        self._lock = threading.Lock()
        self._idle: list[_Slot] = []  # most recently used last
        self._busy: set[int] = set()
        self._live: dict[int, _Slot] = {}
        self._pending: deque[Invocation] = deque()
        self._destroyed: list[Env] = []
        self._ids = itertools.count(1)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="env")
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="reaper", daemon=True)
        self._reaper.start()
        self._inflight = 0
        self._drained = threading.Condition(self._lock)

    # ---- scheduling --------------------------------------------------------------------------------------------

    def submit(self, inv: Invocation) -> None:
        """An invocation arrives: warm start, cold start, or wait for a free environment."""
        if self._stop.is_set():
            return
        with self._lock:
            self._inflight += 1
            self.invocations.append(inv)
            if self._idle:
                slot = self._idle.pop()
                self._busy.add(slot.env_id)
                self.counters.warm_starts += 1
                self.counters.peak_busy = max(self.counters.peak_busy, len(self._busy))
            elif len(self._live) < self.concurrency:
                slot = _Slot(env_id=next(self._ids), ttl=self.rng.uniform(*self.idle_ttl))
                self._live[slot.env_id] = slot
                self._busy.add(slot.env_id)
                self.counters.cold_starts += 1
                self.counters.peak_envs = max(self.counters.peak_envs, len(self._live))
                self.counters.peak_busy = max(self.counters.peak_busy, len(self._busy))
                inv.cold = True
            else:
                self._pending.append(inv)
                self.counters.queued += 1
                return
        self._pool.submit(self._run, slot, inv)

    def _run(self, slot: _Slot, inv: Invocation) -> None:
        while True:
            keep = self._run_one(slot, inv)
            with self._lock:
                self._inflight -= 1
                if not keep:
                    self._live.pop(slot.env_id, None)
                    self._busy.discard(slot.env_id)
                    if self._pending and len(self._live) < self.concurrency:
                        inv = self._pending.popleft()
                        slot = _Slot(env_id=next(self._ids), ttl=self.rng.uniform(*self.idle_ttl))
                        self._live[slot.env_id] = slot
                        self._busy.add(slot.env_id)
                        self.counters.cold_starts += 1
                        inv.cold = True
                        continue
                elif self._pending:
                    inv = self._pending.popleft()
                    self.counters.warm_starts += 1
                    continue
                else:
                    slot.idle_since = time.monotonic()
                    self._busy.discard(slot.env_id)
                    self._idle.append(slot)
                if self._inflight == 0:
                    self._drained.notify_all()
                return

    def _run_one(self, slot: _Slot, inv: Invocation) -> bool:
        """Run ``inv`` on ``slot``; False when the environment must be thrown away."""
        inv.env_id = slot.env_id
        inv.start = time.monotonic()
        keep = True
        if slot.env is None:
            try:
                slot.env = self.strategy.new_env(slot.env_id)
            except Exception as exc:  # an init failure: Lambda retries init in a new environment
                inv.end = time.monotonic()
                inv.error = "Init." + self.strategy.error_key(exc)
                self.counters.init_errors += 1
                self._finish(inv)
                return False
        context = FakeContext(self.timeout)
        event = self.event() if callable(self.event) else self.event
        if callable(self.event):
            inv.payload = event
        try:
            slot.env.invoke(event, context)
            inv.ok = True
        except Exception as exc:
            inv.error = self.strategy.error_key(exc)
        inv.end = time.monotonic()
        if inv.end - inv.start > self.timeout:
            inv.ok = False
            inv.error = "Lambda.Timeout"
            self.counters.destroyed_timeout += 1
            keep = False
            slot.env.reset()
            with self._lock:
                self._destroyed.append(slot.env)
        self._finish(inv)
        return keep

    def _finish(self, inv: Invocation) -> None:
        if self.on_done is not None:
            self.on_done(inv)

    # ---- destruction of idle environments ----------------------------------------------------------------------

    def _reap_loop(self) -> None:
        while not self._stop.wait(0.1):
            now = time.monotonic()
            doomed: list[_Slot] = []
            with self._lock:
                keep: list[_Slot] = []
                for slot in self._idle:
                    (doomed if now - slot.idle_since > slot.ttl else keep).append(slot)
                if doomed:
                    self._idle = keep
                    for slot in doomed:
                        self._live.pop(slot.env_id, None)
                        self.counters.destroyed_idle += 1
            for slot in doomed:
                if slot.env is not None:
                    slot.env.destroy()
                    with self._lock:
                        self._destroyed.append(slot.env)

    # ---- end of a run ------------------------------------------------------------------------------------------

    def drain(self, timeout: float) -> bool:
        """Wait until no invocation is queued or running (at most ``timeout`` s); True if drained."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._inflight > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._drained.wait(left)
            return True

    def live_envs(self) -> list[Env]:
        with self._lock:
            return [s.env for s in self._live.values() if s.env is not None]

    def live_count(self) -> int:
        with self._lock:
            return len(self._live)

    def busy_count(self) -> int:
        """Environments running an invocation now (Lambda's concurrent executions)."""
        with self._lock:
            return len(self._busy)

    def shutdown(self) -> None:
        """Stop the reaper and the worker threads (after :meth:`drain`); connections are closed by the strategy."""
        self._stop.set()
        self._reaper.join(5)
        with self._lock:
            self._pending.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)


# ---- load generators --------------------------------------------------------------------------------------------


@dataclass
class OpenLoop:
    """Poisson arrivals at ``rate`` per second, raised to ``burst_rate`` for ``burst_len`` s every ``burst_every`` s,
    and to ``spike_rate`` once for ``spike_len`` s from ``spike_at`` s."""

    rate: float
    burst_rate: float = 0.0
    burst_every: float = 0.0
    burst_len: float = 0.0
    burst_offset: float = 0.0
    spike_rate: float = 0.0
    spike_at: float = 0.0
    spike_len: float = 0.0

    def rate_at(self, t: float) -> float:
        if self.spike_len > 0 and self.spike_at <= t < self.spike_at + self.spike_len:
            return self.spike_rate
        in_burst = self.burst_every > 0 and t >= self.burst_offset
        if in_burst and (t - self.burst_offset) % self.burst_every < self.burst_len:
            return self.burst_rate
        return self.rate

    def mean_rate(self, duration: float) -> float:
        steps = max(1, int(duration * 100))
        return sum(self.rate_at(i / 100) for i in range(steps)) / steps


@dataclass
class ClosedLoop:
    """``callers`` clients invoking back to back; after a failed invocation a caller pauses ``error_pause`` s."""

    callers: int
    error_pause: float = 0.1


@dataclass(order=True)
class _Due:
    when: float
    seq: int
    caller: int | None = field(compare=False, default=None)


class LoadGen:
    """Feeds a :class:`Fleet` for ``duration`` seconds from an open- or closed-loop load; one thread, bounded."""

    def __init__(
        self, fleet: Fleet, load: OpenLoop | ClosedLoop, *, duration: float, rng: random.Random, max_invocations: int
    ) -> None:
        self.fleet = fleet
        self.load = load
        self.duration = duration
        self.rng = rng
        self.max_invocations = max_invocations
        self.t0 = 0.0
        self.submitted = 0
        self._heap: list[_Due] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="loadgen", daemon=True)
        if isinstance(load, ClosedLoop):
            fleet.on_done = self._closed_loop_done

    def start(self) -> float:
        self.t0 = time.monotonic()
        if isinstance(self.load, OpenLoop):
            self._push(self.t0 + self._next_gap(0.0), None)
        else:
            # Stagger the first calls over 100 ms: a fleet of callers does not fire in the same microsecond.
            for caller in range(self.load.callers):
                self._push(self.t0 + self.rng.uniform(0, 0.1), caller)
        self._thread.start()
        return self.t0

    def join(self) -> None:
        self._thread.join(self.duration + 5)

    def _next_gap(self, t: float) -> float:
        assert isinstance(self.load, OpenLoop)
        return self.rng.expovariate(max(self.load.rate_at(t), 1e-6))

    def _push(self, when: float, caller: int | None) -> None:
        with self._cond:
            heapq.heappush(self._heap, _Due(when, next(self._seq), caller))
            self._cond.notify()

    def _closed_loop_done(self, inv: Invocation) -> None:
        assert isinstance(self.load, ClosedLoop)
        pause = 0.0 if inv.ok else self.load.error_pause
        self._push(time.monotonic() + pause, inv.caller)

    def _loop(self) -> None:
        end = self.t0 + self.duration
        while self.submitted < self.max_invocations:
            with self._cond:
                while True:
                    now = time.monotonic()
                    if now >= end:
                        return
                    if self._heap and self._heap[0].when <= now:
                        due = heapq.heappop(self._heap)
                        break
                    wait = end - now if not self._heap else min(self._heap[0].when - now, end - now)
                    self._cond.wait(max(wait, 0.0005))
            if due.when >= end:
                return
            self.submitted += 1
            self.fleet.submit(Invocation(arrival=due.when, caller=due.caller))
            if isinstance(self.load, OpenLoop):
                t = due.when - self.t0
                self._push(due.when + self._next_gap(t), None)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100); NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]
