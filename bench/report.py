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
from bench.scenarios import ZOMBIE_MAX_TIMEOUT, RunResult, Scenario

__all__ = ["check_targets", "machine", "markdown", "write_charts", "write_json"]

LIB = "with_mysql"
# A client process above this share of one core was CPU-bound: its numbers say more about this 2-core machine
# than about the strategy (on Lambda every environment has its own CPU).
SATURATED = 0.85


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


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
            lat_text = " / ".join(_fmt(lat[k]) for k in ("mean", "p50", "p95", "p99", "max"))
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
        chart = extras.get("charts", {}).get(sc.key)
        if chart:
            shown = Path(chart).relative_to(REPO_ROOT) if Path(chart).is_relative_to(REPO_ROOT) else chart
            lines += ["", f"Chart: `{shown}` (written by the run, not committed)"]
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
    q = extras.get("query_overhead")
    if q and q.get("overhead") is not None:
        out.append(
            (
                "Per-query overhead on a warm connection <= 10% vs raw PyMySQL",
                q["overhead"] <= 0.10,
                f"{q['query_us']:.0f} us vs {q['raw_us']:.0f} us = {q['overhead']:+.1%}",
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

    colors = {
        "naive-per-invocation": "tab:gray",
        "naive-global": "tab:red",
        "npm-serverless-mysql": "tab:orange",
        "with_mysql": "tab:blue",
    }
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
