"""The ORM example function, built as ``sam build`` builds it, runs from the layer in a fresh interpreter.

The function's directory is what ``examples/orm/Makefile`` puts into SAM's artifacts directory (the handler and
SQLAlchemy's pure-Python wheels); the layer, Powertools and the runtime's packages are laid out as in
``test_layer_e2e.py``. Nothing from the repository or ``.venv`` is importable, so a module the function does not
ship (or the layer lacks) fails the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.mariadb import MariaDBServer
from tests.layer.conftest import find_python
from tests.layer.test_layer_e2e import (
    EVENTS_SETUP,
    Deployment,
    LambdaSandbox,
    _check_isolation,
    _lambda_env,
    _python,
    _report,
    deployment,
    sandbox,
)

ROOT = Path(__file__).resolve().parents[2]
__all__ = ["deployment", "sandbox"]


@pytest.fixture(scope="module")
def orm_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make build-OrmExampleFunction`` into a fresh directory (SAM's ARTIFACTS_DIR), plus the runner."""
    task = tmp_path_factory.mktemp("orm-task")
    cmd = ["make", "-s", "-C", str(ROOT / "examples" / "orm"), "build-OrmExampleFunction", f"ARTIFACTS_DIR={task}"]
    runtime = find_python("3.12")
    if runtime is not None:
        cmd.append(f"COMPILE_PYTHON={runtime}")  # ship bytecode, as a build machine with python3.12 does
    done = subprocess.run(
        cmd,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(task)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    shutil.copy(Path(__file__).with_name("lambda_runner.py"), task / "lambda_runner.py")
    return task


@pytest.mark.slow
def test_orm_example_runs_from_the_layer_with_the_same_answers(
    orm_task: Path, sandbox: LambdaSandbox, deployment: Deployment, mariadb: MariaDBServer, tmp_path: Path
) -> None:
    python = _python("3.12")
    assert (orm_task / "sqlalchemy" / "__init__.py").is_file()
    assert not list(orm_task.rglob("*.so")), "pure-Python: the same build serves x86_64 and arm64"
    assert (orm_task / "sqlalchemy" / "__pycache__" / "__init__.cpython-312.pyc").is_file(), "bytecode shipped"
    reads = [{"action": "get", "id": n % 3 + 1} for n in range(100)]
    events: list[Any] = [
        *EVENTS_SETUP,
        {"action": "get", "id": 1},
        {"action": "list", "customer": "ada", "limit": 10},
        {"action": "get", "id": 999_999},
        {"action": "get", "id": "1; DROP TABLE orders"},
        *reads,
    ]
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"events": events, "timeout_ms": 10_000}), encoding="utf-8")
    done = subprocess.run(
        [python, "-S", "-B", "lambda_runner.py", str(job)],
        cwd=orm_task,
        env=_lambda_env(sandbox, deployment, python, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = _report(done.stdout)
    _check_isolation(report, sandbox)
    assert report["sys_path"][0] == str(orm_task) or str(orm_task) in report["sys_path"]
    results = report["results"]
    assert [r["status"] for r in results[:3]] == [201, 201, 201]
    assert [r["id"] for r in results[:3]] == [1, 2, 3]
    got = results[3]["order"]
    assert {k: got[k] for k in ("id", "customer", "item", "quantity")} == {
        "id": 1,
        "customer": "ada",
        "item": "notebook",
        "quantity": 2,
    }
    assert [o["id"] for o in results[4]["orders"]] == [3, 1]
    assert results[5] == {"status": 404, "error": "order 999999 not found"}
    assert results[6]["status"] == 400
    assert all(r["status"] == 200 for r in results[7:])
    rows = mariadb.execute(f"SELECT customer, item, quantity FROM `{deployment.user.database}`.orders ORDER BY id")
    assert [(r["customer"], r["item"], r["quantity"]) for r in rows] == [
        ("ada", "notebook", 2),
        ("bob", "pencil", 1),
        ("ada", "eraser", 5),
    ]
    stats = report["stats"]
    assert stats["connects"] == 1 and stats["housekeeping_errors"] == 0, stats
    # Creates: START TRANSACTION + INSERT + COMMIT; reads: one SELECT (AUTOCOMMIT); plus the dialect's first-use
    # queries once per environment and the housekeeping.
    database_invocations = sum(1 for r in results if r["status"] != 400)
    statements = stats["queries"] + stats["housekeeping_statements"]
    print(
        f"\nORM example: {database_invocations} invocations with a statement, {statements} statements "
        f"({statements / database_invocations:.3f}/invocation), handler import {report['import_ms']:.0f} ms"
    )
    assert stats["queries"] <= database_invocations + 2 * 3 + 6
    assert mariadb.wait_for_connection_count(0, user=deployment.user.name) == 0
