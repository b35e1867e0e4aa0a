"""Micro-benchmarks: import time, per-query overhead on a warm connection, CPU cost of one connect."""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors

from bench import NODE_DIR
from bench.fleet import FakeContext
from bench.strategies import PYMYSQL_CONNECT_ARGS, load_with_mysql
from harness.mariadb import MariaDBServer

__all__ = ["connect_cost", "import_times", "query_overhead"]

_IMPORTTIME = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|\s+(\S.*)$")


def _import_us(module: str) -> float:
    """Cumulative microseconds of ``import <module>`` in a fresh interpreter (``-X importtime``)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for line in proc.stderr.splitlines():
        m = _IMPORTTIME.search(line)
        if m and m.group(3) == module:  # the top-level entry is not indented
            return float(m.group(2))
    raise RuntimeError(f"no importtime line for {module}")


def _node_require_ms() -> float | None:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "serverless-mysql").exists():
        return None
    script = (
        "const t=process.hrtime.bigint();require('serverless-mysql');require('mysql2');"
        "console.log(Number(process.hrtime.bigint()-t)/1e6)"
    )
    proc = subprocess.run([node, "-e", script], cwd=NODE_DIR, capture_output=True, text=True, timeout=60, check=False)
    try:
        return float(proc.stdout.strip())
    except ValueError:
        return None


def import_times(runs: int) -> dict[str, Any]:
    """Median import times (interleaved runs, warm page cache), both packages loaded from bytecode.

    pip compiles site-packages (PyMySQL) at install time and the layer ships bytecode, but an editable install
    under PYTHONDONTWRITEBYTECODE (set on these machines) would compile this package on every import.
    """
    import serverless_mysql

    package = Path(serverless_mysql.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True, timeout=120)
    sm: list[float] = []
    pm: list[float] = []
    node: list[float] = []
    for _ in range(runs):
        pm.append(_import_us("pymysql") / 1000)
        sm.append(_import_us("serverless_mysql") / 1000)
        ms = _node_require_ms()
        if ms is not None:
            node.append(ms)
    out: dict[str, Any] = {
        "runs": runs,
        "pymysql_ms": statistics.median(pm),
        "serverless_mysql_ms": statistics.median(sm),
        "npm_serverless_mysql_require_ms": statistics.median(node) if node else None,
    }
    out["ratio"] = out["serverless_mysql_ms"] / out["pymysql_ms"]
    return out


def query_overhead(batches: int, per_batch: int) -> dict[str, Any]:
    """Median time of ``SELECT 1`` on a warm connection: raw PyMySQL vs ``db.query`` vs a decorated invocation."""
    with MariaDBServer(max_connections=20) as server:
        user = server.create_user()
        kwargs = user.connect_kwargs()
        raw = pymysql.connect(
            **kwargs, cursorclass=pymysql.cursors.DictCursor, autocommit=True, charset="utf8mb4", **PYMYSQL_CONNECT_ARGS
        )
        from serverless_mysql import ServerlessMySQL

        db = ServerlessMySQL(**kwargs, connect_args=dict(PYMYSQL_CONNECT_ARGS))
        db.query("SELECT 1")
        holder: list[Any] = []

        def handler(event: Any, context: Any, db: Any) -> Any:
            return db.query("SELECT 1")

        decorated = load_with_mysql()(**kwargs, connect_args=dict(PYMYSQL_CONNECT_ARGS), sigterm=False)(handler)
        decorated({}, FakeContext(60))
        holder.append(decorated)

        def run_raw() -> None:
            with raw.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchall()

        def run_lib() -> None:
            db.query("SELECT 1")

        def run_invocation() -> None:
            decorated({}, FakeContext(60))

        timings: dict[str, list[float]] = {"raw": [], "query": [], "invocation": []}
        fns = {"raw": run_raw, "query": run_lib, "invocation": run_invocation}
        for _ in range(batches):
            for name, fn in fns.items():
                t = time.perf_counter()
                for _ in range(per_batch):
                    fn()
                timings[name].append((time.perf_counter() - t) / per_batch * 1e6)
        raw.close()
        db.quit()
        stats = db.get_stats()
    med = {k: statistics.median(v) for k, v in timings.items()}
    return {
        "batches": batches,
        "per_batch": per_batch,
        "raw_us": med["raw"],
        "query_us": med["query"],
        "invocation_us": med["invocation"],
        "overhead": med["query"] / med["raw"] - 1,
        "invocation_overhead": med["invocation"] / med["raw"] - 1,
        "housekeeping_statements_in_loop": stats.housekeeping_statements,
    }


def connect_cost(n: int) -> dict[str, Any]:
    """CPU milliseconds of building one PyMySQL ``Connection`` object, with PyMySQL 1.2's default TLS setup and with
    ``ssl_disabled=True`` (no network: ``defer_connect=True``)."""
    out: dict[str, Any] = {}
    variants: tuple[tuple[str, dict[str, Any]], ...] = (("default_ms", {}), ("ssl_disabled_ms", {"ssl_disabled": True}))
    for label, extra in variants:
        t = time.process_time()
        for _ in range(n):
            pymysql.connections.Connection(host="127.0.0.1", defer_connect=True, **extra)
        out[label] = (time.process_time() - t) / n * 1000
    out["n"] = n
    return out
