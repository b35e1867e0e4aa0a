"""The failover scenarios' part of the report: tables, issue 17's targets, the per-second timeline and charts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.report_common import Panel, all_runs_lines, fmt, timeline_chart, worst_name, worst_runs
from bench.scenarios import RunResult, Scenario

__all__ = [
    "FAILOVER_METHOD",
    "check_failover_targets",
    "failover_markdown",
    "reported_failover",
    "timeline_markdown",
    "write_failover_charts",
]

LIB = "with_mysql"
CLEAN_WITHIN_S = 2.0  # issue 17: service clean <= 2 s after the switch

FAILOVER_METHOD = """\
**Failover scenarios (issue 17).** A local cluster (`harness/cluster.py`): a writer and one replica, private
MariaDB servers with GTID replication (`MASTER_USE_GTID=slave_pos`), binary log, `innodb_flush_log_at_trx_commit=1`
and `sync_binlog=1`; the application user has no SUPER, so `read_only` binds it. The cluster endpoint and the reader
endpoint are loopback forwarders (asyncio, in a process of their own) whose target is switched like a DNS name:
connections made before a switch stay on their server. *demote*: at t=10 s the writer gets `read_only=1`, the
replica catches up (GTID position) and is promoted (`STOP SLAVE; RESET SLAVE ALL; read_only=0`), the old writer
replicates from it. *crash*: at t=10 s the writer is SIGKILLed and restarted read-only on the same datadir and
port, the replica fetches what it had not received, then the same promotion. The cluster endpoint names the new
writer from t=15 s (Aurora's DNS TTL: 5 s); the reader endpoint then names the old writer.

- Load: Poisson 200/s for 30 s; each invocation inserts its own number (`INSERT INTO failover_writes (inv)
  VALUES (n)`); `with_mysql` (options `server_role="writer"`, `reader_host=<reader endpoint>`) also reads
  `@@server_id` on the reader client. Lambda timeout 30 s; idle environments are kept (none destroyed in a run),
  `max_connections=4000` on every server: the scenario is the failover, not overload. Up to 1,000 environments
  (the fleet's limit) wait through it, each with a writer and a reader connection, and after the switch both kinds
  can land on the promoted server (the reader endpoint named it before); 4,000 keeps that under 60% of the limit,
  below where either library's housekeeping starts killing idle connections.
- *Hosts*: each strategy's environments live in 16 host processes here (2 in the overload scenarios): with ~1,000
  environments waiting at once, 500 threads per Python interpreter spent their CPU waking interpreter-lock
  waiters, and runs stalled after the switch for reasons that do not exist on Lambda (see `bench/failover.py`).
- *Servers*: `--thread-handling=pool-of-threads` (MariaDB's thread pool): Aurora MySQL multiplexes connections over
  a pool of its own. With a thread per connection, up to 600 INSERTs ran at once on this machine's two cores after
  the switch, queued on one B-tree page latch, and one run in three stalled for 5 s. Their datadirs are in memory
  (`/dev/shm` where it exists; durable settings unchanged, and a SIGKILLed server keeps what it acknowledged): on
  this VM's shared disk their fsyncs stalled every phase of the drain for 1-1.5 s in a third of the runs.
- *CPU* in the per-second table: cores used by the strategy's host processes, by the endpoints' forwarder
  process and by the MariaDB servers. The machine has 2 cores, shared with other work: when the sum nears 2, the
  numbers say more about this machine than about the strategy (on Lambda each environment has its own CPU).
- *Errors before / during / after*: failed invocations by the second they **arrived**: before the failover,
  between the failover and the switch, from the switch on. *From 2 s after*: arrived 2 s or more after the switch.
- *Time to clean service*: from the switch to the first whole second from which no arriving invocation fails and
  every second serves >= 90% of its arrivals (as in the overload scenarios).
- *Acknowledged / rows*: invocations that succeeded against the rows on the new writer after the run;
  *lost*: acknowledged but absent; *doubled*: a number present more than once; *failed but written*: failed
  invocations whose row is there (their outcome was unknown to the caller: a lost connection).
- *In flight* (crash): the invocation had started before the SIGKILL and ended after it.
- *Connect attempts per invocation*: client-counted (every PyMySQL `Connection.connect()` / mysql2
  `createConnection()` in the host processes, the reader client's included).
"""


def _key(d: dict[str, Any]) -> tuple[int | None, int, float | None]:
    f = d["failover"]
    return f["errors_after"], int(d["errors"]) + f["lost"] + f["doubled"], f["time_to_clean_s"]


def reported_failover(
    results: Sequence[RunResult], scenario: str
) -> tuple[list[RunResult], dict[str, list[RunResult]]]:
    """One row per strategy (the worst run where there are several) and every strategy's runs."""
    return worst_runs(results, scenario, _key, "failover")


def _ttc(f: dict[str, Any]) -> str:
    return "**never**" if f["clean_at_s"] is None else f"{f['time_to_clean_s']:.1f} s"


def _errors(codes: dict[str, int], limit: int = 2) -> str:
    if not codes:
        return "0"
    items = sorted(codes.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{n} `{k}`" for k, n in items[:limit])
    return f"{sum(codes.values()):,} ({text}{', ...' if len(items) > limit else ''})"


def _run_line(r: RunResult) -> str:
    d, f = r.data, r.data["failover"]
    return (
        f"run {r.run}: {d['errors']} errors ({f['errors_before']} / {f['errors_during']} / {f['errors_after']}), "
        f"clean {_ttc(f)} after the switch, {f['acked']:,} acknowledged, {f['lost']} lost, {f['doubled']} doubled, "
        f"attempts/inv {fmt(f['client_attempts_per_invocation'], 2)}, peak {f['peak_busy_envs']} envs, "
        f"p99 {fmt(d['latency_ms']['p99'])} ms"
    )


def failover_markdown(results: Sequence[RunResult], scenarios: Sequence[Scenario], extras: dict[str, Any]) -> str:
    """One table per failover scenario, the library's runs, the failover's steps and its per-second timeline."""
    lines: list[str] = []
    for sc in scenarios:
        if sc.failover is None:
            continue
        rows, by_strategy = reported_failover(results, sc.key)
        if not rows:
            continue
        lines += [
            f"### {sc.title}",
            "",
            f"{sc.description} Lambda timeout {sc.timeout:g} s, {sc.duration:g} s of load.",
            "",
            "| Strategy | Invocations | Errors: total (before / during / after the switch) | From 2 s after the switch "
            "| Time from the switch to clean service | Acknowledged / rows on the new writer (lost, doubled) "
            "| Failed but written | Connect attempts per inv | Peak envs | Latency p50 / p99 / max ms |",
            "|---|---:|---|---:|---:|---|---:|---:|---:|---|",
        ]
        for r in rows:
            d, f = r.data, r.data["failover"]
            lat = d["latency_ms"]
            lines.append(
                f"| {worst_name(r, by_strategy)} | {d['invocations']:,} | {_errors(d['errors_by_code'])} "
                f"({f['errors_before']} / {f['errors_during']} / {f['errors_after']}) "
                f"| {f['errors_from_2s_after_switch']:,} | {_ttc(f)} "
                f"| {f['acked']:,} / {f['rows_on_new_writer']:,} ({f['lost']}, {f['doubled']}) "
                f"| {f['failed_but_written']} | {fmt(f['client_attempts_per_invocation'], 2)} "
                f"| {f['peak_busy_envs']} | {fmt(lat['p50'])} / {fmt(lat['p99'])} / {fmt(lat['max'])} |"
            )
        lines += all_runs_lines(by_strategy, _run_line)
        lib = next((r for r in rows if r.strategy == LIB), None)
        if lib is not None:
            f = lib.data["failover"]
            steps = ", ".join(f"{k} {v:.2f} s" for k, v in f["steps_s"].items() if v is not None)
            lines += [
                "",
                f"Failover steps of the reported `with_mysql` run (seconds since the start of the load): {steps}.",
            ]
            if f.get("errors_not_in_flight") is not None:
                lines.append(
                    f"Errors of invocations that were not in flight at the SIGKILL: {f['errors_not_in_flight']}"
                    + (f" ({f['errors_not_in_flight_by_code']})" if f["errors_not_in_flight"] else "")
                    + "."
                )
        f0 = rows[0].data["failover"]
        lines += ["", timeline_markdown(rows, f0["failover_at_s"], f0["switch_at_s"])]
        chart = extras.get("charts", {}).get(sc.key)
        if chart:
            lines += ["", f"Chart: `{Path(chart).name}` in the output directory."]
        lines.append("")
    return "\n".join(lines)


def _at(values: Sequence[Any], k: int) -> Any:
    return values[k] if k < len(values) else None


def timeline_markdown(rows: Sequence[RunResult], failover_at: float, switch_at: float) -> str:
    """Per second around the failover: ok / errors (by arrival) of each reported row."""
    first = max(0, math.floor(failover_at) - 1)
    last = math.ceil(switch_at) + 5
    header = "| t (s) | " + " | ".join(f"{r.strategy}: ok / err / busy / CPU" for r in rows) + " |"
    lines = [
        "Per second (ok: completed in that second; err: failed, by the second they arrived; busy: environments "
        "running an invocation, the most seen; CPU: cores used by the strategy's host processes - the endpoints' "
        "forwarder - the MariaDB servers):",
        "",
        header,
        "|---:|" + "---:|" * len(rows),
    ]
    for k in range(first, last + 1):
        cells = []
        for r in rows:
            tl = r.data["failover"]["timeline"]
            ok = tl["ok"][k] if k < len(tl["ok"]) else 0
            err = tl["errors_by_arrival"][k] if k < len(tl["errors_by_arrival"]) else 0
            busy = tl["busy_envs_max"][k] if k < len(tl["busy_envs_max"]) else None
            cpu = "-".join(fmt(_at(tl.get(name, []), k), 1) for name in ("client_cpu", "forwarder_cpu", "servers_cpu"))
            cells.append(f"{ok} / {err} / {fmt(busy)} / {cpu}")
        mark = " failover" if k == math.floor(failover_at) else (" switch" if k == math.floor(switch_at) else "")
        lines.append(f"| {k}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def check_failover_targets(results: Sequence[RunResult]) -> list[tuple[str, bool | None, str]]:
    """Issue 17's "Done when" for the library, judged on every library run (the worst value over the runs)."""
    out: list[tuple[str, bool | None, str]] = []
    for key, variant in (("failover-demote", "demote"), ("failover-crash", "crash")):
        _, by_strategy = reported_failover(results, key)
        runs = [r.data for r in by_strategy.get(LIB, [])]
        if not runs:
            continue
        n = f" (worst of {len(runs)} runs)" if len(runs) > 1 else ""
        errors = max(d["errors"] for d in runs)
        lost = max(d["failover"]["lost"] for d in runs)
        doubled = max(d["failover"]["doubled"] for d in runs)
        ttcs = [d["failover"]["time_to_clean_s"] for d in runs]
        ttc = None if any(t is None for t in ttcs) else max(ttcs)
        ttc_text = "never clean" if ttc is None else f"clean {ttc:.1f} s after the switch"
        if variant == "demote":
            out.append(
                (
                    "failover-demote: 0 errors, 0 lost, 0 doubled, clean <= 2 s after the switch",
                    errors == 0 and lost == 0 and doubled == 0 and ttc is not None and ttc <= CLEAN_WITHIN_S,
                    f"{errors} errors, {lost} lost, {doubled} doubled, {ttc_text}{n}",
                )
            )
        else:
            stray = max(d["failover"]["errors_not_in_flight"] or 0 for d in runs)
            late = max(d["failover"]["errors_from_2s_after_switch"] for d in runs)
            codes = sorted({c for d in runs for c in d["errors_by_code"]})
            only_lost = all(c.startswith("ConnectionLostError") for c in codes)
            out.append(
                (
                    "failover-crash: only writes in flight fail (ConnectionLostError), 0 errors from 2 s after the "
                    "switch, 0 doubled, every acknowledged write present",
                    stray == 0 and only_lost and late == 0 and doubled == 0 and lost == 0,
                    f"{errors} errors ({', '.join(codes) or 'none'}), {stray} not in flight, {late} from 2 s after "
                    f"the switch, {lost} lost, {doubled} doubled, {ttc_text}{n}",
                )
            )
    return out


def write_failover_charts(out_dir: Path, results: Sequence[RunResult], scenarios: Sequence[Scenario]) -> dict[str, str]:
    """One PNG per failover scenario: ok/s with the offered load, errors/s by arrival, busy environments and connect
    attempts/s per strategy (the library's reported run bold); the failover-to-switch window shaded."""
    panels = [
        Panel("ok", "ok invocations / s"),
        Panel("errors_by_arrival", "errors / s (by arrival)"),
        Panel("busy_envs_max", "busy environments"),
        Panel("client_attempts", "connect attempts / s (client)", symlog=True),
    ]
    paths: dict[str, str] = {}
    for sc in scenarios:
        if sc.failover is None:
            continue
        rows, by_strategy = reported_failover(results, sc.key)
        if not rows:
            continue
        first = rows[0].data["failover"]

        def switch_line(axes: Sequence[Any], at: float = first["switch_at_s"]) -> None:
            for ax in axes:
                ax.axvline(at, color="purple", linewidth=0.8)

        paths[sc.key] = timeline_chart(
            out_dir / f"{sc.key}.png",
            "failover",
            rows,
            by_strategy,
            panels,
            height=9.5,
            shade=[(first["failover_at_s"], first["switch_at_s"])],
            title=f"{sc.title}: {sc.trigger_text}",
            xlabel="seconds since the start of the load (shaded: failover until the endpoint switch)",
            legends=[(0, "lower left")],
            decorate=switch_line,
        )
    return paths
