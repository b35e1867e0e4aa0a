"""The scenarios and the runner of one strategy x scenario against a fresh private MariaDB.

The default set is issue 10's overload scenarios (spike, restart, oversubscription, KILL storm, bursts, stall:
Lambda timeout 30 s, idle environments destroyed after 3 s); the four earlier scenarios (``s1``-``s4``, 6 s
timeout, 2-6 s idle lifetime) are still available with ``--scenarios legacy`` or their keys.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import random
import resource
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.fleet import ClosedLoop, Fleet, Invocation, LoadGen, OpenLoop, Strategy, percentile
from bench.observe import Sampler
from bench.overload import (
    Window,
    bucket,
    clean_from,
    counter_per_second,
    error_split,
    is_metastable,
    max_per_second,
)
from bench.strategies import PYMYSQL_CONNECT_ARGS, DbTarget, cpu_seconds_of, make_strategy
from harness.mariadb import MariaDBServer

__all__ = ["SCENARIOS", "RunResult", "Scenario", "legacy_scenarios", "run_one", "scenarios"]

LAMBDA_TIMEOUT = 6.0
OVERLOAD_TIMEOUT = 30.0  # issue 10: the Lambda timeout of every overload scenario
OVERLOAD_IDLE_TTL = (3.0, 3.0)  # issue 10: idle environments destroyed after 3 s, without cleanup
LIB_RUNS = 3  # runs of with_mysql per overload scenario in a full run; the worst is reported
# The same zombie_max_timeout for both libraries, short enough that the "no zombie older than
# zombie_max_timeout" target means something within a run of a minute or less.
ZOMBIE_MAX_TIMEOUT = 20


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    description: str
    max_connections: int
    load: OpenLoop | ClosedLoop
    duration: float
    hold: float  # seconds of SELECT SLEEP() per invocation: the connection hold time
    idle_ttl: tuple[float, float] = (2.0, 6.0)
    concurrency: int = 1000
    timeout: float = LAMBDA_TIMEOUT
    kill_at: tuple[float, ...] = ()  # fractions of the duration
    crash_at: float | None = None  # fraction of the duration
    down_for: float = 3.0
    seed: int = 1
    # Issue 10's overload scenarios give their triggers in seconds since the start of the load.
    kill_at_s: tuple[float, ...] = ()
    crash_at_s: float | None = None
    stall_at_s: float | None = None  # every host process of the strategy SIGSTOPped for stall_for s
    stall_for: float = 2.0
    drain_limit: float | None = None  # wait at most this long for in-flight invocations (None: timeout + 1.5 s)
    overload: bool = False  # per-second timeline, trigger windows, time to clean service, worst of LIB_RUNS
    trigger_text: str = ""
    # Issue 17's failover scenarios (bench/failover.py): "demote" or "crash" at failover_at_s, the cluster endpoint
    # switched at switch_at_s; run by bench.failover.run_failover against a local cluster.
    failover: str | None = None
    failover_at_s: float = 10.0
    switch_at_s: float = 15.0

    @property
    def kill_times(self) -> list[float]:
        return sorted([f * self.duration for f in self.kill_at] + list(self.kill_at_s))

    @property
    def crash_time(self) -> float | None:
        return self.crash_at * self.duration if self.crash_at is not None else self.crash_at_s

    @property
    def physical_limit(self) -> float:
        """Invocations per second the server can serve at most: max_connections / hold time."""
        return self.max_connections / self.hold

    @property
    def event(self) -> dict[str, Any]:
        return {"sql": "SELECT SLEEP(%s) AS slept", "args": [self.hold]}

    def describe_load(self) -> str:
        if isinstance(self.load, ClosedLoop):
            return f"{self.load.callers} callers back to back (pause {self.load.error_pause:g} s after an error)"
        load = self.load
        text = f"Poisson {load.rate:g}/s"
        if load.spike_len:
            text += f", one {load.spike_len:g} s spike at {load.spike_rate:g}/s at t={load.spike_at:g} s"
        if load.burst_every:
            text += f", bursts of {load.burst_rate:g}/s for {load.burst_len:g} s every {load.burst_every:g} s"
            text += f" (mean {load.mean_rate(self.duration):.0f}/s)"
        return text


def scenarios(quick: bool) -> list[Scenario]:
    """Issue 10's overload scenarios (the default set); ``quick`` shortens every run for ``make bench-quick``.

    Full runs use the issue's parameters exactly; quick runs keep the rates, holds and limits but start the trigger
    at t=2 s and stop a few seconds after it.
    """
    t = 2.0 if quick else 10.0  # the trigger time

    def dur(full: float, quick_seconds: float) -> float:
        return quick_seconds if quick else full

    common: dict[str, Any] = {
        "timeout": OVERLOAD_TIMEOUT,
        "idle_ttl": OVERLOAD_IDLE_TTL,
        "overload": True,
        # In-flight invocations still running this long after the load stopped count as errors ("Unfinished"): a
        # healthy fleet has none, and a collapsed one must not stretch the run by up to the 30 s timeout.
        "drain_limit": 1.5 if quick else 5.0,
    }
    burst_every = 10.0  # quick runs end before a second burst
    return [
        Scenario(
            key="spike",
            title="Spike",
            description="200/s steady, SELECT SLEEP(0.05), one 1 s spike at 1,500/s.",
            trigger_text=f"spike {t:g}-{t + 1:g} s",
            max_connections=60,
            load=OpenLoop(rate=200, spike_rate=1500, spike_at=t, spike_len=1.0),
            duration=dur(30, 5),
            hold=0.05,
            seed=11,
            **common,
        ),
        Scenario(
            key="restart",
            title="Restart",
            description="200/s, SELECT SLEEP(0.02); the server is SIGKILLed and started again 3.3 s later.",
            trigger_text=f"kill -9 at {t:g} s, restart 3.3 s later",
            max_connections=60,
            load=OpenLoop(rate=200),
            duration=dur(30, 8),
            hold=0.02,
            crash_at_s=t,
            down_for=3.3,
            seed=12,
            **common,
        ),
        Scenario(
            key="oversubscription",
            title="10x oversubscription",
            description="300 environments in a closed loop against 30 connections, SELECT SLEEP(0.1).",
            trigger_text="none: the whole run is the overload",
            max_connections=30,
            load=ClosedLoop(callers=300, error_pause=0.1),
            duration=dur(20, 4),
            hold=0.1,
            concurrency=300,
            seed=13,
            **common,
        ),
        Scenario(
            # Issue 20: the queue twice as long per slot; connect attempts per invocation must not grow with it.
            key="crowd",
            title="20x oversubscription",
            description="500 environments in a closed loop against 25 connections, SELECT SLEEP(0.1).",
            trigger_text="none: the whole run is the overload",
            max_connections=25,
            load=ClosedLoop(callers=500, error_pause=0.1),
            duration=dur(20, 4),
            hold=0.1,
            concurrency=500,
            seed=18,
            **common,
        ),
        Scenario(
            key="kill-storm",
            title="KILL storm",
            description="200/s, SELECT SLEEP(0.05); every application connection KILLed once.",
            trigger_text=f"KILL of every application connection at {t:g} s",
            max_connections=60,
            load=OpenLoop(rate=200),
            duration=dur(30, 4),
            hold=0.05,
            kill_at_s=(t,),
            seed=14,
            **common,
        ),
        Scenario(
            key="bursts",
            title="Bursts",
            description=f"150/s with bursts of 450/s for 2 s every {burst_every:g} s, SELECT SLEEP(0.12).",
            trigger_text=f"bursts of 2 s every {burst_every:g} s from {t:g} s",
            max_connections=90,
            load=OpenLoop(rate=150, burst_rate=450, burst_every=burst_every, burst_len=2.0, burst_offset=t),
            duration=dur(40, 6),
            hold=0.12,
            seed=15,
            **common,
        ),
        Scenario(
            key="stall",
            title="Stall",
            description="200/s, SELECT SLEEP(0.05); every environment paused for 2 s (SIGSTOP/SIGCONT of every "
            "host process of the strategy).",
            trigger_text=f"all environments stopped {t:g}-{t + 2:g} s",
            max_connections=60,
            load=OpenLoop(rate=200),
            duration=dur(30, 5),
            hold=0.05,
            stall_at_s=t,
            stall_for=2.0,
            seed=16,
            **common,
        ),
        Scenario(
            # Issue 20: serverless-mysql's announced load (500/s for a minute on 90 connections), with its bursts.
            key="seed",
            title="The seed's headline load",
            description=f"500/s with bursts of 1,500/s for 2 s every {burst_every:g} s, SELECT SLEEP(0.04), "
            "max_connections 90.",
            trigger_text=f"bursts of 2 s every {burst_every:g} s from {t:g} s",
            max_connections=90,
            load=OpenLoop(rate=500, burst_rate=1500, burst_every=burst_every, burst_len=2.0, burst_offset=t),
            duration=dur(40, 6),
            hold=0.04,
            seed=19,
            **common,
        ),
        Scenario(
            # Issue 19: the herd after a long outage outlives the load; its last waiters must not starve behind
            # environments that hold slots and are never invoked again. The drain is long enough for them to be
            # served (pressure_idle_timeout + a retry interval after the holders go idle), not for a 30 s timeout.
            key="lastwait",
            title="Restart, 40 slots, load ends while invocations wait",
            description="200/s, SELECT SLEEP(0.02), max_connections 40; the server is SIGKILLed and started again "
            "5 s later; the run ends while the restart's waiters still wait.",
            trigger_text=f"kill -9 at {t:g} s, restart 5 s later",
            max_connections=40,
            load=OpenLoop(rate=200),
            duration=dur(30, 10),
            hold=0.02,
            crash_at_s=t,
            down_for=5.0,
            seed=17,
            **{**common, "drain_limit": 12.0},
        ),
    ]


def legacy_scenarios(quick: bool) -> list[Scenario]:
    """The four scenarios of the earlier benchmark (``--scenarios legacy`` or ``s1`` ... ``s4``)."""

    def dur(full: float, quick_seconds: float) -> float:
        return quick_seconds if quick else full

    s1_burst_every, s1_burst_len, s1_burst_at = (4.0, 2.0, 1.0) if quick else (10.0, 2.0, 2.0)
    return [
        Scenario(
            key="s1-burst",
            title="1. Bursts, zombies pile up",
            description="The seed's test scaled: ~500 invocations/s with bursts that scale the fleet up, 40 ms "
            "per invocation, idle environments destroyed after 2-6 s without cleanup.",
            max_connections=90,
            load=OpenLoop(
                rate=400, burst_rate=800, burst_every=s1_burst_every, burst_len=s1_burst_len, burst_offset=s1_burst_at
            ),
            duration=dur(48, 5),
            hold=0.04,
        ),
        Scenario(
            key="s2-oversubscribed",
            title="2. 10x oversubscription",
            description="300 concurrent environments, 30 connections, SELECT SLEEP(0.1).",
            max_connections=30,
            load=ClosedLoop(callers=300, error_pause=0.1),
            duration=dur(30, 4),
            hold=0.1,
            concurrency=300,
            seed=2,
        ),
        Scenario(
            key="s3-kill-storm",
            title="3. KILL storm",
            description="300 invocations/s, 40 ms each; every application connection killed "
            + ("once mid-run." if quick else "three times (30%, 55%, 80% of the run)."),
            max_connections=90,
            load=OpenLoop(rate=300),
            duration=dur(30, 4),
            hold=0.04,
            kill_at=(0.5,) if quick else (0.3, 0.55, 0.8),
            seed=3,
        ),
        Scenario(
            key="s4-crash",
            title="4. Server crash",
            description="200 invocations/s, 40 ms each; the server is SIGKILLed at 30% of the run and restarted "
            + ("1.5 s later." if quick else "3 s later."),
            max_connections=90,
            load=OpenLoop(rate=200),
            duration=dur(30, 5),
            hold=0.04,
            crash_at=0.3,
            down_for=1.5 if quick else 3.0,
            seed=4,
        ),
    ]


SCENARIOS = {s.key: s for s in [*scenarios(quick=False), *legacy_scenarios(quick=False)]}


def library_options(scenario: Scenario) -> dict[str, Any]:
    """``@with_mysql`` options: defaults, except the shared zombie_max_timeout, TLS off like every strategy, and no
    SIGTERM handler (environments are threads of one process here; Lambda would send no SIGTERM anyway)."""
    return {"zombie_max_timeout": ZOMBIE_MAX_TIMEOUT, "sigterm": False, "connect_args": dict(PYMYSQL_CONNECT_ARGS)}


def npm_options(scenario: Scenario) -> dict[str, Any]:
    """serverless-mysql options: defaults, except the shared zombieMaxTimeout."""
    return {"zombieMaxTimeout": ZOMBIE_MAX_TIMEOUT}


def strategy_options(strategy_name: str, scenario: Scenario) -> dict[str, Any] | None:
    """The options of one of the two libraries (:func:`library_options`, :func:`npm_options`); None for the rest."""
    if strategy_name == "with_mysql":
        return library_options(scenario)
    if strategy_name == "npm-serverless-mysql":
        return npm_options(scenario)
    return None


def fleet_and_load(
    strategy: Strategy, scenario: Scenario, event: dict[str, Any] | Callable[[], dict[str, Any]]
) -> tuple[Fleet, LoadGen]:
    """The fleet of one run and the load generator that drives it, both seeded from the scenario."""
    fleet = Fleet(
        strategy,
        event=event,
        concurrency=scenario.concurrency,
        idle_ttl=scenario.idle_ttl,
        timeout=scenario.timeout,
        rng=random.Random(scenario.seed * 7919),
    )
    loadgen = LoadGen(
        fleet, scenario.load, duration=scenario.duration, rng=random.Random(scenario.seed), max_invocations=200_000
    )
    return fleet, loadgen


def stop_run(fleet: Fleet | None, servers: Sequence[MariaDBServer], strategy: Any) -> None:
    """The end of every run, whatever happened: the fleet, the servers (SIGKILL: instant, and every client socket
    gets a reset), then the strategy's host processes."""
    if fleet is not None:
        fleet.shutdown()
    with contextlib.suppress(Exception):
        for server in servers:
            if server.running:
                server.crash()
    if strategy is not None:
        with contextlib.suppress(Exception):
            strategy.close()


@dataclass
class RunResult:
    strategy: str
    scenario: str
    data: dict[str, Any] = field(default_factory=dict)
    series: list[tuple[float, int | None]] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    run: int = 1  # 1, 2, 3 for the repeated with_mysql runs of an overload scenario


def _cpu_sum(pids: list[int]) -> float:
    return sum(cpu_seconds_of(pid) or 0.0 for pid in pids)


def _rusage_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_one(
    strategy_name: str,
    scenario: Scenario,
    *,
    progress: Callable[[float, int, int], None] | None = None,
    strategy_factory: Callable[[DbTarget], Strategy] | None = None,
    run: int = 1,
) -> RunResult:
    """Run ``strategy_name`` through ``scenario`` against a fresh server; everything started here is stopped."""
    # The scheduler's heap holds every earlier run's records: without this, its collections during a run grew with
    # what ran before, and a pause in the seed's first burst dispatched the arrivals in a herd (the seed reached the
    # fleet's cap after the stall in every run, alone in none).
    gc.collect()
    gc.freeze()
    if scenario.failover is not None:
        from bench.failover import run_failover  # late: bench.failover imports this module

        return run_failover(strategy_name, scenario, progress=progress, run=run)
    server = MariaDBServer(max_connections=scenario.max_connections)
    result = RunResult(strategy_name, scenario.key, run=run)
    strategy: Any = None
    sampler: Sampler | None = None
    fleet: Fleet | None = None
    chaos: _Chaos | None = None
    watch: _FleetWatch | None = None
    try:
        server.start()
        user = server.create_user()
        target = DbTarget(server.host, server.port, user.name, user.password, user.database)
        if strategy_factory is not None:
            strategy = strategy_factory(target)
        else:
            strategy = make_strategy(strategy_name, target, strategy_options(strategy_name, scenario))
        host_pids: list[int] = list(getattr(strategy, "pids", []))
        fleet, loadgen = fleet_and_load(strategy, scenario, scenario.event)
        sampler = Sampler(server, user.name)
        cpu0 = {"scheduler": _rusage_self(), "client": _cpu_sum(host_pids)}
        db_cpu = _DbCpu(server)
        client_attempts_0 = _client_attempts(strategy, 10.0)
        sampler.start()
        t0 = loadgen.start()
        sampler.t0 = t0
        watch = _FleetWatch(fleet, strategy, t0, client_attempts_0)
        watch.start()
        chaos = _Chaos(scenario, server, sampler, db_cpu, t0, host_pids)
        chaos.start()
        _wait_with_progress(t0, scenario.duration, fleet, progress)
        loadgen.join()
        t_load_end = t0 + scenario.duration
        chaos.join()
        drain_limit = scenario.drain_limit if scenario.drain_limit is not None else scenario.timeout + 1.5
        drained = fleet.drain(drain_limit)
        t_drained = time.monotonic()
        watch.stop()
        # Zombies: the application's connections that no live environment holds.
        live_ids = strategy.live_thread_ids(fleet.live_envs())
        rows = sampler.app_processlist()
        zombies = [r for r in rows if int(r["ID"]) not in live_ids]
        sampler.read_counters()
        # Right after the server's counters, so that both count the same attempts (a collapsed fleet goes on
        # retrying after the drain gave up).
        client_attempts_1 = _client_attempts(strategy, 10.0)
        if client_attempts_0 is not None and client_attempts_1 is not None:
            watch.client_log.append((time.monotonic() - t0, float(client_attempts_1 - client_attempts_0)))
        sampler.stop()
        cpu = {
            "scheduler_s": _rusage_self() - cpu0["scheduler"],
            "client_s": _cpu_sum(host_pids) - cpu0["client"],
            "client_processes": len(host_pids),
            "mariadbd_s": db_cpu.total(),
        }
        lib_stats = strategy.stats() if hasattr(strategy, "stats") else {}
        result.events = chaos.events
        _summarise(
            result,
            scenario,
            fleet,
            sampler,
            t0=t0,
            t_load_end=t_load_end,
            t_drained=t_drained,
            drained=drained,
            zombies=zombies,
            live=len(live_ids),
            cpu=cpu,
            lib_stats=lib_stats,
            chaos=chaos,
        )
        result.data["run"] = run
        if scenario.overload:
            result.data["overload"] = _overload_summary(
                scenario,
                fleet,
                sampler,
                watch,
                chaos,
                t0=t0,
                t_drained=t_drained,
                client_attempts=(
                    client_attempts_1 - client_attempts_0
                    if client_attempts_0 is not None and client_attempts_1 is not None
                    else None
                ),
            )
        return result
    finally:
        if chaos is not None:
            chaos.resume()  # never leave a host process stopped
        if watch is not None:
            watch.stop()
        if sampler is not None:
            sampler.close()
        stop_run(fleet, [server], strategy)
        server.cleanup()


def _wait_with_progress(
    t0: float, duration: float, fleet: Fleet, progress: Callable[[float, int, int], None] | None
) -> None:
    end = t0 + duration
    while True:
        now = time.monotonic()
        if progress is not None:
            invs = fleet.invocations
            done = [i for i in invs[-2000:] if i.end]
            errs = sum(1 for i in done if not i.ok)
            progress(min(1.0, (now - t0) / duration), len(invs), errs)
        if now >= end:
            return
        time.sleep(min(0.25, end - now))


class _DbCpu:
    """mariadbd CPU seconds over server lifetimes (a crash ends one lifetime)."""

    def __init__(self, server: MariaDBServer) -> None:
        self.server = server
        self.done = 0.0
        self.pid = server.pid
        self.start = cpu_seconds_of(self.pid) if self.pid else 0.0

    def before_crash(self) -> None:
        if self.pid:
            self.done += (cpu_seconds_of(self.pid) or 0.0) - (self.start or 0.0)
        self.pid = None

    def after_restart(self) -> None:
        self.pid = self.server.pid
        self.start = 0.0  # a new process: count from its birth

    def total(self) -> float:
        current = (cpu_seconds_of(self.pid) or 0.0) - (self.start or 0.0) if self.pid else 0.0
        return self.done + current


def _client_attempts(strategy: Any, timeout: float) -> int | None:
    method = getattr(strategy, "client_attempts", None)
    if method is None:
        return None
    value: int | None = method(timeout)
    return value


class _FleetWatch(threading.Thread):
    """Every 0.25 s: busy environments; every second: the clients' connect attempts (from the host processes)."""

    def __init__(self, fleet: Fleet, strategy: Any, t0: float, attempts_0: int | None) -> None:
        super().__init__(name="fleet-watch", daemon=True)
        self.fleet = fleet
        self.strategy = strategy
        self.t0 = t0
        self.attempts_0 = attempts_0
        self.busy: list[tuple[float, int | None]] = []
        self.client_log: list[tuple[float, float]] = [(0.0, 0.0)]
        self._stop_event = threading.Event()

    def run(self) -> None:
        tick = 0
        while not self._stop_event.wait(0.25):
            now = time.monotonic()
            self.busy.append((now - self.t0, self.fleet.busy_count()))
            tick += 1
            if tick % 4 == 0 and self.attempts_0 is not None:
                n = _client_attempts(self.strategy, 0.5)  # None while a host is stopped: caught up later
                if n is not None:
                    self.client_log.append((now - self.t0, float(n - self.attempts_0)))

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(5)


class _Chaos(threading.Thread):
    """Runs the scenario's fault injections at their times (KILL storms, crash and restart, stall)."""

    def __init__(
        self,
        scenario: Scenario,
        server: MariaDBServer,
        sampler: Sampler,
        db_cpu: _DbCpu,
        t0: float,
        pids: list[int] | None = None,
    ):
        super().__init__(name="chaos", daemon=True)
        self.scenario = scenario
        self.server = server
        self.sampler = sampler
        self.db_cpu = db_cpu
        self.t0 = t0
        self.pids = list(pids or [])
        self.events: list[tuple[float, str]] = []
        self.windows: list[Window] = []  # the triggers as they really happened (seconds since t0)
        self.killed: list[int] = []
        self.t_crash: float | None = None
        self.t_up: float | None = None
        self.error: str | None = None
        self._stopped: list[int] = []
        self._stopped_lock = threading.Lock()

    def _sleep_until(self, t: float) -> None:
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _since(self, t: float) -> float:
        return t - self.t0

    def run(self) -> None:
        sc = self.scenario
        actions: list[tuple[float, str]] = [(t, "kill") for t in sc.kill_times]
        if sc.crash_time is not None:
            actions.append((sc.crash_time, "crash"))
        if sc.stall_at_s is not None:
            actions.append((sc.stall_at_s, "stall"))
        try:
            for at, what in sorted(actions):
                self._sleep_until(self.t0 + at)
                if what == "kill":
                    started = time.monotonic()
                    n = self.sampler.kill_all()
                    done = time.monotonic()
                    self.killed.append(n)
                    self.events.append((self._since(started), f"KILL x{n}"))
                    self.windows.append(Window(self._since(started), self._since(done), "KILL"))
                elif what == "crash":
                    self._crash_and_restart()
                else:
                    self._stall()
        except Exception as exc:  # reported in the results, never hangs the run
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.resume()

    def _crash_and_restart(self) -> None:
        with contextlib.suppress(Exception):
            self.sampler.read_counters()
        self.sampler.forget_connection()
        self.db_cpu.before_crash()
        self.t_crash = time.monotonic()  # before the SIGKILL: the errors it causes belong to the outage
        self.server.crash()
        self.sampler.server_restarted()
        self.events.append((self.t_crash - self.t0, "crash"))
        self._sleep_until(self.t_crash + self.scenario.down_for)
        self.server.start()
        self.t_up = time.monotonic()
        self.db_cpu.after_restart()
        self.events.append((self.t_up - self.t0, "up"))
        self.windows.append(Window(self.t_crash - self.t0, self.t_up - self.t0, "outage"))

    def _stall(self) -> None:
        """Every environment stops making progress: SIGSTOP each host process of the strategy (all its environment
        threads or async instances, their sockets unread), SIGCONT ``stall_for`` s later."""
        started = time.monotonic()
        for pid in self.pids:
            os.kill(pid, signal.SIGSTOP)  # our own child process, by pid
            with self._stopped_lock:
                self._stopped.append(pid)
        self.events.append((self._since(started), "SIGSTOP"))
        self._sleep_until(started + self.scenario.stall_for)
        self.resume()
        done = time.monotonic()
        self.events.append((self._since(done), "SIGCONT"))
        self.windows.append(Window(self._since(started), self._since(done), "stall"))

    def resume(self) -> None:
        """SIGCONT every host process this thread stopped (idempotent)."""
        with self._stopped_lock:
            stopped, self._stopped = self._stopped, []
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def _summarise(
    result: RunResult,
    sc: Scenario,
    fleet: Fleet,
    sampler: Sampler,
    *,
    t0: float,
    t_load_end: float,
    t_drained: float,
    drained: bool,
    zombies: list[dict[str, Any]],
    live: int,
    cpu: Mapping[str, float | None],
    lib_stats: dict[str, Any],
    chaos: _Chaos,
) -> None:
    invs: list[Invocation] = [i for i in fleet.invocations if i.end]
    unfinished = len(fleet.invocations) - len(invs)
    ok = [i for i in invs if i.ok]
    errors = Counter(i.error or "?" for i in invs if not i.ok)
    errors.update({"Unfinished": unfinished} if unfinished else {})
    lat = sorted(i.latency * 1000 for i in ok)
    ok_in_window = sum(1 for i in ok if i.end <= t_load_end)
    throughput = ok_in_window / sc.duration
    user, status = sampler.deltas()
    n = max(1, len(invs))
    statements = sum(user.get(k, 0.0) for k in ("SELECT_COMMANDS", "UPDATE_COMMANDS", "OTHER_COMMANDS"))
    # USER_STATISTICS counts no SHOW command (the library's SHOW STATUS and SHOW PROCESSLIST): the server's own
    # counts of those are added (server-wide, but nothing else sends them during a run: the observer reads
    # information_schema).
    statements += sum(status.get(k, 0.0) for k in ("COM_SHOW_STATUS", "COM_SHOW_PROCESSLIST"))
    # A refused or abandoned handshake never reaches USER_STATISTICS but always counts in Aborted_connects.
    attempts = user.get("TOTAL_CONNECTIONS", 0.0) + status.get("ABORTED_CONNECTS", 0.0)
    series = [(s.t, s.app_conns) for s in sampler.samples]
    peak = max((c for _, c in series if c is not None), default=0)
    peak_threads = max((s.threads_connected for s in sampler.samples if s.threads_connected is not None), default=0)
    data: dict[str, Any] = {
        "strategy": result.strategy,
        "scenario": sc.key,
        "duration_s": sc.duration,
        "max_connections": sc.max_connections,
        "hold_s": sc.hold,
        "invocations": len(fleet.invocations),
        "ok": len(ok),
        "errors": sum(errors.values()),
        "errors_by_code": dict(errors.most_common()),
        "throughput_per_s": throughput,
        "physical_limit_per_s": sc.physical_limit,
        "fraction_of_limit": throughput / sc.physical_limit,
        "latency_ms": {
            "mean": sum(lat) / len(lat) if lat else None,
            "p50": percentile(lat, 50) if lat else None,
            "p95": percentile(lat, 95) if lat else None,
            "p99": percentile(lat, 99) if lat else None,
            "max": lat[-1] if lat else None,
            # Over every invocation offered, a failed or unfinished one counted as slower than any served: a
            # strategy that refuses its slowest invocations cannot look quicker for it. None: the p99 is a failure.
            "p99_offered": _p99_offered(lat, len(fleet.invocations) - len(ok)),
        },
        "peak_connections": peak,
        "peak_threads_connected": peak_threads,
        "zombies_end": len(zombies),
        "oldest_zombie_s": max((int(z["TIME"]) for z in zombies), default=0),
        "live_envs_with_connection": live,
        "connects": user.get("TOTAL_CONNECTIONS", 0.0),
        "connect_attempts": attempts,
        "refused_connects": status.get("ABORTED_CONNECTS", 0.0),
        "connects_per_invocation": user.get("TOTAL_CONNECTIONS", 0.0) / n,
        "connect_attempts_per_invocation": attempts / n,
        "statements": statements,
        "statements_per_invocation": statements / n,
        "user_statistics": user,
        "global_status": status,
        "cpu_s": cpu,
        "fleet": vars(fleet.counters).copy(),
        "library_stats": lib_stats,
        "drained": drained,
        "drain_s": t_drained - t_load_end,
        "sample_errors": sampler.sample_errors,
        "chaos_error": chaos.error,
    }
    if sc.kill_at:
        data["killed_per_storm"] = chaos.killed
    if chaos.t_crash is not None:
        t_up = chaos.t_up or t_load_end
        data["crash_at_s"] = chaos.t_crash - t0
        data["up_at_s"] = t_up - t0
        data["errors_before_crash"] = sum(1 for i in invs if not i.ok and i.arrival < chaos.t_crash)
        data["errors_during_outage"] = sum(1 for i in invs if not i.ok and chaos.t_crash <= i.arrival < t_up)
        data["errors_after_restart"] = sum(1 for i in invs if not i.ok and i.arrival >= t_up)
        data["errors_after_restart_by_code"] = dict(
            Counter(i.error or "?" for i in invs if not i.ok and i.arrival >= t_up).most_common()
        )
        data["invocations_after_restart"] = sum(1 for i in invs if i.arrival >= t_up)
    result.data = data
    result.series = series
    result.latencies_ms = lat


def _p99_offered(served_ms: list[float], failed: int) -> float | None:
    p = percentile(served_ms + [math.inf] * failed, 99)
    return None if math.isinf(p) or math.isnan(p) else p


def _load_windows(sc: Scenario) -> list[Window]:
    """Trigger windows that the load itself makes: the spike and the bursts."""
    load = sc.load
    if not isinstance(load, OpenLoop):
        return []
    out: list[Window] = []
    if load.spike_len > 0:
        out.append(Window(load.spike_at, load.spike_at + load.spike_len, "spike"))
    if load.burst_every > 0:
        start = load.burst_offset
        while start < sc.duration:
            out.append(Window(start, min(start + load.burst_len, sc.duration), "burst"))
            start += load.burst_every
    return out


def _overload_summary(
    sc: Scenario,
    fleet: Fleet,
    sampler: Sampler,
    watch: _FleetWatch,
    chaos: _Chaos,
    *,
    t0: float,
    t_drained: float,
    client_attempts: int | None,
) -> dict[str, Any]:
    """Per-second timeline, trigger windows, errors before/during/after, time to clean service (bench.overload)."""
    invs = list(fleet.invocations)
    done = [i for i in invs if i.end]
    unfinished = len(invs) - len(done)
    end_of_drain = t_drained - t0
    ok_times = [i.end - t0 for i in done if i.ok]
    # An invocation still running when the drain gave up counts as an error at that moment.
    error_times = [i.end - t0 for i in done if not i.ok] + [end_of_drain] * unfinished
    # Errors are attributed to the second their invocation ARRIVED for the before/during/after split and the
    # clean-service rule: an invocation that arrived in the spike and fails 30 s later is damage done by the
    # spike, not a sign that the fleet cannot serve what arrives after it.
    error_arrivals = [i.arrival - t0 for i in invs if not i.end or not i.ok]
    last = max([sc.duration, end_of_drain, *ok_times, *error_times])
    seconds = math.ceil(last) + 1
    chaos_windows = list(chaos.windows)
    up = None if chaos.t_up is None else chaos.t_up - t0
    if chaos.t_crash is not None and up is not None:
        # The server accepts connections before MariaDBServer.start() returns (it checks the server further, up to
        # ~1 s on a loaded machine): the outage ends at the first successful observer sample after the crash.
        down = chaos.t_crash - t0
        seen = [smp.t for smp in sampler.samples if smp.t > down and smp.app_conns is not None]
        if seen and seen[0] < up:
            up = seen[0]
        chaos_windows = [Window(w.start, up, w.label) if w.label == "outage" else w for w in chaos_windows]
    windows = sorted(_load_windows(sc) + chaos_windows, key=lambda w: w.start)
    offered = bucket((i.arrival - t0 for i in invs), seconds)
    ok = bucket(ok_times, seconds)
    errors = bucket(error_times, seconds)
    errors_by_arrival = bucket(error_arrivals, seconds)
    conns = max_per_second(((smp.t, smp.app_conns) for smp in sampler.samples), seconds)
    idle = max_per_second(((smp.t, smp.idle_1s) for smp in sampler.samples), seconds)
    busy = max_per_second(watch.busy, seconds)
    log = sampler.counter_log
    logins = counter_per_second([(t, v.get("TOTAL_CONNECTIONS", 0.0)) for t, v in log], seconds)
    refused = counter_per_second([(t, v.get("ABORTED_CONNECTS", 0.0)) for t, v in log], seconds)
    refused_max = counter_per_second([(t, v.get("CONNECTION_ERRORS_MAX_CONNECTIONS", 0.0)) for t, v in log], seconds)
    client = counter_per_second(watch.client_log, seconds)
    server_attempts = [
        None if a is None and b is None else (a or 0.0) + (b or 0.0) for a, b in zip(logins, refused, strict=True)
    ]
    before, during, after = error_split(error_arrivals, windows)
    trigger_end = max((w.end for w in windows), default=None)
    clean_at = clean_from(ok, errors_by_arrival, offered, trigger_end, sc.duration) if trigger_end is not None else None
    n = max(1, len(invs))
    user, status = sampler.deltas()
    server_total = user.get("TOTAL_CONNECTIONS", 0.0) + status.get("ABORTED_CONNECTS", 0.0)
    out: dict[str, Any] = {
        "windows": [{"start": w.start, "end": w.end, "label": w.label} for w in windows],
        "trigger_end_s": trigger_end,
        "errors_before": before,
        "errors_during": during if windows else None,
        "errors_after": after,
        "clean_at_s": clean_at,
        "time_to_clean_s": None if clean_at is None or trigger_end is None else clean_at - trigger_end,
        "metastable": None if trigger_end is None else is_metastable(clean_at, trigger_end),
        "server_attempts": server_total,
        "server_attempts_per_invocation": server_total / n,
        "client_attempts": client_attempts,
        "client_attempts_per_invocation": None if client_attempts is None else client_attempts / n,
        "peak_busy_envs": fleet.counters.peak_busy,
        "peak_live_envs": fleet.counters.peak_envs,
        "unfinished": unfinished,
        "timeline": {
            "second": list(range(seconds)),
            "offered": offered,
            "ok": ok,
            "errors": errors,
            "errors_by_arrival": errors_by_arrival,
            "connections_max": conns,
            "connections_idle_1s_max": idle,
            "busy_envs_max": busy,
            "server_logins": logins,
            "server_refused": refused,
            "server_refused_max_connections": refused_max,
            "server_attempts": server_attempts,
            "client_attempts": client,
        },
    }
    if up is not None and chaos.t_crash is not None:
        down = chaos.t_crash - t0
        out["up_at_s"] = up
        out["errors_after_up"] = sum(1 for t in error_arrivals if t >= up)
        out["errors_arrived_in_outage"] = sum(1 for t in error_arrivals if down <= t < up)
    return out
