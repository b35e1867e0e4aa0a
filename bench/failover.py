"""Issue 17's failover scenarios: a Lambda fleet writing to a local Aurora-like cluster through one failover.

200 invocations/s, each one ``INSERT`` of its own invocation number (and, for ``@with_mysql``, one read on the
reader client), Lambda timeout 30 s, against :class:`harness.cluster.LocalCluster` (a writer and one replica with
GTID replication, durable settings, the cluster and reader endpoints as switchable loopback forwarders in a
process of their own). At t = 10 s the writer is demoted (``read_only=1``) or SIGKILLed and restarted read-only;
the replica catches up and is promoted; the cluster endpoint moves to it at t = 15 s (Aurora's 5 s DNS TTL).

What is measured (``RunResult.data["failover"]``): errors by arrival before the failover, between the failover and
the switch, and after the switch; the time from the switch to clean service (:func:`bench.overload.clean_from`);
the acknowledged writes against the rows on the new writer (lost, doubled, and failed invocations whose write
landed anyway); in the crash variant, which errors were in flight when the writer died; the clients' connect
attempts per invocation; a per-second timeline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.fleet import Fleet, Invocation, OpenLoop, percentile
from bench.overload import bucket, clean_from, counter_per_second, max_per_second
from bench.scenarios import (
    OVERLOAD_TIMEOUT,
    RunResult,
    Scenario,
    _client_attempts,
    _FleetWatch,
    _wait_with_progress,
    fleet_and_load,
    stop_run,
    strategy_options,
)
from bench.strategies import DbTarget, cpu_seconds_of, make_strategy
from harness.cluster import FailoverTimes, LocalCluster
from harness.mariadb import memory_tmp_root

__all__ = ["FAILOVER_KEYS", "failover_scenarios", "run_failover"]

FAILOVER_KEYS = ("failover-demote", "failover-crash")
TABLE = "failover_writes"
INSERT = f"INSERT INTO {TABLE} (inv) VALUES (%s)"
READ = "SELECT @@server_id AS s"
# The scenario is the failover, not overload: up to 1,000 environments (the fleet's limit) may wait through the
# failover, each with a writer and a reader connection that can both land on the promoted server after the switch;
# 4,000 keeps that under 60%, below where either library's housekeeping starts killing idle connections.
MAX_CONNECTIONS = 4000
IDLE_TTL = (600.0, 600.0)  # Lambda keeps idle environments for minutes: none is destroyed within a run
# Host processes per strategy (the overload scenarios use 2). Here up to 1,000 environments wait at once, each a
# thread: with 500 threads an interpreter, a Python host spent its CPU waking GIL waiters (perf: half of its samples
# in the kernel's context switch, ~2% running Python) while the servers sat idle, and a run either drained or
# stalled for 10 s or more after the switch with nothing completing (bistable, from the same code). On Lambda each
# environment has a process of its own; 16 hosts (~60 threads each) remove the stall, and every strategy, the peers
# included, gets the same number.
HOSTS = 16
# The cluster's servers multiplex connections over a thread pool, as Aurora MySQL does ("internal server connection
# pooling and thread multiplexing", AWS's Aurora MySQL DBA handbook). With a thread per connection, the ~1,000
# environments released by the switch ran up to 600 INSERTs at once on this machine's two cores; they queued on one
# B-tree page latch (perf: ~40% of the server's samples in futex wake/wait under ha_write_row) and, in one run of
# three, the server took both cores for 5 s with nothing completing. Every strategy meets the same servers.
SERVER_ARGS = ("--thread-handling=pool-of-threads",)
# The servers' datadirs live in memory (/dev/shm where it exists), durable settings unchanged: a SIGKILLed server
# keeps what it acknowledged (the page cache is its disk), as Aurora's shared storage does. On this VM's shared disk
# the two durable servers' fsyncs stalled everything for 1-2 s in four runs of nine (IO pressure "full"), mid-drain,
# whatever the clients did; in memory, nine runs of nine drained without a dip (bench/RESULTS.md).
TMP_ROOT = memory_tmp_root()


def failover_scenarios(quick: bool) -> list[Scenario]:
    """Both variants; ``quick``: the failover at t = 2 s, the switch 2 s later, 8 s in all."""
    at, switch, duration = (2.0, 4.0, 8.0) if quick else (10.0, 15.0, 30.0)
    out = []
    for variant, what in (
        ("demote", "the writer demoted (read_only=1)"),
        ("crash", "the writer SIGKILLed and restarted read-only"),
    ):
        out.append(
            Scenario(
                key=f"failover-{variant}",
                title=f"Failover ({variant})",
                description=f"200/s, one INSERT each (+ one read on the reader client for with_mysql); {what} at "
                f"t={at:g} s, the replica promoted, the cluster endpoint switched at t={switch:g} s.",
                trigger_text=f"{variant} at {at:g} s, endpoint switched at {switch:g} s",
                max_connections=MAX_CONNECTIONS,
                load=OpenLoop(rate=200),
                duration=duration,
                hold=0.0,
                idle_ttl=IDLE_TTL,
                timeout=OVERLOAD_TIMEOUT,
                drain_limit=5.0 if not quick else 3.0,
                seed=21 if variant == "demote" else 22,
                failover=variant,
                failover_at_s=at,
                switch_at_s=switch,
            )
        )
    return out


class _CpuWatch(threading.Thread):
    """Every 0.5 s: CPU seconds used so far by groups of processes (the strategy's hosts, the endpoints' forwarder,
    the servers), to tell a slow drain caused by this machine from one caused by waiting."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]], t0: float) -> None:
        super().__init__(name="cpu-watch", daemon=True)
        self.groups = groups
        self.t0 = t0
        self.log: dict[str, list[tuple[float, float]]] = {name: [] for name in groups}
        self._base: dict[tuple[str, int], float] = {}
        self._stop_event = threading.Event()

    def read(self) -> None:
        now = time.monotonic() - self.t0
        for name, pids in self.groups.items():
            total = 0.0
            for pid in pids():
                used = cpu_seconds_of(pid)
                if used is None:
                    continue
                base = self._base.setdefault((name, pid), 0.0 if self.log[name] else used)  # a new process: from birth
                total += used - base
            self.log[name].append((now, total))

    def run(self) -> None:
        self.read()
        while not self._stop_event.wait(0.5):
            self.read()

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(5)


def _options(strategy_name: str, scenario: Scenario, reader_port: int) -> dict[str, Any] | None:
    options = strategy_options(strategy_name, scenario)
    if strategy_name == "with_mysql":
        return {**(options or {}), "server_role": "writer", "reader_host": f"127.0.0.1:{reader_port}"}
    return options


def run_failover(
    strategy_name: str,
    scenario: Scenario,
    *,
    progress: Callable[[float, int, int], None] | None = None,
    run: int = 1,
) -> RunResult:
    """One strategy through one failover scenario against a fresh local cluster; everything is stopped after."""
    assert scenario.failover in ("demote", "crash")
    delay = scenario.switch_at_s - scenario.failover_at_s
    cluster = LocalCluster(
        replicas=1,
        max_connections=scenario.max_connections,
        switch_delay=delay,
        endpoints="process",
        server_args=SERVER_ARGS,
        tmp_root=TMP_ROOT,
    )
    result = RunResult(strategy_name, scenario.key, run=run)
    strategy: Any = None
    fleet: Fleet | None = None
    watch: _FleetWatch | None = None
    cpu: _CpuWatch | None = None
    try:
        cluster.start()
        user = cluster.create_user()
        cluster.root_execute(
            f"CREATE TABLE {user.database}.{TABLE} (id BIGINT AUTO_INCREMENT PRIMARY KEY, inv BIGINT NOT NULL, "
            "KEY (inv)) ENGINE=InnoDB"
        )
        cluster.wait_replicated()
        assert cluster.cluster is not None and cluster.reader is not None
        target = DbTarget(cluster.cluster.host, cluster.cluster.port, user.name, user.password, user.database)
        strategy = make_strategy(
            strategy_name, target, _options(strategy_name, scenario, cluster.reader.port), hosts=HOSTS
        )
        numbers = itertools.count(1)
        lock = threading.Lock()

        def event() -> dict[str, Any]:
            with lock:
                n = next(numbers)
            # commit: for the naive PyMySQL strategies (no autocommit); the libraries autocommit.
            return {"sql": INSERT, "args": [n], "reader_sql": READ, "commit": True}

        fleet, loadgen = fleet_and_load(strategy, scenario, event)
        attempts_0 = _client_attempts(strategy, 10.0)
        t0 = loadgen.start()
        watch = _FleetWatch(fleet, strategy, t0, attempts_0)
        watch.start()
        host_pids = list(getattr(strategy, "pids", []))
        forwarder = cluster.forwarder_pid
        cpu = _CpuWatch(
            {
                "client_cpu": lambda: host_pids,
                "forwarder_cpu": lambda: [forwarder] if forwarder else [],
                "servers_cpu": lambda: [p for p in (s.pid for s in cluster.servers) if p],
            },
            t0,
        )
        cpu.start()
        failover = cluster.failover_later(t0 + scenario.failover_at_s, scenario.failover)  # type: ignore[arg-type]
        _wait_with_progress(t0, scenario.duration, fleet, progress)
        loadgen.join()
        times = failover.result(timeout=60)
        drained = fleet.drain(scenario.drain_limit or 5.0)
        t_drained = time.monotonic()
        # What the callers saw by the end of the drain; invocations still running then are "Unfinished" (outcome
        # unknown). Let them end before the rows are read, or a write acknowledged later would count as lost.
        seen = [dataclasses.replace(i) for i in fleet.invocations]
        if not drained:
            fleet.drain(scenario.timeout + 2.0)
        watch.stop()
        cpu.stop()
        attempts_1 = _client_attempts(strategy, 10.0)
        rows = cluster.writer.execute(f"SELECT inv, COUNT(*) AS n FROM {user.database}.{TABLE} GROUP BY inv")
        on_writer = {int(r["inv"]): int(r["n"]) for r in rows}
        on_old: set[int] = set()
        with contextlib.suppress(Exception):  # the old writer, if it is up: writes that never reached the new one
            old_rows = times.old_writer.execute(f"SELECT DISTINCT inv FROM {user.database}.{TABLE}")
            on_old = {int(r["inv"]) for r in old_rows}
        lib_stats = strategy.stats() if hasattr(strategy, "stats") else {}
        result.data = _summary(
            strategy_name,
            scenario,
            fleet,
            seen,
            watch,
            cpu.log,
            times,
            on_writer,
            on_old,
            t0=t0,
            t_drained=t_drained,
            drained=drained,
            attempts=None if attempts_0 is None or attempts_1 is None else attempts_1 - attempts_0,
        )
        result.data["run"] = run
        result.data["library_stats"] = lib_stats
        result.data["cluster_start_s"] = cluster.last_start_seconds
        result.events = [(t - t0, name) for t, name in times.events]
        return result
    finally:
        if watch is not None:
            watch.stop()
        if cpu is not None:
            cpu.stop()
        stop_run(fleet, cluster.servers, strategy)
        cluster.cleanup()


def _summary(
    strategy_name: str,
    sc: Scenario,
    fleet: Fleet,
    invs: list[Invocation],
    watch: _FleetWatch,
    cpu_log: dict[str, list[tuple[float, float]]],
    times: FailoverTimes,
    on_writer: dict[int, int],
    on_old: set[int],
    *,
    t0: float,
    t_drained: float,
    drained: bool,
    attempts: int | None,
) -> dict[str, Any]:
    done = [i for i in invs if i.end]
    unfinished = len(invs) - len(done)
    ok = [i for i in done if i.ok]
    failed = [i for i in invs if not i.end or not i.ok]
    errors = Counter(i.error or "?" for i in done if not i.ok)
    errors.update({"Unfinished": unfinished} if unfinished else {})
    failover_at = times.started - t0
    switch_at = times.switched - t0
    t_switch = times.switched
    killed_at = None if times.variant != "crash" or times.demoted is None else times.demoted - t0

    def number(i: Invocation) -> int | None:
        return int(i.payload["args"][0]) if i.payload else None

    acked = {n for n in (number(i) for i in ok) if n is not None}
    unknown = {n for n in (number(i) for i in failed) if n is not None}
    lost = sorted(acked - set(on_writer))
    doubled = sorted(n for n, count in on_writer.items() if count > 1)
    landed_unacked = sorted(n for n in unknown if n in on_writer)
    end_of_drain = t_drained - t0
    seconds = math.ceil(max(sc.duration, end_of_drain)) + 1
    arrivals = [i.arrival - t0 for i in invs]
    error_arrivals = [i.arrival - t0 for i in failed]
    offered = bucket(arrivals, seconds)
    ok_per_s = bucket((i.end - t0 for i in ok), seconds)
    errors_by_arrival = bucket(error_arrivals, seconds)
    errors_by_end = bucket([i.end - t0 for i in done if not i.ok] + [end_of_drain] * unfinished, seconds)
    clean_at = clean_from(ok_per_s, errors_by_arrival, offered, switch_at, sc.duration)
    # Crash: "in flight" = the invocation had started before the SIGKILL and ended after it.
    not_in_flight: list[str] = []
    if killed_at is not None:
        for i in failed:
            in_flight = i.start - t0 <= killed_at and (not i.end or i.end - t0 >= killed_at)
            if not in_flight:
                not_in_flight.append(i.error or "Unfinished")
    lat = sorted(i.latency * 1000 for i in ok)
    client = counter_per_second(watch.client_log, seconds)
    n = max(1, len(invs))
    return {
        "strategy": strategy_name,
        "scenario": sc.key,
        "variant": times.variant,
        "duration_s": sc.duration,
        "invocations": len(invs),
        "ok": len(ok),
        "errors": len(failed),
        "errors_by_code": dict(errors.most_common()),
        "latency_ms": {
            "p50": percentile(lat, 50) if lat else None,
            "p99": percentile(lat, 99) if lat else None,
            "max": lat[-1] if lat else None,
        },
        "fleet": vars(fleet.counters).copy(),
        "drained": drained,
        "failover": {
            "steps_s": {k: None if v is None else v + failover_at for k, v in times.since_start().items()},
            "failover_at_s": failover_at,
            "switch_at_s": switch_at,
            "killed_at_s": killed_at,
            "errors_before": sum(1 for t in error_arrivals if t < failover_at),
            "errors_during": sum(1 for t in error_arrivals if failover_at <= t < switch_at),
            "errors_after": sum(1 for t in error_arrivals if t >= switch_at),
            "errors_from_2s_after_switch": sum(1 for t in error_arrivals if t >= switch_at + 2.0),
            "errors_after_by_code": dict(Counter(i.error or "Unfinished" for i in failed if i.arrival >= t_switch)),
            "errors_not_in_flight": len(not_in_flight) if killed_at is not None else None,
            "errors_not_in_flight_by_code": dict(Counter(not_in_flight)) if killed_at is not None else None,
            "clean_at_s": clean_at,
            "time_to_clean_s": None if clean_at is None else clean_at - switch_at,
            "acked": len(acked),
            "rows_on_new_writer": sum(on_writer.values()),
            "lost": len(lost),
            "lost_sample": lost[:10],
            "lost_but_on_old_writer": sum(1 for n in lost if n in on_old),
            "doubled": len(doubled),
            "doubled_sample": doubled[:10],
            "failed_but_written": len(landed_unacked),
            "client_attempts": attempts,
            "client_attempts_per_invocation": None if attempts is None else attempts / n,
            "peak_busy_envs": fleet.counters.peak_busy,
            "peak_live_envs": fleet.counters.peak_envs,
            "unfinished": unfinished,
            "timeline": {
                "second": list(range(seconds)),
                "offered": offered,
                "ok": ok_per_s,
                "errors_by_arrival": errors_by_arrival,
                "errors": errors_by_end,
                "busy_envs_max": max_per_second(watch.busy, seconds),
                "client_attempts": client,
                # CPU seconds per second of the strategy's host processes: near their number (2), the clients are
                # bound by this machine's cores, not by what they wait for (on Lambda each environment has a CPU).
                **{name: counter_per_second(log, seconds) for name, log in cpu_log.items()},
            },
        },
    }
