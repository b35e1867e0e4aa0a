"""The opt-in shutdown extension, from the built zip, against a fake Lambda Extensions API on loopback.

Measures what it costs: the time from process start until it has registered and waits in ``event/next``
(Lambda's Init waits for that) and its resident memory while it waits for the whole life of the environment.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import statistics
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

from tests.layer.conftest import LayerBuild, find_python

ROOT = Path(__file__).resolve().parents[2]
NAME = "serverless-mysql-shutdown"
IDENT = "11111111-2222-3333-4444-555555555555"


@dataclass
class ApiState:
    """What the fake Extensions API saw, with monotonic timestamps."""

    register_status: int = 200
    registered: list[dict[str, Any]] = field(default_factory=list)
    next_calls: list[float] = field(default_factory=list)
    waiting: threading.Event = field(default_factory=threading.Event)
    shutdown: threading.Event = field(default_factory=threading.Event)


class FakeExtensionsApi(BaseHTTPRequestHandler):
    """``POST /2020-01-01/extension/register`` and a ``GET .../event/next`` that blocks until shutdown."""

    state: ClassVar[ApiState]
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path != "/2020-01-01/extension/register":
            self._reply(404, {"errorType": "NotFound"})
            return
        self.state.registered.append(
            {"at": time.monotonic(), "name": self.headers.get("Lambda-Extension-Name"), "body": body}
        )
        if self.state.register_status != 200:
            self._reply(self.state.register_status, {"errorType": "Extension.Boom", "errorMessage": "no"})
            return
        info = {"functionName": "ExampleFunction", "functionVersion": "$LATEST", "handler": "handler.handler"}
        self._reply(200, info, {"Lambda-Extension-Identifier": IDENT})

    def do_GET(self) -> None:
        if self.path != "/2020-01-01/extension/event/next" or self.headers.get("Lambda-Extension-Identifier") != IDENT:
            self._reply(403, {"errorType": "Extension.InvalidExtensionIdentifier"})
            return
        self.state.next_calls.append(time.monotonic())
        self.state.waiting.set()
        self.state.shutdown.wait(60)
        deadline_ms = int(time.time() * 1000) + 2000
        self._reply(200, {"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": deadline_ms})


@pytest.fixture
def api() -> Iterator[tuple[str, ApiState]]:
    state = ApiState()
    handler = type("Api", (FakeExtensionsApi,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"{host!s}:{port}", state
    finally:
        state.shutdown.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def opt(layer_build: LayerBuild, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The extension layer unzipped as Lambda does it into /opt (zip modes restored)."""
    target = tmp_path_factory.mktemp("opt")
    with zipfile.ZipFile(layer_build.extension_zip) as zf:
        for info in zf.infolist():
            path = Path(zf.extract(info, target))
            path.chmod(info.external_attr >> 16 & 0o777)
    return target


@pytest.fixture(scope="module")
def runtime_python() -> str:
    exe = find_python("3.12") or find_python("3.13")
    if exe is None:
        pytest.skip("needs a python3.12 or python3.13 interpreter (Lambda's python3.12+ runtimes)")
    return exe


def _env(api: str, runtime_python: str) -> dict[str, str]:
    # Like Lambda: the runtime's bin directory (/var/lang/bin there) first on PATH. No PYTHON* variables leak in.
    return {
        "PATH": f"{Path(runtime_python).parent}{os.pathsep}/usr/bin:/bin",
        "AWS_LAMBDA_RUNTIME_API": api,
        "LANG": "C.UTF-8",
    }


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _start(opt: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(opt / "extensions" / NAME)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _load_extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location("shutdown_extension", ROOT / "layer" / "extension" / "extension.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_http_parsing_helpers() -> None:
    ext = _load_extension()
    assert ext._dechunk(b'7\r\n{"a": 1\r\n1;ext=1\r\n}\r\n0\r\n\r\n') == b'{"a": 1}'
    event = b'{"eventType" : "SHUTDOWN", "shutdownReason":"timeout", "deadlineMs": 1}'
    assert ext._json_string(event, "eventType") == "SHUTDOWN"
    assert ext._json_string(event, "shutdownReason") == "timeout"
    assert ext._json_string(event, "deadlineMs") is None  # a number, not a string
    assert ext._json_string(event, "missing") is None
    assert ext._json_string(b'{"eventType": "INVOKE"}', "eventType") == "INVOKE"


def test_imports_only_the_standard_library() -> None:
    tree = ast.parse((ROOT / "layer" / "extension" / "extension.py").read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "_socket", "os", "sys"}, imported


def test_registers_for_shutdown_only_and_exits_on_shutdown(
    opt: Path, api: tuple[str, ApiState], runtime_python: str, tmp_path: Path
) -> None:
    address, state = api
    env = _env(address, runtime_python)
    # A booby-trapped serverless_mysql and sitecustomize on PYTHONPATH: -I -S must keep them out.
    trap = tmp_path / "trap"
    (trap / "serverless_mysql").mkdir(parents=True)
    (trap / "serverless_mysql" / "__init__.py").write_text("raise SystemExit('imported serverless_mysql')\n")
    (trap / "sitecustomize.py").write_text("raise SystemExit('ran sitecustomize')\n")
    env["PYTHONPATH"] = str(trap)
    env["SERVERLESS_MYSQL_EXTENSION_DEBUG"] = "1"
    proc = _start(opt, env)
    try:
        assert state.waiting.wait(30), "the extension never called event/next"
        assert proc.poll() is None, "the extension must wait for SHUTDOWN, not exit"
        assert state.registered == [
            {"at": state.registered[0]["at"], "name": NAME, "body": {"events": ["SHUTDOWN"]}}
        ], "registers under its file name, for SHUTDOWN only (INVOKE would cost every invocation a round trip)"
        shutdown_at = time.monotonic()
        state.shutdown.set()
        _, stderr = proc.communicate(timeout=10)
        exit_seconds = time.monotonic() - shutdown_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "SHUTDOWN (spindown)" in stderr
    assert exit_seconds < 1.0, f"took {exit_seconds:.3f} s to exit after SHUTDOWN; Lambda allows 2 s in total"
    assert len(state.next_calls) == 1


def test_register_failure_is_reported(opt: Path, api: tuple[str, ApiState], runtime_python: str) -> None:
    address, state = api
    state.register_status = 500
    proc = _start(opt, _env(address, runtime_python))
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "register failed: HTTP 500" in stderr


def test_without_runtime_api_it_says_so(opt: Path, runtime_python: str) -> None:
    env = _env("", runtime_python)
    del env["AWS_LAMBDA_RUNTIME_API"]
    proc = _start(opt, env)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "AWS_LAMBDA_RUNTIME_API is not set" in stderr


@pytest.mark.slow
def test_init_time_and_memory(opt: Path, runtime_python: str) -> None:
    """Cost of the extension: median of several cold starts (page cache warm, as after Lambda's first one)."""
    register_ms: list[float] = []
    init_ms: list[float] = []
    exit_ms: list[float] = []
    rss_kb: list[int] = []
    for _ in range(7):
        state = ApiState()
        handler = type("Api", (FakeExtensionsApi,), {"state": state})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        host, port = server.server_address[:2]
        started = time.monotonic()
        proc = _start(opt, _env(f"{host!s}:{port}", runtime_python))
        try:
            assert state.waiting.wait(30)
            register_ms.append((state.registered[0]["at"] - started) * 1000)
            init_ms.append((state.next_calls[0] - started) * 1000)
            rss_kb.append(_rss_kb(proc.pid))
            shutdown_at = time.monotonic()
            state.shutdown.set()
            proc.wait(timeout=10)
            exit_ms.append((time.monotonic() - shutdown_at) * 1000)
            proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            server.shutdown()
            server.server_close()
        assert proc.returncode == 0
    median_ms, median_rss = statistics.median(init_ms), statistics.median(rss_kb)
    print(
        f"\nshutdown extension (median of {len(init_ms)}): registered after {statistics.median(register_ms):.1f} ms, "
        f"waiting in event/next after {median_ms:.1f} ms, RSS {median_rss / 1024:.1f} MiB, "
        f"exited {statistics.median(exit_ms):.1f} ms after SHUTDOWN"
    )
    # Generous bounds for a loaded 2-core machine; the point is "tens of ms, about 10 MiB", not hundreds.
    assert median_ms < 500
    assert median_rss < 32 * 1024
