"""A loopback Lambda Runtime API (and the Extensions API pieces an extension uses), standard library only.

It stands in for the part of Lambda that a runtime client (``python -m awslambdaric handler.fn``) talks to through
``AWS_LAMBDA_RUNTIME_API``: tests queue invocations with :meth:`RuntimeApi.invoke` and read back what the runtime
reported, with timings. AWS's own emulator (aws-lambda-runtime-interface-emulator) is a Go binary distributed
outside the package registries this project installs from, so the tests cannot use it; this module implements only
what the runtime client 4.x and the layer's shutdown extension call:

* ``GET /2018-06-01/runtime/invocation/next``: blocks until an invocation is queued, then answers with the event
  and the headers ``Lambda-Runtime-Aws-Request-Id``, ``-Deadline-Ms`` (epoch ms), ``-Invoked-Function-Arn``,
  ``-Trace-Id`` and always ``Content-Type`` (awslambdaric 4.2.2 dies with SIGSEGV on a ``next`` answer without
  one). Several runtimes (the worker processes of a multi-concurrent environment) may wait at once; each queued
  invocation goes to exactly one of them.
* ``POST /2018-06-01/runtime/invocation/<id>/response`` and ``.../error``;
* ``POST /2018-06-01/runtime/init/error``, ``GET /2018-06-01/runtime/restore/next`` (SnapStart: answers when the
  test calls :meth:`RuntimeApi.restore`, standing for "snapshot taken, environment restored") and
  ``POST /2018-06-01/runtime/restore/error``;
* ``POST /2020-01-01/extension/register`` and ``GET /2020-01-01/extension/event/next`` (answers ``SHUTDOWN`` once
  the test calls :meth:`RuntimeApi.shutdown`).

Not implemented: the Logs/Telemetry APIs, INVOKE events for extensions, response streaming, and everything Lambda
does to processes (freezing, SIGTERM, SIGKILL): the tests do those themselves with signals.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FUNCTION_ARN", "Invocation", "RuntimeApi"]

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:ExampleFunction"
_INVOCATION = "/2018-06-01/runtime/invocation/"
_POLL = 0.05  # how often a waiting `next` looks whether the API is shutting down


@dataclass
class Invocation:
    """One queued invocation and what the runtime reported for it (times from ``time.monotonic()``)."""

    request_id: str
    payload: bytes
    timeout_ms: int
    queued_at: float
    deadline_ms: int = 0  # epoch milliseconds, set when delivered (Lambda's clock starts at delivery)
    delivered_at: float | None = None
    finished_at: float | None = None
    response: bytes | None = None
    error: dict[str, Any] | None = None
    error_type: str | None = None  # the Lambda-Runtime-Function-Error-Type header
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def ok(self) -> bool:
        """Whether the runtime posted a response (not an error)."""
        return self.response is not None

    def result(self) -> Any:
        """The handler's return value (the response body as JSON)."""
        if self.response is None:
            raise AssertionError(f"{self.request_id} has no response: {self.error}")
        return json.loads(self.response)

    @property
    def seconds(self) -> float:
        """From delivery to the runtime's report."""
        if self.delivered_at is None or self.finished_at is None:
            raise AssertionError(f"{self.request_id} is not finished")
        return self.finished_at - self.delivered_at


@dataclass
class _State:
    pending: queue.Queue[Invocation] = field(default_factory=queue.Queue)
    invocations: dict[str, Invocation] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)
    waiting: int = 0  # runtimes currently blocked in invocation/next
    next_calls: int = 0
    init_errors: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)
    restore_errors: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)
    restore_requested: threading.Event = field(default_factory=threading.Event)
    restore_requested_at: float | None = None
    restored: threading.Event = field(default_factory=threading.Event)
    extensions: list[str] = field(default_factory=list)
    extension_waiting: threading.Event = field(default_factory=threading.Event)
    shutdown: threading.Event = field(default_factory=threading.Event)
    shutdown_reason: str = "spindown"
    changed: threading.Condition = field(default_factory=threading.Condition)


class _Handler(BaseHTTPRequestHandler):
    state: _State
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall between them

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"{}", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")  # always: awslambdaric 4.2.2 segfaults without
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunk = self.rfile.read(size + 2)[:size]
                if not size:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _json(self) -> dict[str, Any]:
        raw = self._body()
        try:
            value = json.loads(raw or b"{}")
        except ValueError:
            return {"raw": raw.decode("utf-8", "replace")}
        return value if isinstance(value, dict) else {"value": value}

    def _notify(self) -> None:
        with self.state.changed:
            self.state.changed.notify_all()

    def do_GET(self) -> None:
        state = self.state
        if self.path == _INVOCATION + "next":
            self._next()
        elif self.path == "/2018-06-01/runtime/restore/next":
            state.restore_requested_at = time.monotonic()
            state.restore_requested.set()
            self._notify()
            while not state.restored.wait(_POLL):
                if state.closing.is_set():
                    return
            self._reply(200)
        elif self.path == "/2020-01-01/extension/event/next":
            state.extension_waiting.set()
            self._notify()
            while not state.shutdown.wait(_POLL):
                if state.closing.is_set():
                    return
            deadline = int(time.time() * 1000) + 2000
            event = {"eventType": "SHUTDOWN", "shutdownReason": state.shutdown_reason, "deadlineMs": deadline}
            self._reply(200, json.dumps(event).encode())
        else:
            self._reply(404, b'{"errorType": "NotFound"}')

    def _next(self) -> None:
        state = self.state
        with state.lock:
            state.waiting += 1
            state.next_calls += 1
        self._notify()
        try:
            while True:
                try:
                    inv = state.pending.get(timeout=_POLL)
                    break
                except queue.Empty:
                    if state.closing.is_set():
                        return
        finally:
            with state.lock:
                state.waiting -= 1
        inv.delivered_at = time.monotonic()
        inv.deadline_ms = int(time.time() * 1000) + inv.timeout_ms
        headers = {
            "Lambda-Runtime-Aws-Request-Id": inv.request_id,
            "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
            "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
        }
        self._reply(200, inv.payload, headers)

    def do_POST(self) -> None:
        state = self.state
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
        if self.path.startswith(_INVOCATION):
            request_id, _, kind = self.path[len(_INVOCATION) :].partition("/")
            inv = state.invocations.get(request_id)
            if inv is None or kind not in ("response", "error") or inv.done.is_set():
                self._body()
                self._reply(400, b'{"errorType": "InvalidRequestID"}')
                return
            if kind == "response":
                inv.response = self._body()
            else:
                inv.error, inv.error_type = self._json(), error_type
            inv.finished_at = time.monotonic()
            inv.done.set()
            self._reply(202)
        elif self.path == "/2018-06-01/runtime/init/error":
            state.init_errors.append((error_type, self._json()))
            self._reply(202)
        elif self.path == "/2018-06-01/runtime/restore/error":
            state.restore_errors.append((error_type, self._json()))
            self._reply(202)
        elif self.path == "/2020-01-01/extension/register":
            self._body()
            name = self.headers.get("Lambda-Extension-Name", "")
            state.extensions.append(name)
            info = {"functionName": "ExampleFunction", "functionVersion": "$LATEST", "handler": "handler.handler"}
            self._reply(200, json.dumps(info).encode(), {"Lambda-Extension-Identifier": str(uuid.uuid4())})
        else:
            self._body()
            self._reply(404, b'{"errorType": "NotFound"}')
        self._notify()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The runtime client may close its connection before reading our 202: that is not an error here.
        import sys  # noqa: PLC0415

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class RuntimeApi:
    """The loopback Runtime API; a context manager. ``address`` is what ``AWS_LAMBDA_RUNTIME_API`` takes."""

    def __init__(self) -> None:
        self._state = _State()
        handler = type("RuntimeApiHandler", (_Handler,), {"state": self._state})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="runtime-api", daemon=True)
        host, port = self._server.server_address[:2]
        self.address = f"{host!s}:{port}"

    def __enter__(self) -> RuntimeApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop answering; waiting requests are dropped."""
        self._state.closing.set()
        self._server.shutdown()
        self._server.server_close()

    # ---------------------------------------------------------------------------------------- invocations
    def invoke(self, event: Any, *, timeout_ms: int = 10_000) -> Invocation:
        """Queue one invocation (its deadline is ``timeout_ms`` after delivery); returns at once."""
        inv = Invocation(str(uuid.uuid4()), json.dumps(event).encode(), timeout_ms, time.monotonic())
        self._state.invocations[inv.request_id] = inv
        self._state.pending.put(inv)
        return inv

    def run(self, event: Any, *, timeout_ms: int = 10_000, wait: float = 30.0) -> Invocation:
        """Invoke and wait for the runtime's report."""
        inv = self.invoke(event, timeout_ms=timeout_ms)
        if not inv.done.wait(wait):
            raise AssertionError(f"no report for {inv.request_id} within {wait} s")
        return inv

    def run_concurrently(self, events: list[Any], *, timeout_ms: int = 10_000, wait: float = 60.0) -> list[Invocation]:
        """Queue all ``events`` at once and wait for every report."""
        invocations = [self.invoke(event, timeout_ms=timeout_ms) for event in events]
        end = time.monotonic() + wait
        for inv in invocations:
            if not inv.done.wait(max(0.0, end - time.monotonic())):
                raise AssertionError(f"no report for {inv.request_id} within {wait} s")
        return invocations

    @property
    def invocations(self) -> list[Invocation]:
        """Every invocation queued so far, in order."""
        return list(self._state.invocations.values())

    @property
    def next_calls(self) -> int:
        """How many ``invocation/next`` requests arrived."""
        return self._state.next_calls

    def wait_for_waiting(self, count: int = 1, timeout: float = 30.0) -> None:
        """Until ``count`` runtimes wait in ``invocation/next`` (their init is over)."""
        self._wait(lambda: self._state.waiting >= count, timeout, f"{count} runtimes waiting in next")

    # ------------------------------------------------------------------------------------- init, SnapStart
    @property
    def init_errors(self) -> list[tuple[str | None, dict[str, Any]]]:
        """``(Lambda-Runtime-Function-Error-Type, body)`` of each ``init/error``."""
        return list(self._state.init_errors)

    @property
    def restore_errors(self) -> list[tuple[str | None, dict[str, Any]]]:
        """``(Lambda-Runtime-Function-Error-Type, body)`` of each ``restore/error``."""
        return list(self._state.restore_errors)

    def wait_for_restore_next(self, timeout: float = 30.0) -> float:
        """Until the runtime asks ``restore/next`` (its before-snapshot hooks have run); returns when it did."""
        self._wait(self._state.restore_requested.is_set, timeout, "restore/next")
        assert self._state.restore_requested_at is not None
        return self._state.restore_requested_at

    def restore(self) -> None:
        """Answer ``restore/next``: the snapshot was taken and the environment restored."""
        self._state.restored.set()

    # ----------------------------------------------------------------------------------------- extensions
    @property
    def extensions(self) -> list[str]:
        """Names of the registered extensions."""
        return list(self._state.extensions)

    def wait_for_extension(self, timeout: float = 30.0) -> None:
        """Until an extension waits in ``event/next``."""
        self._wait(self._state.extension_waiting.is_set, timeout, "an extension waiting in event/next")

    def shutdown(self, reason: str = "spindown") -> None:
        """Send ``SHUTDOWN`` to the extensions (the test sends SIGTERM to the runtime itself, as Lambda does)."""
        self._state.shutdown_reason = reason
        self._state.shutdown.set()

    def _wait(self, predicate: Any, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        with self._state.changed:
            while not predicate():
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
                self._state.changed.wait(min(left, _POLL))
