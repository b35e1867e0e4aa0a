"""The four scenarios and the runner of one strategy x scenario against a fresh private MariaDB."""

from __future__ import annotations

import contextlib
import random
import resource
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench import REPO_ROOT
from bench.fleet import ClosedLoop, Fleet, Invocation, LoadGen, OpenLoop, Strategy, percentile
from bench.observe import Sampler
from bench.strategies import PYMYSQL_CONNECT_ARGS, DbTarget, cpu_seconds_of, make_strategy

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.mariadb import MariaDBServer

__all__ = ["SCENARIOS", "RunResult", "Scenario", "run_one", "scenarios"]

LAMBDA_TIMEOUT = 6.0
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
        if load.burst_every:
            text += f", bursts of {load.burst_rate:g}/s for {load.burst_len:g} s every {load.burst_every:g} s"
            text += f" (mean {load.mean_rate(self.duration):.0f}/s)"
        return text


def scenarios(quick: bool) -> list[Scenario]:
    """The scenario list; ``quick`` shortens every run for ``make bench-quick``."""

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


SCENARIOS = {s.key: s for s in scenarios(quick=False)}


def library_options(scenario: Scenario) -> dict[str, Any]:
    """``@with_mysql`` options: defaults, except the shared zombie_max_timeout, TLS off like every strategy, and no
    SIGTERM handler (environments are threads of one process here; Lambda would send no SIGTERM anyway)."""
    return {"zombie_max_timeout": ZOMBIE_MAX_TIMEOUT, "sigterm": False, "connect_args": dict(PYMYSQL_CONNECT_ARGS)}


def npm_options(scenario: Scenario) -> dict[str, Any]:
    """serverless-mysql options: defaults, except the shared zombieMaxTimeout."""
    return {"zombieMaxTimeout": ZOMBIE_MAX_TIMEOUT}


@dataclass
class RunResult:
    strategy: str
    scenario: str
    data: dict[str, Any] = field(default_factory=dict)
    series: list[tuple[float, int | None]] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)


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
) -> RunResult:
    """Run ``strategy_name`` through ``scenario`` against a fresh server; everything started here is stopped."""
    server = MariaDBServer(max_connections=scenario.max_connections)
    result = RunResult(strategy_name, scenario.key)
    strategy: Any = None
    sampler: Sampler | None = None
    fleet: Fleet | None = None
    try:
        server.start()
        user = server.create_user()
        target = DbTarget(server.host, server.port, user.name, user.password, user.database)
        if strategy_factory is not None:
            strategy = strategy_factory(target)
        elif strategy_name == "with_mysql":
            strategy = make_strategy(strategy_name, target, library_options(scenario))
        elif strategy_name == "npm-serverless-mysql":
            strategy = make_strategy(strategy_name, target, npm_options(scenario))
        else:
            strategy = make_strategy(strategy_name, target)
        host_pids: list[int] = list(getattr(strategy, "pids", []))
        rng_load = random.Random(scenario.seed)
        rng_fleet = random.Random(scenario.seed * 7919)
        fleet = Fleet(
            strategy,
            event=scenario.event,
            concurrency=scenario.concurrency,
            idle_ttl=scenario.idle_ttl,
            timeout=scenario.timeout,
            rng=rng_fleet,
        )
        sampler = Sampler(server, user.name)
        cpu0 = {"scheduler": _rusage_self(), "client": _cpu_sum(host_pids)}
        db_cpu = _DbCpu(server)
        loadgen = LoadGen(fleet, scenario.load, duration=scenario.duration, rng=rng_load, max_invocations=200_000)
        sampler.start()
        t0 = loadgen.start()
        sampler.t0 = t0
        chaos = _Chaos(scenario, server, sampler, db_cpu, t0)
        chaos.start()
        _wait_with_progress(t0, scenario.duration, fleet, progress)
        loadgen.join()
        t_load_end = t0 + scenario.duration
        chaos.join()
        drained = fleet.drain(scenario.timeout + 1.5)
        t_drained = time.monotonic()
        # Zombies: the application's connections that no live environment holds.
        live_ids = strategy.live_thread_ids(fleet.live_envs())
        rows = sampler.app_processlist()
        zombies = [r for r in rows if int(r["ID"]) not in live_ids]
        sampler.read_counters()
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
        return result
    finally:
        if fleet is not None:
            fleet.shutdown()
        if sampler is not None:
            sampler.close()
        with contextlib.suppress(Exception):
            if server.running:
                server.crash()  # SIGKILL: instant, and every client socket gets a reset
        if strategy is not None:
            with contextlib.suppress(Exception):
                strategy.close()
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


class _Chaos(threading.Thread):
    """Runs the scenario's fault injections at their times (KILL storms, crash and restart)."""

    def __init__(self, scenario: Scenario, server: MariaDBServer, sampler: Sampler, db_cpu: _DbCpu, t0: float):
        super().__init__(name="chaos", daemon=True)
        self.scenario = scenario
        self.server = server
        self.sampler = sampler
        self.db_cpu = db_cpu
        self.t0 = t0
        self.events: list[tuple[float, str]] = []
        self.killed: list[int] = []
        self.t_crash: float | None = None
        self.t_up: float | None = None
        self.error: str | None = None

    def _sleep_until(self, t: float) -> None:
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def run(self) -> None:
        sc = self.scenario
        try:
            for frac in sc.kill_at:
                self._sleep_until(self.t0 + frac * sc.duration)
                n = self.sampler.kill_all()
                self.killed.append(n)
                self.events.append((time.monotonic() - self.t0, f"KILL x{n}"))
            if sc.crash_at is not None:
                self._sleep_until(self.t0 + sc.crash_at * sc.duration)
                with contextlib.suppress(Exception):
                    self.sampler.read_counters()
                self.sampler.forget_connection()
                self.db_cpu.before_crash()
                self.server.crash()
                self.t_crash = time.monotonic()
                self.events.append((self.t_crash - self.t0, "crash"))
                self._sleep_until(self.t_crash + sc.down_for)
                self.server.start()
                self.t_up = time.monotonic()
                self.db_cpu.after_restart()
                self.events.append((self.t_up - self.t0, "up"))
        except Exception as exc:  # reported in the results, never hangs the run
            self.error = f"{type(exc).__name__}: {exc}"


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
