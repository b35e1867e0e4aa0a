"""A Lambda function's process through a SnapStart snapshot and two restores, as the managed runtime runs it.

Run by ``test_snapstart.py`` as ``python -m tests.integration.snapstart_process SPEC`` with the stand-in
``snapshot_restore_py`` (``tests/support/snapstart_runtime``) first on ``PYTHONPATH``. SPEC (JSON) holds
``db`` (connect keywords of the private server), ``closed_port`` (a loopback port nobody listens on) and
``out`` (a directory).

1. Init: imports the "function module" (two ``@with_mysql`` handlers; one connects during init).
2. Runs the before-snapshot hooks, prints ``{"init_id": ..., "open_after_hooks": ...}`` and waits for a line
   on stdin (the test looks at the server meanwhile).
3. Restores twice: ``os.fork()``; each child runs the after-restore hooks, then invokes both handlers and
   writes ``child-N.json``: the backoff delays its retries drew, and the connection its first query used.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from serverless_mysql import ServerlessMySQL, with_mysql

runtime: Any = importlib.import_module("snapshot_restore_py")  # the stand-in, first on sys.path


def init(spec: dict[str, Any]) -> tuple[Any, Any, list[float]]:
    """What Lambda's init phase runs: the function module with its decorated handlers."""
    delays: list[float] = []

    def on_retry(exc: BaseException, attempt: int, delay: float, strategy: str) -> None:
        delays.append(delay)

    @with_mysql(**spec["db"], connect_on_init=True, sigterm=False)
    def app(event: Any, context: Any, db: ServerlessMySQL) -> dict[str, Any]:
        row = db.query("SELECT CONNECTION_ID() AS id")[0]
        return {"id": int(row["id"]), "connects": db.get_stats().connects}

    # Retries against a port nobody listens on: each draws a jittered delay (not slept: sleep is a no-op).
    @with_mysql(
        host="127.0.0.1",
        port=spec["closed_port"],
        user="nobody",
        password="unused",
        max_retries=6,
        on_retry=on_retry,
        sleep=lambda seconds: None,
        manage_conns=False,
        sigterm=False,
    )
    def unreachable(event: Any, context: Any, db: ServerlessMySQL) -> None:
        db.query("SELECT 1")

    return app, unreachable, delays


def restored(n: int, spec: dict[str, Any], app: Any, unreachable: Any, delays: list[float]) -> None:
    """One restored environment: the runtime's after-restore hooks, then the first invocations."""
    runtime.run_after_restore()
    try:
        unreachable({}, None)
    except Exception as exc:  # the connect error after the retries, expected
        error: str | None = type(exc).__name__
    else:
        error = None
    result = app({}, None)
    out = {"delays": delays, "error": error, **result}
    Path(spec["out"], f"child-{n}.json").write_text(json.dumps(out))


def main() -> int:
    spec = json.loads(sys.argv[1])
    app, unreachable, delays = init(spec)
    init_id = app.db.get_client().thread_id()
    runtime.run_before_snapshot()
    print(json.dumps({"init_id": init_id, "open_after_hooks": app.db.get_client() is not None}), flush=True)
    sys.stdin.readline()  # the snapshot is "taken": the test checks what the server sees
    children = []
    for n in range(2):
        pid = os.fork()
        if pid == 0:  # a restored environment
            code = 1
            try:
                restored(n, spec, app, unreachable, delays)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    statuses = [os.waitpid(pid, 0)[1] for pid in children]
    return 0 if all(os.waitstatus_to_exitcode(s) == 0 for s in statuses) else 1


if __name__ == "__main__":
    sys.exit(main())
