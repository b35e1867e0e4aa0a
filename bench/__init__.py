"""Lambda-fleet simulator and benchmark for serverless-mysql for Python.

``python -m bench [--quick]`` runs every strategy (naive PyMySQL per invocation, a naive global connection,
npm serverless-mysql 2.1.0 and this library's ``@with_mysql``) through four scenarios, each against a fresh
private MariaDB on loopback, and writes a markdown table, JSON and PNG charts under ``bench/out/``.
``python -m bench.demo`` runs the example handler through the same simulator for about 30 seconds.
"""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"
NODE_DIR = BENCH_DIR / "node"  # the Node host (fleet.js) with its package.json, lock file and node_modules
