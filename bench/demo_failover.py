"""``make demo-failover``: the example Lambda function under a simulated fleet through one Aurora-like failover.

What it starts (and stops again, whatever happens), all on loopback:

* a local cluster (``harness/cluster.py``): a writer and one replica with GTID replication, the example's ``orders``
  table, a cluster endpoint and a reader endpoint (switchable forwarders standing in for the DNS names);
* a moto Secrets Manager holding the RDS-format secret whose host is the **cluster endpoint**;
* the fleet simulator running ``examples/handler.py`` as deployed, configured through ``SERVERLESS_MYSQL_*``
  variables, plus ``SERVERLESS_MYSQL_SERVER_ROLE=writer`` (on AWS, ``"auto"`` infers it from the
  ``.cluster-`` host name; the loopback address here says nothing).

The load: 50 requests/s (get 60%, create 25%, list 15%) for 25 s, Lambda timeout 30 s. At t = 8 s the writer is
demoted (``--variant crash``: SIGKILLed and restarted read-only), the replica promoted, and the cluster endpoint
switched at t = 13 s (Aurora's 5 s DNS TTL). It prints the errors, the acknowledged creates against the rows on the
new writer, and writes ``bench/out/demo-failover.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import OUT_DIR, REPO_ROOT
from bench.demo import HANDLER, ExampleStrategy, example_fleet, load_schema, serve_secret, smoke_invocation
from bench.failover import SERVER_ARGS, TMP_ROOT
from bench.fleet import Fleet, Invocation, LoadGen, OpenLoop, percentile
from bench.overload import bucket
from harness.cluster import LocalCluster

RATE = 50.0
FAILOVER_AT = 8.0
SWITCH_DELAY = 5.0


def _chart(path: Path, invs: list[Invocation], t0: float, seconds: int, failover: float, switch: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = bucket((i.end - t0 for i in invs if i.end and i.ok), seconds)
    err = bucket((i.arrival - t0 for i in invs if not i.end or not i.ok), seconds)
    offered = bucket((i.arrival - t0 for i in invs), seconds)
    lat = sorted(((i.end - t0), i.latency) for i in invs if i.end and i.ok)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    xs = list(range(seconds))
    ax1.step(xs, offered, where="post", color="black", linestyle="--", linewidth=0.8, label="requests / s")
    ax1.step(xs, ok, where="post", color="tab:blue", label="ok / s (by completion)")
    ax1.step(xs, err, where="post", color="tab:red", label="errors / s (by arrival)")
    ax1.legend(fontsize=8, loc="upper left")
    ax1.set_title("make demo-failover: examples/handler.py through one failover")
    ax2.scatter([t for t, _ in lat], [v for _, v in lat], s=3, color="tab:blue")
    ax2.set_ylabel("latency of ok invocations, s")
    ax2.set_xlabel("seconds since the start of the load (shaded: failover until the endpoint switch)")
    for ax in (ax1, ax2):
        ax.axvspan(failover, switch, color="purple", alpha=0.12)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.demo_failover", description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=("demote", "crash"), default="demote", help="how the writer goes")
    parser.add_argument("--seconds", type=float, default=25.0, help="length of the load (default 25)")
    args = parser.parse_args(argv)
    duration = max(FAILOVER_AT + SWITCH_DELAY + 4.0, min(args.seconds, 120.0))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    print(
        f"make demo-failover: {HANDLER.relative_to(REPO_ROOT)} through one failover ({args.variant}), {duration:.0f} s"
    )

    cluster = LocalCluster(  # the drill's servers (bench/failover.py)
        replicas=1,
        max_connections=500,
        switch_delay=SWITCH_DELAY,
        endpoints="process",
        server_args=SERVER_ARGS,
        tmp_root=TMP_ROOT,
    )
    moto: Any = None
    fleet: Fleet | None = None
    strategy = ExampleStrategy()
    try:
        cluster.start()
        print(f"  cluster started in {cluster.last_start_seconds:.1f} s: writer + 1 replica, GTID replication")
        user = cluster.create_user()
        conn = cluster.writer.root(database=user.database)
        try:
            load_schema(conn)
        finally:
            conn.close()
        cluster.wait_replicated()
        moto = serve_secret(user, SERVERLESS_MYSQL_SERVER_ROLE="writer")  # user.host: the cluster endpoint
        smoke_invocation()
        fleet = example_fleet(strategy, concurrency=400, idle_ttl=(600.0, 600.0), timeout=30.0)
        loadgen = LoadGen(fleet, OpenLoop(rate=RATE), duration=duration, rng=random.Random(7), max_invocations=100_000)
        t0 = loadgen.start()
        failover = cluster.failover_later(t0 + FAILOVER_AT, args.variant)
        while time.monotonic() < t0 + duration:
            time.sleep(1)
            done = [i for i in fleet.invocations if i.end]
            print(
                f"  {time.monotonic() - t0:4.0f}s  invocations {len(done):5d}  errors "
                f"{sum(1 for i in done if not i.ok):4d}  busy environments {fleet.busy_count():3d}",
                file=sys.stderr,
                flush=True,
            )
        loadgen.join()
        times = failover.result()
        fleet.drain(35)
        invs = list(fleet.invocations)
        errors = Counter(i.error or "Unfinished" for i in invs if not i.end or not i.ok)
        acked_creates = sum(1 for i in invs if i.ok and i.payload and i.payload.get("action") == "create")
        failed_creates = sum(1 for i in invs if not i.ok and i.payload and i.payload.get("action") == "create")
        rows = int(cluster.writer.execute(f"SELECT COUNT(*) AS n FROM {user.database}.orders")[0]["n"])
        switch = times.switched - t0
        ok = sorted(i.latency * 1000 for i in invs if i.ok)
        chart = OUT_DIR / "demo-failover.png"
        seconds = int(duration) + 2
        _chart(chart, invs, t0, seconds, times.started - t0, switch)
        steps = ", ".join(
            f"{k} {v + times.started - t0:.2f} s" for k, v in times.since_start().items() if v is not None
        )
        print("\nResult")
        print(f"  failover           {args.variant}: {steps}")
        print(f"  invocations        {len(invs)}, {fleet.counters.peak_busy} environments busy at most")
        print(f"  errors             {sum(errors.values())}" + (f"  {dict(errors)}" if errors else ""))
        after = sum(1 for i in invs if (not i.end or not i.ok) and i.arrival - t0 >= switch)
        print(f"  errors after the switch (by arrival): {after}")
        print(
            f"  creates            {acked_creates} acknowledged, {failed_creates} failed; rows on the new writer {rows}"
        )
        if ok:
            print(f"  latency ms         p50 {percentile(ok, 50):.0f}, p99 {percentile(ok, 99):.0f}, max {ok[-1]:.0f}")
        print(f"  chart              {chart}")
        lost = max(0, acked_creates - rows)
        return 1 if errors or lost else 0
    finally:
        if fleet is not None:
            fleet.shutdown()
        strategy.close()
        with contextlib.suppress(Exception):
            for server in cluster.servers:
                if server.running:
                    server.crash()
        cluster.cleanup()
        if moto is not None:
            moto.stop()


if __name__ == "__main__":
    sys.exit(main())
