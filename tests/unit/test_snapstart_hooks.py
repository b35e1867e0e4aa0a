"""SnapStart hooks: looked for at decoration time only, registered once, nothing where the runtime lacks them.

The end-to-end run (snapshot, two restores, a real server) is ``tests/integration/test_snapstart.py``.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from typing import Any

from serverless_mysql import ServerlessMySQL
from tests.support.snapstart import ROOT, runtime_env


def run(code: str, *, with_runtime: bool, init_type: str = "snap-start") -> Any:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=runtime_env(with_runtime=with_runtime, init_type=init_type),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


REGISTER = (
    "import json, sys\n"
    "import serverless_mysql\n"
    "from serverless_mysql import with_mysql\n"
    "imported_early = 'snapshot_restore_py' in sys.modules\n"
    "a = with_mysql(host='127.0.0.1', sigterm=False)(lambda event, context, db: 1)\n"
    "b = with_mysql(host='127.0.0.1', sigterm=False)(lambda event, context, db: 2)\n"
    "hooks = sys.modules.get('snapshot_restore_py')\n"
    "counts = None if hooks is None else [len(hooks.get_before_snapshot()), len(hooks.get_after_restore())]\n"
    "from serverless_mysql.decorator import register_snapstart\n"
    "print(json.dumps({'imported_early': imported_early, 'counts': counts, 'again': register_snapstart(a.db)}))\n"
)


def test_hooks_module_is_imported_at_decoration_only_and_hooks_registered_once() -> None:
    result = run(REGISTER, with_runtime=True)
    assert result == {"imported_early": False, "counts": [1, 1], "again": True}


def test_without_the_runtime_nothing_is_registered() -> None:
    result = run(REGISTER, with_runtime=False)
    assert result == {"imported_early": False, "counts": None, "again": False}


def test_an_init_without_a_snapshot_does_not_load_the_hooks_module() -> None:
    """On-demand and provisioned inits: the runtime never runs the hooks, so their module (it imports typing) stays
    out (tests/unit/test_import_cost.py checks that typing does)."""
    for init_type in ("on-demand", "provisioned-concurrency"):
        result = run(REGISTER, with_runtime=True, init_type=init_type)
        assert result == {"imported_early": False, "counts": None, "again": False}


def test_reseed_leaves_a_generator_given_as_option_alone() -> None:
    rng = random.Random(7)
    state = rng.getstate()
    ServerlessMySQL(host="127.0.0.1", random=rng).reseed()
    assert rng.getstate() == state  # the caller's (tests seed it on purpose); ours is reseeded
