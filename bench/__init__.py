"""Lambda-fleet simulator and benchmark for serverless-mysql for Python (see ``bench/README.md``).

``python -m bench [--quick]`` runs the strategies (naive PyMySQL per invocation, npm serverless-mysql 2.1.0 and
this library's ``@with_mysql``; a naive global connection on request) through the overload scenarios, each against a
fresh private MariaDB on loopback (``harness.mariadb``), then the micro-benchmarks, and writes a markdown table, JSON
and PNG charts under ``bench/out/``. ``python -m bench --micro`` runs only the micro-benchmarks.
``python -m bench.demo`` runs the example handler through the same simulator for about 30 seconds.
"""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
NODE_DIR = BENCH_DIR / "node"  # the Node host (fleet.js) with its package.json, lock file and node_modules
