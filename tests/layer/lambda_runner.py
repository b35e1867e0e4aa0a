"""Runs inside the fresh interpreter of the layer end-to-end test, as Lambda's runtime would: import the handler
module once (the init phase), then call it once per event with a context whose remaining time counts down.

Kept where Lambda's own runtime client cannot serve: ``test_layer_e2e.py`` runs the layer under python3.12 and
python3.13 themselves, and awslambdaric (a native extension) is installed only for the test environment's
interpreter. Everything the runtime client does (deadline headers, error payloads, SnapStart hooks,
multi-concurrency, SIGTERM) is tested under awslambdaric itself in ``test_runtime_client.py``.

Standard library only: it must not bring anything onto ``sys.path`` that the Lambda environment would not have.
The test copies it next to the handler (the function's "/var/task") and runs::

    python3.12 -S -s lambda_runner.py job.json

``job.json``: ``{"module": "handler", "function": "handler", "events": [...], "timeout_ms": 10000,
"wait_for_sigterm": false}``. Prints one JSON line: the results, where each module was imported from, import
and invocation times, and the client's statistics; with ``wait_for_sigterm`` it then waits to be terminated.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
import time
from typing import Any


class FakeContext:
    """The parts of Lambda's context object that handlers and ``@with_mysql`` use."""

    def __init__(self, request_id: str, timeout_ms: int) -> None:
        self.function_name = "ExampleFunction"
        self.function_version = "$LATEST"
        self.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:ExampleFunction"
        self.memory_limit_in_mb = 256
        self.aws_request_id = request_id
        self.log_group_name = "/aws/lambda/ExampleFunction"
        self.log_stream_name = "2026/11/22/[$LATEST]0123456789abcdef"
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _origin(name: str) -> str | None:
    module = sys.modules.get(name)
    return getattr(module, "__file__", None) if module is not None else None


def main(job_path: str) -> int:
    with open(job_path, encoding="utf-8") as fh:
        job: dict[str, Any] = json.load(fh)
    started = time.perf_counter()
    module = importlib.import_module(job.get("module", "handler"))
    import_ms = (time.perf_counter() - started) * 1000
    handler = getattr(module, job.get("function", "handler"))

    results: list[Any] = []
    durations_ms: list[float] = []
    for number, event in enumerate(job["events"]):
        context = FakeContext(f"req-{number:04d}", int(job.get("timeout_ms", 10_000)))
        t0 = time.perf_counter()
        result = handler(event, context)
        durations_ms.append((time.perf_counter() - t0) * 1000)
        # Lambda serializes the return value with json: fail here like it would.
        results.append(json.loads(json.dumps(result)))

    db = getattr(handler, "db", None)
    stats = dataclasses.asdict(db.get_stats()) if db is not None else None
    report = {
        "python": list(sys.version_info[:3]),
        "sys_path": sys.path,
        "import_ms": import_ms,
        "durations_ms": durations_ms,
        "results": results,
        "stats": stats,
        "origins": {
            name: _origin(name)
            for name in ("serverless_mysql", "pymysql", "aws_lambda_powertools", "boto3", "botocore", "cryptography")
        },
    }
    print(json.dumps(report), flush=True)
    if job.get("wait_for_sigterm"):
        # Like a frozen environment that Lambda is about to shut down; the decorator's SIGTERM handler closes the
        # connection and then lets the default action end the process.
        while True:
            time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
