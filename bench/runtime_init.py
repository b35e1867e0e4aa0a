"""Cold start under Lambda's own runtime client: init with the layer vs the same handler with PyMySQL alone.

Lambda bills the init phase (importing the handler module) and the first invocation waits for it. This measures it
where it happens: ``python -S -m awslambdaric <module>.fn`` (awslambdaric 4.2.2, as in AWS's runtimes and base
images) against the loopback Runtime API (:mod:`harness.runtime_api`), laid out as on Lambda (the function's
code, the built layer zip unzipped with bytecode for this interpreter, the runtime client's own packages). Two
handler modules, run interleaved:

* ``plain``: ``import pymysql`` and a plain handler;
* ``managed``: ``import pymysql``, ``from serverless_mysql import with_mysql`` and a decorated handler (no TLS,
  SQLAlchemy or IAM; no connection at init).

"init" is the wall time from process start until the runtime asks for its first invocation; each module also
times its own imports with ``perf_counter``: what ``serverless_mysql`` plus the decoration add on top of PyMySQL
in a process that already holds what the runtime client loaded (logging, json, re, socket, http.client, ...).
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from harness.runtime_api import RuntimeApi

__all__ = ["INIT_TARGET_MS", "runtime_init"]

ROOT = Path(__file__).resolve().parents[1]
INIT_TARGET_MS = 10.0  # issue 21: serverless_mysql + decoration on top of PyMySQL, in the runtime's process
RUNTIME_MODULES = ("awslambdaric", "runtime_client", "simplejson", "snapshot_restore_py")

_HANDLER = """
import json, os, sys, time
_before = set(sys.modules)
_t0 = time.perf_counter()
import pymysql
_t1 = time.perf_counter()
_with_pymysql = set(sys.modules)
{body}
_t2 = time.perf_counter()
with open(os.environ["BENCH_OUT"], "w") as _fh:
    json.dump({{"pymysql_ms": (_t1 - _t0) * 1000, "lib_ms": (_t2 - _t1) * 1000,
               "added": sorted(set(sys.modules) - _with_pymysql)}}, _fh)
"""
_PLAIN = "def fn(event, context):\n    return 1\n"
_MANAGED = (
    "from serverless_mysql import with_mysql\n"
    "@with_mysql(host='127.0.0.1')\n"
    "def fn(event, context, db):\n    return 1\n"
)


def _build_layer(out: Path) -> Path:
    cmd = ["make", "-s", "-C", str(ROOT / "layer"), "zip", f"BUILD_DIR={out}", f"PYTHON={sys.executable}"]
    cmd.append(f"COMPILE_PYTHONS={sys.executable}")  # bytecode for the interpreter that runs the runtime here
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return out / "serverless-mysql-layer.zip"


def _sandbox(base: Path) -> tuple[Path, str]:
    task, opt, runtime = base / "task", base / "opt", base / "runtime"
    for directory in (task, opt, runtime):
        directory.mkdir()
    with zipfile.ZipFile(_build_layer(base / "build")) as zf:
        zf.extractall(opt)
    (task / "plain.py").write_text(_HANDLER.format(body=_PLAIN), encoding="utf-8")
    (task / "managed.py").write_text(_HANDLER.format(body=_MANAGED), encoding="utf-8")
    for name in RUNTIME_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"{name} is not installed (pip install -e '.[dev]' installs awslambdaric)")
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source, target_is_directory=source.is_dir())
    return task, os.pathsep.join(str(p) for p in (task, opt / "python", runtime))


def _one(task: Path, pythonpath: str, module: str, out: Path) -> dict[str, Any]:
    with RuntimeApi() as api:
        env = {
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONPATH": pythonpath,
            "PYTHONDONTWRITEBYTECODE": "1",
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "BENCH_OUT": str(out),
        }
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-S", "-B", "-m", "awslambdaric", f"{module}.fn"],
            cwd=task,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            api.wait_for_waiting(timeout=60)
            init_ms = (time.monotonic() - started) * 1000
        finally:
            proc.kill()
            proc.wait(10)
    report: dict[str, Any] = json.loads(out.read_text())
    report["init_ms"] = init_ms
    return report


def runtime_init(runs: int) -> dict[str, Any]:
    """Medians over ``runs`` interleaved cold starts of each handler module."""
    with tempfile.TemporaryDirectory(prefix="bench-init-") as tmp:
        base = Path(tmp)
        task, pythonpath = _sandbox(base)
        plain: list[dict[str, Any]] = []
        managed: list[dict[str, Any]] = []
        for _ in range(runs):
            plain.append(_one(task, pythonpath, "plain", base / "plain.json"))
            managed.append(_one(task, pythonpath, "managed", base / "managed.json"))
    ours = [m for m in managed[-1]["added"] if m.split(".")[0] != "serverless_mysql"]
    return {
        "runs": runs,
        "init_plain_ms": statistics.median(r["init_ms"] for r in plain),
        "init_managed_ms": statistics.median(r["init_ms"] for r in managed),
        "pymysql_ms": statistics.median(r["pymysql_ms"] for r in managed),
        "lib_ms": statistics.median(r["lib_ms"] for r in managed),
        "own_modules": sum(1 for m in managed[-1]["added"] if m.split(".")[0] == "serverless_mysql"),
        "other_modules": ours,
        "met": statistics.median(r["lib_ms"] for r in managed) <= INIT_TARGET_MS,
    }
