"""``python -m bench [--quick]``: every strategy through every scenario, then the report.

The default scenarios are issue 10's overload scenarios (spike, restart, oversubscription, KILL storm, bursts,
stall); ``with_mysql`` runs each of them ``LIB_RUNS`` times in a full run and the worst run is reported, the
peers run once. ``--scenarios legacy`` (or ``s1`` ... ``s4``) runs the four earlier scenarios.

Outputs (paths printed at the end): ``bench/out/results.md``, ``bench/out/results.json`` and one PNG per
scenario; a full run of everything also refreshes ``bench/RESULTS.md`` (notes below its marker line are kept).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench import BENCH_DIR, OUT_DIR
from bench.failover import failover_scenarios
from bench.failover_report import FAILOVER_METHOD, check_failover_targets, failover_markdown, write_failover_charts
from bench.micro import MIN_BATCHES, connect_cost, hot_path, hot_path_lines, import_times
from bench.overload import AFTER_MARGIN_S, CLEAN_OK_FRACTION
from bench.progress import Progress
from bench.report import (
    check_overload_targets,
    check_targets,
    machine,
    markdown,
    overload_markdown,
    series_for_json,
    targets_markdown,
    write_charts,
    write_json,
    write_overload_charts,
)
from bench.runtime_init import runtime_init
from bench.scenarios import (
    LIB_RUNS,
    ZOMBIE_MAX_TIMEOUT,
    RunResult,
    Scenario,
    legacy_scenarios,
    run_one,
    scenarios,
)
from bench.strategies import STRATEGY_NAMES, ensure_node_modules

NOTES_MARKER = "<!-- Notes below this line are kept when python -m bench rewrites this file. -->"
RUN_OVERHEAD_S = 3.0  # server start, drain and cleanup per run (for the progress bar only)
# naive-global is left out of the overload scenarios by default to fit `make bench` in 20 minutes on 2 cores;
# `--strategies` brings it back.
DEFAULT_STRATEGIES = ("naive-per-invocation", "npm-serverless-mysql", "with_mysql")

METHOD = f"""\
**How to read this.** Every row is one strategy running one scenario against its own fresh MariaDB on
loopback. One Python scheduler simulates Lambda for all strategies with the same seeded arrival schedule:
warm environments are reused (most recently used first), new ones cold-start when none is idle, environments
idle for 2-6 s are destroyed **without any cleanup** (their connections stay open on the server as zombies), an
invocation past the 6 s timeout fails as `Lambda.Timeout` and its environment is reset (sockets closed). Each
environment owns its own client; Python environments are threads of the benchmark process, the npm
serverless-mysql 2.1.0 (mysql2 3.12.0) instances live in one Node process that the scheduler drives over a pipe.
The handler runs one statement, `SELECT SLEEP(hold)`, then `end()` (libraries) or `close()` (naive).

- *Latency* is end-to-end: from the scheduled arrival to the end of the invocation, including waiting for an
  environment, cold starts and connect retries; successful invocations only.
- *Throughput* counts successful invocations finished inside the run; the *physical limit* is
  max_connections / hold time.
- *Peak conns*: the application user's connections in the processlist, sampled every 50 ms from a root
  connection on MariaDB's extra port (it takes no application slot and is not counted).
- *Zombies at end*: the application's connections that no live environment holds, right after the load stopped
  and in-flight invocations finished; *oldest*: the longest `Sleep` time among them.
- *Connects / attempts per inv*: successful logins (`USER_STATISTICS.TOTAL_CONNECTIONS`) and all connection
  attempts (logins + `Aborted_connects`: refused with 1040 or abandoned handshakes) per invocation.
- *Statements per inv*: `SELECT_COMMANDS + UPDATE_COMMANDS + OTHER_COMMANDS` of the application user per
  invocation: the handler's query, the clients' session setup (PyMySQL sends `SET NAMES`/`SET AUTOCOMMIT`),
  housekeeping and KILLs, plus the server's `Com_show_status` and `Com_show_processlist` (USER_STATISTICS counts no
  SHOW command). Pings and COM_QUIT do not count.
- *CPU s*: the client process (`py` = the benchmark process, which runs the Python strategies' environments
  and the scheduler; `node` = the Node process) and mariadbd, over the run. ⚠ marks a client process above
  {int(0.85 * 100)}% of one core: on this 2-core machine hundreds of environments share one process, whereas on
  Lambda each has its own CPU, so that row is partly limited by the simulation, not by the strategy.
- Options: every strategy connects without TLS (the private servers offer none; mysql2 does not use it by default,
  and PyMySQL 1.2 would otherwise build a new `ssl.create_default_context()` per connection, see below). Both
  libraries use their defaults except `zombie_max_timeout` = `zombieMaxTimeout` = {ZOMBIE_MAX_TIMEOUT} s, so that
  the "no zombie older than zombie_max_timeout" target means something within one run.
"""


OVERLOAD_METHOD = f"""\
**Overload scenarios (issue 10).** Lambda timeout 30 s; idle environments are reused most recently used first
and destroyed after exactly 3 s idle, without cleanup; each strategy's environments live in two host processes
(threads of `python -m bench.pyhost`, instances in `node bench/node/fleet.js`). `with_mysql` runs every scenario
{LIB_RUNS} times in a full run (once in a quick run) and the **worst** run is the row shown: the most errors after
the trigger, then the most errors in total, then the longest time to clean service; the key numbers of all its
runs are listed under each table, so a bistable result shows. The peers run once.

- *Seconds* are buckets `[k, k+1)` since the start of the load. *ok* counts invocations by the second they
  **completed**; the *offered* load and the *errors* by the second they **arrived** (an invocation that arrived in
  the spike and fails 30 s later is damage done by the spike, not a failure to serve later arrivals; the charts
  show errors by completion, the JSON both).
- *Trigger*: the spike second, the outage (SIGKILL until the observer's first successful query on the
  restarted server, sampled every 50 ms), the KILL
  storm (first to last KILL), the stall (SIGSTOP to SIGCONT), each burst. *Errors during*: arrived inside
  `[start, end + {AFTER_MARGIN_S:g} s)` of a trigger; *after*: later (or between two bursts' windows); *before*:
  before the first trigger. Oversubscription has no trigger: all its errors count as *after*. Restart also
  shows the errors of invocations that arrived once the server was back.
- *Time to clean service*: `s - end of the trigger` for the first whole second `s` after the trigger ends such that
  no invocation that arrived from `s` on fails (whenever it ends) and every whole second of load has
  ok >= {CLEAN_OK_FRACTION:.0%} of the arrivals of that second; **never** if there is no such second with at least
  one whole second of load left. *Metastable* (the issue's test): not clean from `ceil(end + {AFTER_MARGIN_S:g} s)`.
- Invocations still running 5 s after the load stopped (1.5 s in a quick run) count as errors (`Unfinished`) at
  that moment: a healthy fleet has none, and a collapsed one must not stretch every run by the 30 s timeout.
- *Connect attempts per invocation, server-counted*: application logins (`USER_STATISTICS.TOTAL_CONNECTIONS`) +
  refused connects (`Aborted_connects`; a 1040 refusal counts there, `Connection_errors_max_connections` is also
  recorded in the JSON) per invocation; read every 0.5 s and summed over server lifetimes (a server that is down
  counts nothing). *Client-counted*: every `pymysql.connections.Connection.connect()` call in the Python host
  processes (PyMySQL's base class, so the library's subclass is included), and every
  `mysql2.createConnection()` that serverless-mysql makes in the Node host; read every second, also while the
  server is down.
- *Connections*: the most application connections the processlist showed in that second (sampled every 50 ms).
- *Peak envs*: the most environments running an invocation at once (Lambda's concurrent executions: waiting
  costs concurrency) and, in parentheses, the most environments alive (busy or idle).
- *Stall*: every host process of the strategy is SIGSTOPped for 2 s: its environments (threads or async
  instances) stop, their sockets are not read, and invocations dispatched meanwhile (to idle or newly created
  environments, which live in the same processes) wait for SIGCONT with their deadline running.
- *Throughput*: successful invocations that completed inside the run, per second; *physical limit*:
  max_connections / hold.
"""


MICRO_METHOD = """\
**Micro-benchmarks.** One process, one private MariaDB, three warm connections: raw PyMySQL (`cursor.execute("SELECT
1")` + `fetchall()`, DictCursor, autocommit, utf8mb4: the session the library asks for), `db.query("SELECT 1")` on a
`ServerlessMySQL`, and a whole `@with_mysql` invocation whose handler runs `db.query("SELECT 1")`, followed by the
decorator's `end()` with default options (so housekeeping runs at its usual rate; the rate is shown). Inside each
batch the three take turns a few calls at a time in a rotating order, so a slow moment of the machine hits all of
them; an overhead is the **median of the per-batch ratios** `library / raw - 1`, shown with its interquartile range.
TLS is off on every connection (`ssl_disabled=True`), as in the fleet runs. The process and the server are pinned to
one CPU: unpinned, each connection's server thread lands on one core or the other, and that alone moved a raw
`SELECT 1` between ~50 and ~100 us from one connection to the next.
"""


def _plan(quick: bool, wanted_scenarios: list[str] | None) -> list[Scenario]:
    overload = scenarios(quick) + failover_scenarios(quick)
    legacy = legacy_scenarios(quick)
    if not wanted_scenarios:
        return overload
    all_scenarios = overload + legacy
    chosen = [
        s
        for s in all_scenarios
        if s.key in wanted_scenarios
        or s.key.split("-")[0] in wanted_scenarios
        or ("legacy" in wanted_scenarios and not s.overload)
        or ("overload" in wanted_scenarios and s.overload)
    ]
    if not chosen:
        raise SystemExit(f"unknown scenario(s) {wanted_scenarios}; choose from {[s.key for s in all_scenarios]}")
    return chosen


def _repeated(sc: Scenario) -> bool:
    """Overload and failover scenarios: the library runs LIB_RUNS times, the peers once."""
    return sc.overload or sc.failover is not None


def _summary_line(r: RunResult) -> str:
    d = r.data
    f = d.get("failover")
    if f is not None:
        clean = "never" if f["clean_at_s"] is None else f"{f['time_to_clean_s']:.1f} s"
        return (
            f"{d['invocations']} invocations, {d['errors']} errors ({f['errors_before']} / {f['errors_during']} / "
            f"{f['errors_after']} before / during / after the switch), clean {clean} after the switch, "
            f"{f['acked']} acked, {f['lost']} lost, {f['doubled']} doubled, peak {f['peak_busy_envs']} envs"
        )
    o = d.get("overload")
    if o is not None:
        clean = (
            "n/a"
            if o["trigger_end_s"] is None
            else ("never" if o["clean_at_s"] is None else f"{o['time_to_clean_s']:.1f} s")
        )
        client = o["client_attempts_per_invocation"]
        return (
            f"{d['invocations']} invocations, {d['errors']} errors ({o['errors_after']} after the trigger), "
            f"clean {clean}, {d['throughput_per_s']:.0f}/s, attempts/inv {o['server_attempts_per_invocation']:.2f} "
            f"server / {client if client is None else round(client, 2)} client, "
            f"{d['statements_per_invocation']:.2f} stmts/inv, peak {o['peak_busy_envs']} envs, "
            f"p99 {d['latency_ms']['p99'] or 0:.0f} ms"
        )
    return (
        f"{d['invocations']} invocations, {d['errors']} errors, {d['throughput_per_s']:.0f}/s, "
        f"p99 {d['latency_ms']['p99'] or 0:.0f} ms, peak {d['peak_connections']}/{d['max_connections']} conns, "
        f"{d['zombies_end']} zombies, {d['statements_per_invocation']:.2f} stmts/inv"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (make bench-quick, <= 2 min)")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGY_NAMES, help="only these strategies")
    parser.add_argument("--scenarios", nargs="+", help="only these scenarios (s1 ... s4 or full keys)")
    parser.add_argument("--skip-micro", action="store_true", help="skip the micro-benchmarks")
    parser.add_argument(
        "--micro",
        action="store_true",
        help="only the micro-benchmarks (hot path, import, connect CPU; about a minute); exit 1 on a missed target",
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"output directory (default {OUT_DIR})")
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help=f"runs of with_mysql per overload scenario (default {LIB_RUNS}, 1 with --quick); the worst is reported",
    )
    args = parser.parse_args(argv)
    if args.micro:
        return micro_only(args.quick)

    plan = _plan(args.quick, args.scenarios)
    lib_runs = max(1, args.runs if args.runs is not None else (1 if args.quick else LIB_RUNS))
    default_strategies = DEFAULT_STRATEGIES if all(_repeated(sc) for sc in plan) else STRATEGY_NAMES
    strategies = list(args.strategies or default_strategies)
    skipped: list[str] = []
    if "npm-serverless-mysql" in strategies:
        try:
            ensure_node_modules(lambda msg: print(msg, file=sys.stderr))
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"skipping npm-serverless-mysql: {exc}", file=sys.stderr)
            strategies.remove("npm-serverless-mysql")
            skipped.append(f"npm-serverless-mysql skipped: {exc}")
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    complete = not args.strategies and not args.scenarios and not args.skip_micro and args.runs is None

    def runs_of(sc: Scenario, name: str) -> int:
        return lib_runs if name == "with_mysql" and _repeated(sc) else 1

    micro_seconds = 0.0 if args.skip_micro else (15.0 if args.quick else 45.0)
    planned = (
        sum((sc.duration + RUN_OVERHEAD_S) * runs_of(sc, name) for sc in plan for name in strategies) + micro_seconds
    )
    progress = Progress(planned)
    started = time.monotonic()
    results: list[RunResult] = []
    failures: list[str] = list(skipped)
    extras: dict[str, Any] = {"machine": machine(), "mode": "quick" if args.quick else "full"}
    extras["load_average_start"] = os.getloadavg()

    for sc in plan:
        for name in strategies:
            n_runs = runs_of(sc, name)
            for run in range(1, n_runs + 1):
                label = f"{sc.key} / {name}" + (f" run {run}/{n_runs}" if n_runs > 1 else "")
                progress.step(label, sc.duration + RUN_OVERHEAD_S)

                def report(
                    frac: float, n: int, errs: int, share: float = sc.duration / (sc.duration + RUN_OVERHEAD_S)
                ) -> None:
                    progress.update(frac * share, f"{n} inv, {errs} err (recent)")

                try:
                    result = run_one(name, sc, progress=report, run=run)
                except Exception as exc:
                    failures.append(f"{label}: {type(exc).__name__}: {exc}")
                    traceback.print_exc()
                    progress.finish_step(f"FAILED: {exc}")
                    continue
                results.append(result)
                progress.finish_step(_summary_line(result))

    if not args.skip_micro:
        progress.step("micro-benchmarks (hot path, import time, connect CPU)", micro_seconds)
        try:
            extras.update(_micro(args.quick))
            progress.finish_step("; ".join(hot_path_lines(extras["hot_path"])[-3:-1]).replace("  ", " "))
        except Exception as exc:
            failures.append(f"micro-benchmarks: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            progress.finish_step(f"FAILED: {exc}")

    legacy_plan = [sc for sc in plan if not _repeated(sc)]
    legacy_results = [r for r in results if "overload" not in r.data and "failover" not in r.data]
    extras["charts"] = {
        **write_charts(out_dir, legacy_results, legacy_plan),
        **write_overload_charts(out_dir, results, plan),
        **write_failover_charts(out_dir, results, plan),
    }
    targets = check_overload_targets(results) + check_failover_targets(results)
    if legacy_plan:
        targets += check_targets(legacy_results, extras)
    elif not args.skip_micro:
        targets += [t for t in check_targets([], extras) if "Scenario" not in t[0] and "zombie" not in t[0]]
    elapsed = time.monotonic() - started
    extras["elapsed_s"] = elapsed
    extras["load_average_end"] = os.getloadavg()
    extras["failures"] = failures
    text = render(results, plan, extras, targets)
    md_path = out_dir / "results.md"
    md_path.write_text(text)
    json_path = out_dir / "results.json"
    write_json(
        json_path,
        {
            **extras,
            "targets": [{"target": t, "met": ok, "measured": m} for t, ok, m in targets],
            "results": [{**r.data, "series": series_for_json(r)} for r in results],
        },
    )
    print(text)
    print(f"\nmarkdown: {md_path}\njson:     {json_path}", file=sys.stderr)
    for key, path in extras["charts"].items():
        print(f"chart:    {path}  ({key})", file=sys.stderr)
    if complete and not args.quick and not failures:
        committed = BENCH_DIR / "RESULTS.md"
        notes = ""
        if committed.exists() and NOTES_MARKER in committed.read_text():
            notes = committed.read_text().split(NOTES_MARKER, 1)[1]
        committed.write_text(text.rstrip() + "\n\n" + NOTES_MARKER + notes.rstrip() + "\n")
        print(f"updated:  {committed}", file=sys.stderr)
    print(f"total {elapsed:.0f} s", file=sys.stderr)
    return 1 if failures else 0


def _micro(quick: bool) -> dict[str, Any]:
    """The micro-benchmarks; the hot path always with at least MIN_BATCHES interleaved batches."""
    return {
        "hot_path": hot_path(MIN_BATCHES if quick else 31, 100 if quick else 400),
        "import_time": import_times(3 if quick else 15),
        "connect_cost": connect_cost(10 if quick else 50),
        "runtime_init": runtime_init(3 if quick else 11),
    }


def micro_only(quick: bool) -> int:
    """``python -m bench --micro``: print the micro-benchmarks with PASS/FAIL; 1 when a target is missed."""
    started = time.monotonic()
    extras = _micro(quick)
    print("\n".join(hot_path_lines(extras["hot_path"])))
    print(micro_markdown(extras, hot_path=False))
    targets = check_targets([], extras)
    targets = [t for t in targets if t[1] is not None]
    print()
    for name, ok, measured in targets:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {measured}")
    print(f"total {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0 if all(ok for _, ok, _ in targets) else 1


def micro_markdown(extras: dict[str, Any], *, hot_path: bool = True) -> str:
    """The micro-benchmark bullets of the report."""
    lines: list[str] = []
    h = extras.get("hot_path")
    imp = extras.get("import_time")
    cc = extras.get("connect_cost")
    if h and hot_path:
        us, q, inv = h["us"], h["query"]["overhead"], h["invocation"]["overhead"]
        lines.append(
            f"- Warm `SELECT 1` ({h['batches']} batches of {h['per_batch']} calls, the three interleaved "
            f"{h['chunk']} calls at a time; median per call, IQR in brackets): "
            f"raw PyMySQL {us['raw']['median']:.1f} us "
            f"[{us['raw']['q1']:.1f}-{us['raw']['q3']:.1f}], "
            f"`db.query` {us['query']['median']:.1f} us [{us['query']['q1']:.1f}-{us['query']['q3']:.1f}] = "
            f"{q['median']:+.1%} [{q['q1']:+.1%}..{q['q3']:+.1%}], a whole `@with_mysql` invocation (query + `end()`) "
            f"{us['invocation']['median']:.1f} us [{us['invocation']['q1']:.1f}-{us['invocation']['q3']:.1f}] = "
            f"{inv['median']:+.1%} [{inv['q1']:+.1%}..{inv['q3']:+.1%}]; housekeeping ran "
            f"{h['housekeeping_runs_per_1000_invocations']:.1f} times per 1,000 invocations."
        )
    if imp:
        node = imp.get("npm_serverless_mysql_require_ms")
        lines.append(
            f"- Import (`python -X importtime`, median of {imp['runs']}): `import serverless_mysql` "
            f"{imp['serverless_mysql_ms']:.1f} ms, `import pymysql` {imp['pymysql_ms']:.1f} ms "
            f"({imp['ratio']:.2f}x)"
            + (f"; Node `require('serverless-mysql')` + mysql2 {node:.1f} ms." if node else ".")
        )
    ri = extras.get("runtime_init")
    if ri:
        lines.append(
            f"- Cold start under awslambdaric (median of {ri['runs']} interleaved starts): init "
            f"{ri['init_managed_ms']:.0f} ms with the layer and `@with_mysql` vs {ri['init_plain_ms']:.0f} ms with "
            f"PyMySQL alone; in the handler module `import pymysql` {ri['pymysql_ms']:.1f} ms, then "
            f"`serverless_mysql` + decoration {ri['lib_ms']:.1f} ms ({ri['own_modules']} of our modules; other "
            f"modules: {', '.join(ri['other_modules']) or 'none'})."
        )
    if cc:
        lines.append(
            f"- CPU to build one PyMySQL `Connection` object: {cc['default_ms']:.1f} ms with PyMySQL's default TLS "
            f"setup (a fresh `ssl.create_default_context()` each time, even when the server offers no TLS), "
            f"{cc['ssl_disabled_ms']:.2f} ms with `ssl_disabled=True`. Every connect attempt pays it, retries included."
        )
    return "\n".join(lines)


def render(
    results: list[RunResult], plan: list[Scenario], extras: dict[str, Any], targets: list[tuple[str, bool | None, str]]
) -> str:
    m = extras["machine"]
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Lambda-fleet benchmark ({extras['mode']} run, {when})",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['ram_gib']} GiB RAM, {m['os']}; Python {m['python']}, "
        f"PyMySQL {m['pymysql']}, serverless-mysql (Python) {m['serverless_mysql_python']}; {m['mariadb']}; "
        f"Node {m['node']}. Total time {extras['elapsed_s']:.0f} s. Load average (1 min) at the start "
        f"{extras['load_average_start'][0]:.1f}, at the end {extras['load_average_end'][0]:.1f} (other work on the "
        "machine competes for the same 2 cores).",
        "",
        "## Targets for this library",
        "",
        targets_markdown(targets),
        "",
        "## Results",
        "",
        overload_markdown(results, plan, extras),
        failover_markdown(results, plan, extras),
        markdown(
            [r for r in results if "overload" not in r.data and "failover" not in r.data],
            [sc for sc in plan if not _repeated(sc)],
            extras,
        ),
    ]
    micro = micro_markdown(extras)
    if micro:
        lines += ["## Micro-benchmarks", "", micro]
    if extras.get("failures"):
        lines += ["", "## Failures", "", *[f"- {f}" for f in extras["failures"]]]
    lines += ["", "## Method", ""]
    if any(sc.overload for sc in plan):
        lines += [OVERLOAD_METHOD]
    if any(sc.failover is not None for sc in plan):
        lines += [FAILOVER_METHOD]
    if any(not _repeated(sc) for sc in plan):
        lines += [METHOD]
    if extras.get("hot_path"):
        lines += [MICRO_METHOD]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
