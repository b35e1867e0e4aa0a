"""Playing Lambda's managed Python runtime for SnapStart tests: its hooks module on a subprocess's path."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = Path(__file__).resolve().parent / "snapstart_runtime"
"""Holds only the stand-in ``snapshot_restore_py`` (see its docstring)."""
ABSENT = Path(__file__).resolve().parent / "snapstart_absent"
"""A ``snapshot_restore_py`` that fails to import: hides the one awslambdaric installs into the test venv."""


def runtime_env(*, with_runtime: bool = True, init_type: str = "snap-start") -> dict[str, str]:
    """A subprocess environment: the stand-in hooks module first on the path (or none at all), then our sources.

    ``init_type`` is Lambda's ``AWS_LAMBDA_INITIALIZATION_TYPE`` (``snap-start``: the init ends in a snapshot).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVERLESS_MYSQL_")}
    env["AWS_LAMBDA_INITIALIZATION_TYPE"] = init_type
    path = [str(RUNTIME if with_runtime else ABSENT)]
    env["PYTHONPATH"] = os.pathsep.join([*path, str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env
