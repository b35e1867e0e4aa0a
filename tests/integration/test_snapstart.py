"""SnapStart: hooks registered at decoration time, run the way Lambda's managed runtime runs them.

A subprocess plays the function's environment with a stand-in ``snapshot_restore_py`` on its path
(``tests/support/snapstart_runtime``): init, before-snapshot hooks, then ``os.fork()`` twice as two restores
of one snapshot, each running the after-restore hooks before its first invocation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.mariadb import AppUser, MariaDBServer, free_ports
from tests.support.snapstart import ROOT, runtime_env

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="restores are played with os.fork()")


def test_snapshot_closes_the_connection_and_each_restore_draws_its_own_jitter(
    app_user: AppUser, mariadb: MariaDBServer, tmp_path: Path
) -> None:
    spec = {"db": app_user.connect_kwargs(), "closed_port": free_ports(1)[0], "out": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.snapstart_process", json.dumps(spec)],
        cwd=ROOT,
        env=runtime_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        assert line, proc.communicate(timeout=30)[1]
        snapshot = json.loads(line)
        # Before the snapshot: the connection opened during init (connect_on_init) is closed, and the server,
        # asked while the process still lives, no longer has it (COM_QUIT, not a socket left to time out).
        assert snapshot["open_after_hooks"] is False
        deadline = time.monotonic() + 5.0
        while snapshot["init_id"] in {row["ID"] for row in mariadb.processlist(app_user.name)}:
            assert time.monotonic() < deadline, "the init connection is still open on the server"
            time.sleep(0.02)
        _, err = proc.communicate("go\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    children = [json.loads((tmp_path / f"child-{n}.json").read_text()) for n in range(2)]
    for child in children:
        # each restored environment reconnects on its first use: a new connection, not the init one
        assert child["connects"] == 2
        assert child["id"] != snapshot["init_id"]
        assert child["error"] is not None and len(child["delays"]) == 6
    assert children[0]["id"] != children[1]["id"]
    # fresh entropy after each restore: the two environments draw different backoff delays
    assert children[0]["delays"] != children[1]["delays"]
    assert mariadb.wait_for_connection_count(0, app_user.name) == 0  # both children's connections gone with them
