"""Results: the markdown table, the targets for this library, JSON and PNG charts."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import REPO_ROOT
from bench.report_common import STRATEGY_COLORS, Panel, all_runs_lines, fmt, timeline_chart, worst_name, worst_runs
from bench.scenarios import ZOMBIE_MAX_TIMEOUT, RunResult, Scenario

__all__ = [
    "check_overload_targets",
    "check_targets",
    "machine",
    "markdown",
    "overload_markdown",
    "reported",
    "run_key",
    "write_charts",
    "write_json",
    "write_overload_charts",
]

LIB = "with_mysql"
# A client process above this share of one core was CPU-bound: its numbers say more about this 2-core machine
# than about the strategy (on Lambda every environment has its own CPU).
SATURATED = 0.85


def _version(cmd: list[str]) -> str:
    exe = shutil.which(cmd[0]) or (cmd[0] if os.path.exists(cmd[0]) else None)
    if exe is None:
        return "?"
    try:
        out = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


def machine() -> dict[str, Any]:
    """Cores, RAM, CPU model, OS and the versions that matter."""
    import pymysql

    cpu_model = "?"
    mem_gib = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            kib = int(re.split(r"\s+", f.readline())[1])
            mem_gib = round(kib / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    try:
        from importlib.metadata import version

        lib_version = version("serverless-mysql")
    except Exception:
        lib_version = "?"
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "ram_gib": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "pymysql": getattr(pymysql, "VERSION_STRING", "?"),
        "serverless_mysql_python": lib_version,
        "mariadb": _version([mariadbd, "--no-defaults", "--version"]),
        "node": _version(["node", "--version"]),
    }


def _errors_text(errors: dict[str, int], limit: int = 3) -> str:
    if not errors:
        return "0"
    total = sum(errors.values())
    parts = [f"{n} {code}" for code, n in list(errors.items())[:limit]]
    more = len(errors) - limit
    return f"**{total}**: " + "; ".join(parts) + (f"; +{more} kinds" if more > 0 else "")


def _cpu_text(d: dict[str, Any]) -> str:
    cpu = d["cpu_s"]
    wall = d["duration_s"] + d["drain_s"]
    client = cpu.get("client_s") or 0.0
    processes = cpu.get("client_processes") or 1
    everything = client + cpu.get("mariadbd_s", 0.0) + cpu.get("scheduler_s", 0.0)
    cores = os.cpu_count() or 1
    flag = " ⚠" if client / wall > SATURATED * processes or everything / wall > SATURATED * cores else ""
    return f"{client:.1f}{flag} / {cpu['mariadbd_s']:.1f}"


def _chart_line(extras: dict[str, Any], key: str) -> list[str]:
    """Below a scenario's table: where its chart is, if one was written."""
    chart = extras.get("charts", {}).get(key)
    if not chart:
        return []
    shown = Path(chart).relative_to(REPO_ROOT) if Path(chart).is_relative_to(REPO_ROOT) else chart
    return ["", f"Chart: `{shown}` (written by the run, not committed)"]


def markdown(results: Sequence[RunResult], scenarios: Sequence[Scenario], extras: dict[str, Any]) -> str:
    """The whole report: machine, method notes, one table per scenario, targets, micro-benchmarks."""
    by_scenario: dict[str, list[RunResult]] = {}
    for r in results:
        by_scenario.setdefault(r.scenario, []).append(r)
    lines: list[str] = []
    for sc in scenarios:
        runs = by_scenario.get(sc.key)
        if not runs:
            continue
        lines += [
            f"### {sc.title}",
            "",
            f"{sc.description} `max_connections={sc.max_connections}`, load: {sc.describe_load()}, "
            f"{sc.duration:g} s, Lambda timeout {sc.timeout:g} s; physical limit "
            f"{sc.max_connections} / {sc.hold:g} s = **{sc.physical_limit:,.0f} inv/s**.",
            "",
            "| Strategy | Invocations | Errors | Throughput inv/s (% of limit) "
            "| Latency mean / p50 / p95 / p99 / max ms | Peak conns | Zombies at end (oldest s) "
            "| Connects / attempts per inv | Statements per inv "
            "| CPU s: client / mariadbd |",
            "|---|---:|---|---:|---|---:|---:|---:|---:|---|",
        ]
        for r in runs:
            d = r.data
            lat = d["latency_ms"]
            lat_text = " / ".join(fmt(lat[k]) for k in ("mean", "p50", "p95", "p99", "max"))
            errors = _errors_text(d["errors_by_code"])
            if "errors_after_restart" in d:
                errors += f" (after restart: **{d['errors_after_restart']}**)"
            lines.append(
                f"| {d['strategy']} | {d['invocations']:,} | {errors} "
                f"| {d['throughput_per_s']:,.0f} ({d['fraction_of_limit']:.0%}) | {lat_text} "
                f"| {d['peak_connections']} / {d['max_connections']} | {d['zombies_end']} ({d['oldest_zombie_s']}) "
                f"| {d['connects_per_invocation']:.2f} / {d['connect_attempts_per_invocation']:.2f} "
                f"| {d['statements_per_invocation']:.2f} | {_cpu_text(d)} |"
            )
        lines += _chart_line(extras, sc.key)
        lines.append("")
    return "\n".join(lines)


def check_targets(results: Sequence[RunResult], extras: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """(target, met?, measured) for this library; None when not measured in this run."""
    lib = {r.scenario: r.data for r in results if r.strategy == LIB}
    out: list[tuple[str, bool | None, str]] = []

    def add(name: str, key: str, check: Any) -> None:
        d = lib.get(key)
        if d is None:
            out.append((name, None, "not run"))
            return
        ok, text = check(d)
        out.append((name, ok, text))

    add("Scenario 1: zero errors", "s1-burst", lambda d: (d["errors"] == 0, f"{d['errors']} errors"))
    add("Scenario 2: zero errors", "s2-oversubscribed", lambda d: (d["errors"] == 0, f"{d['errors']} errors"))
    add(
        "Scenario 2: throughput >= 80% of the physical limit",
        "s2-oversubscribed",
        lambda d: (
            d["fraction_of_limit"] >= 0.8,
            f"{d['throughput_per_s']:,.0f} inv/s = {d['fraction_of_limit']:.0%} of {d['physical_limit_per_s']:,.0f}",
        ),
    )
    add("Scenario 3: zero errors", "s3-kill-storm", lambda d: (d["errors"] == 0, f"{d['errors']} errors"))
    add(
        "Scenario 4: zero errors after the restart",
        "s4-crash",
        lambda d: (
            d.get("errors_after_restart", 0) == 0,
            f"{d.get('errors_after_restart', '?')} errors after restart "
            f"({d['errors']} in total, {d.get('errors_during_outage', '?')} arrived during the outage)",
        ),
    )
    add(
        "Scenario 1: <= 1.2 statements per invocation (one-query handler)",
        "s1-burst",
        lambda d: (d["statements_per_invocation"] <= 1.2, f"{d['statements_per_invocation']:.2f}"),
    )
    oldest = [(k, d["oldest_zombie_s"]) for k, d in lib.items()]
    if oldest:
        worst = max(oldest, key=lambda kv: kv[1])
        out.append(
            (
                f"No zombie older than zombie_max_timeout ({ZOMBIE_MAX_TIMEOUT} s) at the end",
                worst[1] <= ZOMBIE_MAX_TIMEOUT,
                f"oldest {worst[1]} s ({worst[0]})",
            )
        )
    imp = extras.get("import_time")
    if imp and imp.get("ratio") is not None:
        out.append(
            (
                "Import time <= 1.25x `import pymysql`",
                imp["ratio"] <= 1.25,
                f"{imp['serverless_mysql_ms']:.0f} ms vs {imp['pymysql_ms']:.0f} ms = {imp['ratio']:.2f}x",
            )
        )
    ri = extras.get("runtime_init")
    if ri:
        out.append(
            (
                "Init under awslambdaric: `serverless_mysql` + decoration <= 10 ms on top of `import pymysql`",
                bool(ri["met"]),
                f"{ri['lib_ms']:.1f} ms (PyMySQL {ri['pymysql_ms']:.1f} ms); init {ri['init_managed_ms']:.0f} ms vs "
                f"{ri['init_plain_ms']:.0f} ms",
            )
        )
    h = extras.get("hot_path")
    if h:
        for key, name in (
            ("query", '`db.query("SELECT 1")` <= +5% vs raw PyMySQL (median of interleaved batches)'),
            ("invocation", "A whole `@with_mysql` invocation (query + `end()`) <= +40% vs raw PyMySQL `SELECT 1`"),
        ):
            c = h[key]
            o = c["overhead"]
            out.append(
                (
                    name,
                    bool(c["met"]),
                    f"{h['us'][key]['median']:.1f} us vs {h['us']['raw']['median']:.1f} us = {o['median']:+.1%} "
                    f"(IQR {o['q1']:+.1%}..{o['q3']:+.1%})",
                )
            )
    return out


def targets_markdown(targets: Sequence[tuple[str, bool | None, str]]) -> str:
    lines = ["| Target for `@with_mysql` | Result | Measured |", "|---|---|---|"]
    for name, ok, text in targets:
        mark = "not run" if ok is None else ("met" if ok else "**MISSED**")
        lines.append(f"| {name} | {mark} | {text} |")
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")


def _downsample(points: Sequence[Any], limit: int) -> list[Any]:
    if len(points) <= limit:
        return list(points)
    step = len(points) / limit
    return [points[int(i * step)] for i in range(limit)]


def series_for_json(r: RunResult) -> dict[str, Any]:
    lat = r.latencies_ms
    cdf = [(lat[min(len(lat) - 1, int(q / 1000 * len(lat)))], q / 1000) for q in range(0, 1001, 5)] if lat else []
    return {"connections": _downsample(r.series, 1500), "latency_cdf": cdf, "events": r.events}


def write_charts(out_dir: Path, results: Sequence[RunResult], scenarios: Sequence[Scenario]) -> dict[str, str]:
    """One PNG per scenario: connections over time against the limit, and the latency CDF per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = STRATEGY_COLORS
    paths: dict[str, str] = {}
    for sc in scenarios:
        runs = [r for r in results if r.scenario == sc.key]
        if not runs:
            continue
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.6))
        for r in runs:
            xs = [t for t, c in r.series if c is not None]
            ys = [c for _, c in r.series if c is not None]
            ax1.plot(xs, ys, label=r.strategy, color=colors.get(r.strategy), linewidth=1.1)
            if r.latencies_ms:
                lat = r.latencies_ms
                n = len(lat)
                idx = sorted({min(n - 1, int(i * n / 400)) for i in range(401)})
                ax2.plot(
                    [lat[i] for i in idx],
                    [(i + 1) / n for i in idx],
                    label=r.strategy,
                    color=colors.get(r.strategy),
                    linewidth=1.3,
                )
        ax1.axhline(sc.max_connections, color="black", linestyle="--", linewidth=1, label="max_connections")
        for t, label in runs[0].events:
            ax1.axvline(t, color="purple", linestyle=":", linewidth=1)
            ax1.annotate(label, (t, sc.max_connections * 1.02), fontsize=7, color="purple", rotation=90, va="bottom")
        ax1.set_xlabel("seconds")
        ax1.set_ylabel("application connections on the server")
        ax1.set_title(f"{sc.title}: connections (sampled every 50 ms)")
        ax1.set_ylim(0, sc.max_connections * 1.35)
        ax1.legend(fontsize=7, loc="upper left", ncol=3)
        ax2.set_xscale("log")
        ax2.set_xlabel("end-to-end invocation latency, ms (successful invocations)")
        ax2.set_ylabel("fraction of invocations")
        ax2.set_title("latency CDF")
        ax2.grid(True, which="both", alpha=0.3)
        ax2.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        path = out_dir / f"{sc.key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths[sc.key] = str(path)
    return paths


# ---- issue 10's overload scenarios ------------------------------------------------------------------------------

PEER_BASELINE = "naive-per-invocation"


def run_key(d: dict[str, Any]) -> tuple[int | None, int, float | None]:
    """(errors after the trigger, errors in total, time to clean service) of one run, for :func:`worst_index`."""
    o = d.get("overload") or {}
    return o.get("errors_after"), int(d["errors"]), o.get("time_to_clean_s")


def reported(results: Sequence[RunResult], scenario: str) -> tuple[list[RunResult], dict[str, list[RunResult]]]:
    """The rows to report for one scenario: one per strategy (the worst run where there are several, see
    :func:`bench.overload.worst_index`), and every strategy's runs in order."""
    return worst_runs(results, scenario, run_key)


def _ttc_text(o: dict[str, Any]) -> str:
    if o.get("trigger_end_s") is None:
        return "n/a"
    if o.get("clean_at_s") is None:
        return "**never**"
    return f"{o['time_to_clean_s']:.1f} s"


def _attempts_text(o: dict[str, Any]) -> str:
    client = o.get("client_attempts_per_invocation")
    return f"{o['server_attempts_per_invocation']:.2f} / {fmt(client, 2)}"


def _run_summary(r: RunResult) -> str:
    d = r.data
    o = d["overload"]
    during = "-" if o["errors_during"] is None else str(o["errors_during"])
    return (
        f"run {r.run}: {d['errors']} errors ({during} during, {o['errors_after']} after), clean {_ttc_text(o)}, "
        f"{d['throughput_per_s']:,.0f} inv/s, attempts/inv {_attempts_text(o)}, "
        f"{d['statements_per_invocation']:.2f} stmts/inv, peak {o['peak_busy_envs']} envs, "
        f"p99 {fmt(d['latency_ms']['p99'])} ms"
    )


def _offered(runs: Sequence[dict[str, Any]]) -> str:
    """The worst run's p99 over every offered invocation, or "failed" when failures reach into its slowest 1%."""
    values = [d["latency_ms"].get("p99_offered") for d in runs]
    return "failed" if any(v is None for v in values) else fmt(max(values))


def between_bursts(d: dict[str, Any]) -> int | None:
    """The most connections held in the second before any of the load's bursts (None: the load has none).

    What a bursty load's fleet has settled to when the next burst comes: a fleet stuck at the limit shows it here.
    The bursts are the run's own trigger windows (``overload.windows``, labelled "burst").
    """
    overload = d.get("overload", {})
    held = (overload.get("timeline") or {}).get("connections_max") or []
    before = [int(w["start"]) - 1 for w in overload.get("windows") or [] if w.get("label") == "burst"]
    values = [held[s] for s in before if 0 <= s < len(held) and held[s] is not None]
    return int(max(values)) if values else None


def server_cpu_ms(d: dict[str, Any]) -> float | None:
    """mariadbd's own CPU time (user + system, from /proc) over the run, in ms per successful invocation."""
    cpu = d.get("cpu_s", {}).get("mariadbd_s")
    return None if cpu is None or not d.get("ok") else 1000.0 * cpu / d["ok"]


def overload_markdown(results: Sequence[RunResult], scenarios: Sequence[Scenario], extras: dict[str, Any]) -> str:
    """One table per overload scenario: per strategy (worst of the library's runs), plus all runs' key numbers."""
    lines: list[str] = []
    for sc in scenarios:
        if not sc.overload:
            continue
        rows, by_strategy = reported(results, sc.key)
        if not rows:
            continue
        lines += [
            f"### {sc.title}",
            "",
            f"{sc.description} `max_connections={sc.max_connections}`, load: {sc.describe_load()}, "
            f"{sc.duration:g} s, trigger: {sc.trigger_text}; Lambda timeout {sc.timeout:g} s, idle environments "
            f"destroyed after {sc.idle_ttl[0]:g} s; physical limit {sc.max_connections} / {sc.hold:g} s = "
            f"**{sc.physical_limit:,.0f} inv/s**.",
            "",
            "| Strategy | Invocations | Errors: total (before / during / after trigger) | Time to clean service "
            "| Throughput inv/s (% of limit) | Connect attempts per inv: server / client | Statements per inv "
            "| Peak envs: busy (live) | Latency p50 / p99 / max ms | Server CPU ms per served inv |",
            "|---|---:|---|---:|---:|---:|---:|---:|---|---:|",
        ]
        for r in rows:
            d = r.data
            o = d["overload"]
            lat = d["latency_ms"]
            during = "-" if o["errors_during"] is None else str(o["errors_during"])
            split = f"({o['errors_before']} / {during} / {o['errors_after']})"
            errors = _errors_text(d["errors_by_code"], limit=2)
            if "errors_after_up" in o:
                split += f"; arrived after the server was back: {o['errors_after_up']}"
            lines.append(
                f"| {worst_name(r, by_strategy)} | {d['invocations']:,} | {errors} {split} | {_ttc_text(o)} "
                f"| {d['throughput_per_s']:,.0f} ({d['fraction_of_limit']:.0%}) | {_attempts_text(o)} "
                f"| {d['statements_per_invocation']:.2f} | {o['peak_busy_envs']} ({o['peak_live_envs']}) "
                f"| {fmt(lat['p50'])} / {fmt(lat['p99'])} / {fmt(lat['max'])} | {fmt(server_cpu_ms(d), 2)} |"
            )
        lines += all_runs_lines(by_strategy, _run_summary)
        lines += _chart_line(extras, sc.key)
        lines.append("")
    return "\n".join(lines)


def check_overload_targets(results: Sequence[RunResult]) -> list[tuple[str, bool | None, str]]:
    """Issue 10's "Done when" for the library, as (target, met?, measured): judged on the reported (worst) run, and
    numbers outside the worst-run key (attempts and statements per invocation, throughput, p99) on the worst value
    over all the library's runs."""
    out: list[tuple[str, bool | None, str]] = []
    keys = sorted({r.scenario for r in results if r.data.get("overload") is not None}, key=_ORDER.index)
    lib: dict[str, dict[str, Any]] = {}
    lib_runs: dict[str, list[dict[str, Any]]] = {}
    peers: dict[tuple[str, str], dict[str, Any]] = {}
    for key in keys:
        rows, by_strategy = reported(results, key)
        lib_runs[key] = [r.data for r in by_strategy.get(LIB, [])]
        for r in rows:
            if r.strategy == LIB:
                lib[key] = r.data
            else:
                peers[(key, r.strategy)] = r.data
    if not lib:
        return out
    for key in keys:
        d = lib.get(key)
        if d is None:
            continue
        o = d["overload"]
        if o["trigger_end_s"] is None:
            continue
        clean = "never clean" if o["clean_at_s"] is None else f"clean from t={o['clean_at_s']} s"
        out.append(
            (
                f"{key}: not metastable (0 errors and the offered load served from 2 s after the trigger ends)",
                not o["metastable"],
                f"trigger ended at {o['trigger_end_s']:.1f} s, {clean}; {o['errors_after']} errors after",
            )
        )
    if "spike" in lib:
        d = lib["spike"]
        peer = peers.get(("spike", PEER_BASELINE))
        if peer is None:
            out.append(("spike: fewer errors than per-invocation PyMySQL", None, f"{d['errors']} errors; peer not run"))
        else:
            out.append(
                (
                    "spike: fewer errors than per-invocation PyMySQL",
                    d["errors"] < peer["errors"],
                    f"{d['errors']} vs {peer['errors']}",
                )
            )
    if "restart" in lib:
        o = lib["restart"]["overload"]
        after_up = o.get("errors_after_up")
        out.append(
            (
                "restart: 0 errors once the server is back",
                after_up == 0 if after_up is not None else None,
                f"{after_up} errors of invocations that arrived after it was back "
                f"({o.get('errors_arrived_in_outage')} of those that arrived during the outage, "
                f"{lib['restart']['errors']} in total)",
            )
        )
    if "seed" in lib:
        runs = lib_runs["seed"]
        peer = peers.get(("seed", PEER_BASELINE))
        errors = max(d["errors"] for d in runs)
        served = min(d["ok"] / d["invocations"] if d["invocations"] else 0.0 for d in runs)
        p50 = max(d["latency_ms"]["p50"] or math.inf for d in runs)
        p99 = max(d["latency_ms"]["p99"] or math.inf for d in runs)
        if peer is None:
            met: bool | None = None
            versus = "peer not run"
        else:
            met = (
                errors == 0
                and served >= 0.95
                and p50 <= (peer["latency_ms"]["p50"] or 0)
                and p99 <= (peer["latency_ms"]["p99"] or 0)
            )
            versus = (
                f"per-invocation PyMySQL p50 {fmt(peer['latency_ms']['p50'])} / p99 {fmt(peer['latency_ms']['p99'])}"
                f", {peer['errors']} errors, {fmt(between_bursts(peer))} connections held between bursts; p99 of "
                f"all offered (a failure slower than any served): {_offered(runs)} / PyMySQL {_offered([peer])} ms"
            )
        out.append(
            (
                "seed: 0 errors, >= 95% of the offered load served, p50 and p99 no worse than per-invocation PyMySQL",
                met,
                f"{errors} errors, {served:.0%} served, p50 {fmt(p50)} / p99 {fmt(p99)} ms (worst of "
                f"{len(runs)}); per run, connections held between bursts "
                f"{' / '.join(fmt(between_bursts(d)) for d in runs)} of {runs[0]['max_connections']} and busy "
                f"environments at most {' / '.join(fmt(d['fleet']['peak_busy']) for d in runs)}; {versus}",
            )
        )
    if "lastwait" in lib:
        runs = lib_runs["lastwait"]
        errors = max(d["errors"] for d in runs)
        drains = [d["drain_s"] for d in runs]
        out.append(
            (
                "lastwait: 0 errors, the restart's last waiters served after the load ends (none left unfinished)",
                errors == 0 and all(d["drained"] for d in runs),
                f"{errors} errors, the last invocation ended {max(drains):.1f} s after the load"
                + (f" (worst of {len(runs)} runs)" if len(runs) > 1 else ""),
            )
        )
    if "oversubscription" in lib:
        runs = lib_runs["oversubscription"]
        fraction = min(d["fraction_of_limit"] for d in runs)
        errors = max(d["errors"] for d in runs)
        p99s = [d["latency_ms"]["p99"] for d in runs]
        p99 = None if any(p is None for p in p99s) else max(p99s)
        met = errors == 0 and fraction >= 0.85 and p99 is not None and p99 <= 5000
        out.append(
            (
                "oversubscription: >= 85% of the physical limit, 0 errors, p99 <= 5 s",
                met,
                f"{fraction:.0%} of {runs[0]['physical_limit_per_s']:,.0f} inv/s, {errors} errors, p99 {fmt(p99)} ms"
                + (f" (the worst of {len(runs)} runs, number by number)" if len(runs) > 1 else ""),
            )
        )
    for key in ("oversubscription", "crowd"):
        if key not in lib:
            continue
        runs = lib_runs[key]
        attempts = [d["overload"]["server_attempts_per_invocation"] for d in runs]
        worst_attempts = None if any(a is None for a in attempts) else max(attempts)
        ratios = [
            d["latency_ms"]["p99"] / d["latency_ms"]["mean"] if d["latency_ms"]["mean"] else math.inf for d in runs
        ]
        out.append(
            (
                f"{key}: <= 2.5 connect attempts per invocation (server-counted), p99 latency <= 2x its mean",
                worst_attempts is not None and worst_attempts <= 2.5 and max(ratios) <= 2.0,
                f"{fmt(worst_attempts, 2)} attempts per invocation, p99 / mean {max(ratios):.1f}"
                + (f" (the worst of {len(runs)} runs, number by number)" if len(runs) > 1 else ""),
            )
        )
    cpu_rows = []
    for key in keys:
        lib_cpu = [server_cpu_ms(d) for d in lib_runs.get(key, [])]
        peer = peers.get((key, PEER_BASELINE))
        if not lib_cpu or any(c is None for c in lib_cpu) or peer is None or server_cpu_ms(peer) is None:
            continue
        cpu_rows.append((key, max(c for c in lib_cpu if c is not None), server_cpu_ms(peer) or 0.0))
    if cpu_rows:
        out.append(
            (
                "server CPU per served invocation at or below per-invocation PyMySQL's in every scenario (issue 20)",
                all(lib_ms <= peer_ms for _, lib_ms, peer_ms in cpu_rows),
                ", ".join(f"{k} {lib_ms:.2f} vs {peer_ms:.2f} ms" for k, lib_ms, peer_ms in cpu_rows)
                + " (the library's most over its runs vs the peer's run)",
            )
        )
    for who, field_name in (("server", "server_attempts_per_invocation"), ("client", "client_attempts_per_invocation")):
        values: dict[str, float | None] = {}
        for k in keys:
            per_run = [d["overload"].get(field_name) for d in lib_runs.get(k, [])]
            if per_run:
                values[k] = None if any(v is None for v in per_run) else max(per_run)
        known = {k: v for k, v in values.items() if v is not None}
        text = ", ".join(f"{k} {fmt(v, 2)}" for k, v in values.items()) + " (the most of the library's runs)"
        out.append(
            (
                f"<= 3 connect attempts per invocation in every scenario ({who}-counted)",
                all(v <= 3 for v in known.values()) if known else None,
                text,
            )
        )
    if "bursts" in lib:
        runs = lib_runs["bursts"]
        errors = max(d["errors"] for d in runs)
        statements = max(d["statements_per_invocation"] for d in runs)
        out.append(
            (
                "bursts: 0 errors and <= 1.2 statements per invocation",
                errors == 0 and statements <= 1.2,
                f"{errors} errors, {statements:.2f} statements per invocation"
                + (f" (worst of {len(runs)} runs)" if len(runs) > 1 else ""),
            )
        )
    return out


_ORDER = ["spike", "restart", "oversubscription", "crowd", "kill-storm", "bursts", "stall", "seed", "lastwait"]


def write_overload_charts(out_dir: Path, results: Sequence[RunResult], scenarios: Sequence[Scenario]) -> dict[str, str]:
    """One PNG per overload scenario: per-second ok, errors, connections, connect attempts and busy environments,
    one line per strategy (the library's reported run bold, its other runs thin), the triggers shaded."""
    panels = [
        Panel("ok", "ok invocations / s"),
        Panel("errors_by_arrival", "errors / s (by arrival)"),
        Panel(
            "connections_max",
            "connections (max in the second;\ndotted: asleep 1 s or more)",
            dotted="connections_idle_1s_max",
        ),
        Panel(
            "server_attempts", "connect attempts / s", dotted="client_attempts", label_suffix=" (server)", symlog=True
        ),
        Panel("busy_envs_max", "busy environments"),
    ]
    paths: dict[str, str] = {}
    for sc in scenarios:
        if not sc.overload:
            continue
        rows, by_strategy = reported(results, sc.key)
        if not rows:
            continue
        lib_rows = [r for r in rows if r.strategy == LIB]
        windows = (lib_rows[0] if lib_rows else rows[0]).data["overload"]["windows"]

        def limit_and_key(axes: Sequence[Any], max_connections: int = sc.max_connections) -> None:
            axes[2].axhline(max_connections, color="black", linestyle="--", linewidth=0.8, label="max_connections")
            axes[3].set_title("solid: server-counted (logins + refused), dotted: client-counted", fontsize=8)

        paths[sc.key] = timeline_chart(
            out_dir / f"{sc.key}.png",
            "overload",
            rows,
            by_strategy,
            panels,
            height=12,
            shade=[(w["start"], max(w["end"], w["start"] + 0.1)) for w in windows],
            title=f"{sc.title}: {sc.trigger_text}",
            xlabel="seconds since the start of the load (per-second buckets; shaded: the trigger)",
            legends=[(0, "upper right"), (3, "upper right")],
            decorate=limit_and_key,
        )
    return paths
