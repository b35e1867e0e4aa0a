"""``make demo``: the example Lambda function under a simulated fleet, about 30 seconds, everything on loopback.

What it starts (and stops again, by object, whatever happens):

* a throwaway MariaDB with ``max_connections=20`` and the example's ``orders`` table (``examples/schema.sql``);
* a moto server on 127.0.0.1 holding the database secret in RDS format (username, password, host, port, dbname);
* the fleet simulator: ``examples/handler.py`` loaded afresh for every simulated execution environment (one
  module object, hence one ``@with_mysql`` client, per environment), configured exactly as ``template.yaml``
  configures it, through ``SERVERLESS_MYSQL_*`` environment variables (``SERVERLESS_MYSQL_SECRET_ID``).

The load: about 150 requests/s with bursts of 500/s (get 60%, create 25%, list 15%), each invocation also doing
50 ms of other work (as if calling another service), so bursts need more environments than the server has
connections; idle environments vanish after 2-6 s without any cleanup, leaving zombie connections behind.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import OUT_DIR, REPO_ROOT
from bench.fleet import Env, FakeContext, Fleet, LoadGen, OpenLoop, percentile
from bench.observe import Sampler
from bench.strategies import InProcessStrategy
from harness.mariadb import AppUser, MariaDBServer

HANDLER = REPO_ROOT / "examples" / "handler.py"
SCHEMA = REPO_ROOT / "examples" / "schema.sql"
SECRET_NAME = "demo/orders-db"
MAX_CONNECTIONS = 20
WORK_S = 0.05


class ExampleEnv:
    """One execution environment: its own copy of the example module (its own ``@with_mysql`` client)."""

    def __init__(self, env_id: int) -> None:
        spec = importlib.util.spec_from_file_location(f"example_handler_env{env_id}", HANDLER)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load {HANDLER}")
        module: ModuleType = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # the init phase: @with_mysql builds this environment's client
        self.module = module

    @property
    def db(self) -> Any:
        return self.module.handler.db

    def invoke(self, event: dict[str, Any], context: FakeContext) -> None:
        time.sleep(WORK_S)  # the rest of the function's work, e.g. a call to another service
        response = self.module.handler(event, context)
        if response.get("status", 500) >= 500:
            raise RuntimeError(f"status {response.get('status')}")

    def thread_id(self) -> int | None:
        conn = self.db.get_client()
        return int(conn.thread_id()) if conn is not None and conn.open else None

    def destroy(self) -> None:
        pass  # the module (and its connection) stays referenced: a vanished environment, no cleanup

    def reset(self) -> None:
        self.db.terminate()


class ExampleStrategy(InProcessStrategy):
    name = "examples/handler.py"

    def __init__(self) -> None:
        self.envs: list[ExampleEnv] = []

    def new_env(self, env_id: int) -> Env:
        env = ExampleEnv(env_id)
        self.envs.append(env)
        return env

    def close(self) -> None:
        for env in self.envs:
            with contextlib.suppress(Exception):
                env.db.terminate()

    def stats(self) -> dict[str, float]:
        total: Counter[str] = Counter()
        for env in self.envs:
            stats = env.db.get_stats()
            for key in ("connects", "connect_retries", "reconnects", "zombies_killed", "pressure_quits", "queries"):
                total[key] += getattr(stats, key)
            total["housekeeping_statements"] += stats.housekeeping_statements
        return dict(total)


def _events(rng: random.Random, max_id: list[int]) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.60:
        return {"action": "get", "id": rng.randint(1, max(1, max_id[0]))}
    if roll < 0.85:
        max_id[0] += 1
        return {"action": "create", "customer": f"customer{rng.randint(1, 50)}", "item": "notebook", "quantity": 2}
    return {"action": "list", "customer": f"customer{rng.randint(1, 50)}", "limit": 5}


def load_schema(conn: Any) -> None:
    """The example's tables (``examples/schema.sql``), through a root connection to the app database."""
    with conn.cursor() as cur:
        for statement in SCHEMA.read_text().split(";"):
            sql = "\n".join(x for x in statement.splitlines() if not x.strip().startswith("--")).strip()
            if sql:
                cur.execute(sql)


def serve_secret(user: AppUser, **env: str) -> Any:
    """A moto Secrets Manager on loopback holding ``user``'s RDS-format secret, and the example configured to read
    it (``SERVERLESS_MYSQL_*`` variables, plus ``env``); returns the moto server (the caller stops it)."""
    secret = {
        "engine": "mariadb",
        "username": user.name,
        "password": user.password,
        "host": user.host,
        "port": user.port,
        "dbname": user.database,
    }
    moto = _start_moto(secret)
    os.environ.update(
        {
            "SERVERLESS_MYSQL_SECRET_ID": SECRET_NAME,
            **env,
            "SERVERLESS_MYSQL_SIGTERM": "false",  # environments are threads here, not processes
            "SERVERLESS_MYSQL_CONNECT_ARGS": json.dumps({"ssl_disabled": True}),  # the demo servers have no TLS
        }
    )
    return moto


def smoke_invocation() -> None:
    """One invocation before the load. It also fills Powertools' secret cache, which all environments share here
    because they are threads of one process: hundreds of them creating boto3 clients at the same moment would
    measure this process, not the library (on Lambda each environment fetches on its own CPU)."""
    warm = ExampleEnv(0)
    print(f"  smoke invocation   {warm.module.handler({'action': 'list', 'customer': 'nobody'}, FakeContext(6))}")
    warm.db.quit()


def example_fleet(
    strategy: ExampleStrategy, *, concurrency: int, idle_ttl: tuple[float, float], timeout: float
) -> Fleet:
    """The fleet of the demos: the example's mix of requests (get, create, list), fixed seeds."""
    rng = random.Random(5)
    max_id = [0]
    return Fleet(
        strategy,
        event=lambda: _events(rng, max_id),
        concurrency=concurrency,
        idle_ttl=idle_ttl,
        timeout=timeout,
        rng=random.Random(6),
    )


def _start_moto(secret: dict[str, Any]) -> Any:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }
    )
    import boto3

    boto3.client("secretsmanager").create_secret(Name=SECRET_NAME, SecretString=json.dumps(secret))
    return moto


def _chart(path: Path, sampler: Sampler, fleet: Fleet) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    xs = [s.t for s in sampler.samples if s.app_conns is not None]
    ys = [s.app_conns for s in sampler.samples if s.app_conns is not None]
    ax1.plot(xs, ys, color="tab:blue", label="connections of the application user")
    ax1.axhline(MAX_CONNECTIONS, color="black", linestyle="--", label="max_connections")
    ax1.set_xlabel("seconds")
    ax1.set_ylim(0, MAX_CONNECTIONS * 1.5)
    ax1.legend(fontsize=8, loc="upper left")
    ax1.set_title("make demo: connections on the server")
    lat = sorted(i.latency * 1000 for i in fleet.invocations if i.ok)
    if lat:
        ax2.plot(lat, [(k + 1) / len(lat) for k in range(len(lat))], color="tab:blue")
    ax2.set_xscale("log")
    ax2.set_xlabel("end-to-end latency, ms (incl. 50 ms of simulated other work)")
    ax2.set_title("latency CDF")
    ax2.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the load (default 30)")
    args = parser.parse_args(argv)
    duration = max(5.0, min(args.seconds, 300.0))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    print(f"make demo: {HANDLER.relative_to(REPO_ROOT)} under a simulated Lambda fleet for {duration:.0f} s")

    server = MariaDBServer(max_connections=MAX_CONNECTIONS)
    moto: Any = None
    sampler: Sampler | None = None
    fleet: Fleet | None = None
    strategy = ExampleStrategy()
    try:
        server.start()
        user = server.create_user()
        conn = server.root(database=server.database)
        try:
            load_schema(conn)
        finally:
            conn.close()
        print(f"  MariaDB {server.host}:{server.port} (max_connections={MAX_CONNECTIONS}), user {user.name}")
        moto = serve_secret(user)
        print(f"  moto Secrets Manager {os.environ['AWS_ENDPOINT_URL']} holding secret {SECRET_NAME!r}")
        smoke_invocation()
        # reserved concurrency: 3x the connections
        fleet = example_fleet(strategy, concurrency=60, idle_ttl=(2.0, 6.0), timeout=6.0)
        load = OpenLoop(rate=150, burst_rate=500, burst_every=8, burst_len=2, burst_offset=2)
        loadgen = LoadGen(fleet, load, duration=duration, rng=random.Random(7), max_invocations=100_000)
        sampler = Sampler(server, user.name)
        sampler.start()
        t0 = loadgen.start()
        sampler.t0 = t0
        tty = sys.stderr.isatty()
        lead = "\r" if tty else ""
        tick = 0
        while time.monotonic() < t0 + duration:
            time.sleep(1)
            tick += 1
            if not tty and tick % 5:
                continue
            done = [i for i in fleet.invocations if i.end]
            conns = sampler.samples[-1].app_conns if sampler.samples else None
            print(
                f"{lead}  {time.monotonic() - t0:4.0f}s  invocations {len(done):6d}  errors "
                f"{sum(1 for i in done if not i.ok):4d}  environments {fleet.live_count():3d}  "
                f"connections {conns}/{MAX_CONNECTIONS}   ",
                end="" if tty else "\n",
                file=sys.stderr,
                flush=True,
            )
        if tty:
            print(file=sys.stderr)
        loadgen.join()
        fleet.drain(10)
        live_ids = strategy.live_thread_ids(fleet.live_envs())
        zombies = [r for r in sampler.app_processlist() if int(r["ID"]) not in live_ids]
        sampler.stop()
        invs = [i for i in fleet.invocations if i.end]
        ok = sorted(i.latency * 1000 for i in invs if i.ok)
        errors = Counter(i.error for i in invs if not i.ok)
        stats = strategy.stats()
        peak = max((s.app_conns for s in sampler.samples if s.app_conns is not None), default=0)
        chart = OUT_DIR / "demo.png"
        _chart(chart, sampler, fleet)
        print("\nResult")
        print(
            f"  invocations        {len(invs)} ({len(invs) / duration:.0f}/s), "
            f"{fleet.counters.peak_envs} environments at most"
        )
        print(f"  errors             {sum(errors.values())}" + (f"  {dict(errors)}" if errors else ""))
        if ok:
            print(f"  latency ms         p50 {percentile(ok, 50):.0f}, p99 {percentile(ok, 99):.0f} (incl. 50 ms work)")
        print(f"  peak connections   {peak} of max_connections={MAX_CONNECTIONS}")
        print(
            f"  connections        {stats.get('connects', 0)} opened, {stats.get('connect_retries', 0)} connect "
            f"retries, {stats.get('pressure_quits', 0)} given up under pressure"
        )
        print(f"  zombies killed     {stats.get('zombies_killed', 0)} (left at the end: {len(zombies)})")
        print(
            f"  statements         {stats.get('queries', 0)} queries + "
            f"{stats.get('housekeeping_statements', 0)} housekeeping"
        )
        print(f"  chart              {chart}")
        return 1 if errors else 0
    finally:
        if fleet is not None:
            fleet.shutdown()
        if sampler is not None:
            sampler.close()
        with contextlib.suppress(Exception):
            if server.running:
                server.crash()
        strategy.close()
        server.cleanup()
        if moto is not None:
            moto.stop()


if __name__ == "__main__":
    sys.exit(main())
