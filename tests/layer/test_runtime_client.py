"""The built layer under Lambda's own runtime client: ``python -m awslambdaric handler.fn``.

A fresh interpreter (``-S``: no site-packages) laid out as on Lambda: ``task/`` the function's code (/var/task),
``opt/python/`` the layer zip unzipped (/opt/python), ``runtime/`` awslambdaric and its dependencies (what the
managed runtime keeps in /var/runtime). It talks to :class:`harness.runtime_api.RuntimeApi` on loopback and to a
private MariaDB of this module (its own ``wait_timeout`` and ``Aborted_clients``).

awslambdaric is a native extension built for the interpreter of the test environment (``sys.executable``), so
the runtime runs under that interpreter; ``AWS_EXECUTION_ENV`` says which managed runtime it plays.
``lambda_runner.py`` stays for what awslambdaric cannot serve here: the layer under python3.12/3.13 themselves
(test_layer_e2e.py), for which no awslambdaric build is installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest

from harness.mariadb import AppUser, MariaDBServer
from harness.runtime_api import RuntimeApi
from tests.conftest import private_server
from tests.layer.conftest import LayerBuild, link_module

pytestmark = pytest.mark.slow

# What the managed runtime has in /var/runtime besides the standard library.
RUNTIME_MODULES = ("awslambdaric", "runtime_client", "simplejson", "snapshot_restore_py")
WAIT_TIMEOUT = 2  # the server's wait_timeout (s): a frozen environment's connection is gone after it

HANDLER = """
import json, os, time
from serverless_mysql import with_mysql

@with_mysql(connect_on_init=os.environ.get("TEST_CONNECT_ON_INIT") == "1", conn_utilization=0.8)
def fn(event, context, db):
    if event.get("raise"):
        raise ValueError(event["raise"])
    first = db.query("SELECT CONNECTION_ID() AS id")[0]["id"]
    if event.get("sleep"):
        db.query("SET SESSION wait_timeout = 60")  # the module's server drops idle connections after 2 s
        time.sleep(event["sleep"])
    last = db.query("SELECT CONNECTION_ID() AS id")[0]["id"]
    stats = db.get_stats()
    return {"thread": first, "last": last, "pid": os.getpid(), "left": context.get_remaining_time_in_millis(),
            "kills": stats.zombies_killed, "arn": context.invoked_function_arn}

if os.environ.get("TEST_BREAK_QUIT") == "1":
    def _broken_quit():
        raise RuntimeError("quit failed (test)")
    fn.db.quit = _broken_quit

_report = os.environ.get("TEST_REPORT")
if _report:
    conn = fn.db.get_client()
    with open(_report, "a") as fh:
        fh.write(json.dumps({"init_thread": conn.thread_id() if conn is not None else None}) + "\\n")
    import snapshot_restore_py

    def _restored():
        with open(_report, "a") as fh:
            fh.write(json.dumps({"restored": True}) + "\\n")

    snapshot_restore_py.register_after_restore(_restored)  # after ours: it runs only if ours did not fail
"""


@dataclass(frozen=True)
class Sandbox:
    """task/ (the function), opt/ (the layers: python/ and extensions/), runtime/ (awslambdaric)."""

    task: Path
    opt: Path
    runtime: Path


@pytest.fixture(scope="module")
def sandbox(layer_build: LayerBuild, tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    base = tmp_path_factory.mktemp("awslambdaric")
    task, opt, runtime = base / "task", base / "opt", base / "runtime"
    for directory in (task, opt, runtime):
        directory.mkdir()
    for zip_path in (layer_build.layer_zip, layer_build.extension_zip):
        with zipfile.ZipFile(zip_path) as zf:
            for info in zf.infolist():
                Path(zf.extract(info, opt)).chmod(info.external_attr >> 16 & 0o777 or 0o644)
    (task / "handler.py").write_text(HANDLER, encoding="utf-8")
    for name in RUNTIME_MODULES:
        link_module(name, runtime, skip_if_missing=True)
    return Sandbox(task, opt, runtime)


@pytest.fixture(scope="module")
def server() -> Iterator[MariaDBServer]:
    """A private server of this module: a short wait_timeout, and counters no other test touches."""
    yield from private_server(max_connections=20, extra_args=[f"--wait-timeout={WAIT_TIMEOUT}"])


@pytest.fixture
def user(server: MariaDBServer) -> Iterator[AppUser]:
    made = server.create_user()
    yield made
    server.close_zombies()


@pytest.fixture
def api() -> Iterator[RuntimeApi]:
    with RuntimeApi() as runtime_api:
        yield runtime_api


class Runtime:
    """One ``python -m awslambdaric handler.fn`` process (its output in files: a pipe could fill up)."""

    def __init__(self, sandbox: Sandbox, api: RuntimeApi, user: AppUser, tmp: Path, **env: str | None) -> None:
        base = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
            "HOME": str(tmp),
            "LANG": "C.UTF-8",
            "TMPDIR": str(tmp),
            "PYTHONPATH": os.pathsep.join(str(p) for p in (sandbox.task, sandbox.opt / "python", sandbox.runtime)),
            "PYTHONDONTWRITEBYTECODE": "1",
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "AWS_LAMBDA_FUNCTION_NAME": "ExampleFunction",
            "AWS_REGION": "us-east-1",
            "SERVERLESS_MYSQL_URL": user.url(),
        }
        for key, value in env.items():
            if value is None:
                base.pop(key, None)
            else:
                base[key] = value
        self.out = tmp / f"runtime-{time.monotonic_ns()}.log"
        self._log = self.out.open("w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-B", "-m", "awslambdaric", "handler.fn"],
            cwd=sandbox.task,
            env=base,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own: the workers of a multi-concurrent runtime too
        )

    def output(self) -> str:
        self._log.flush()
        return self.out.read_text(errors="replace")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the runtime and any worker it forked
        self.proc.wait(10)
        self._log.close()


@pytest.fixture
def start(sandbox: Sandbox, api: RuntimeApi, user: AppUser, tmp_path: Path) -> Iterator[Any]:
    started: list[Runtime] = []

    def run(**env: str | None) -> Runtime:
        runtime = Runtime(sandbox, api, user, tmp_path, **env)
        started.append(runtime)
        return runtime

    yield run
    for runtime in started:
        runtime.stop()


def _threads(server: MariaDBServer, user: AppUser) -> set[int]:
    return {int(row["ID"]) for row in server.processlist(user.name)}


def _aborted(server: MariaDBServer) -> int:
    return int(server.status("Aborted_clients") or 0)


def _wait_gone(server: MariaDBServer, user: AppUser, thread: int, timeout: float) -> float:
    started = time.monotonic()
    while thread in _threads(server, user):
        if time.monotonic() - started > timeout:
            raise AssertionError(f"connection {thread} still open after {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - started


def _fill(server: MariaDBServer, other: AppUser, user: AppUser) -> list[pymysql.connections.Connection[Any]]:
    """Take every slot a user without SUPER can get: the next connect is refused with 1040. Close what it returns.

    The slots must stay taken until the invocation connects: the module's server drops idle sessions after
    WAIT_TIMEOUT, and the runtime's start took longer than that in one CI run (the invocation was served), so each
    session here lifts its own timeout. ``user``'s connections left by an earlier test must be gone first.
    """
    assert server.wait_for_connection_count(0, user.name, timeout=10.0) == 0
    taken: list[pymysql.connections.Connection[Any]] = []
    for _ in range(server.max_connections + 2):
        try:
            taken.append(pymysql.connect(**other.connect_kwargs(), init_command="SET SESSION wait_timeout = 600"))
        except pymysql.err.OperationalError as exc:  # noqa: PERF203 - a few iterations
            assert exc.args[0] == 1040, exc
            return taken
    raise AssertionError("the server never refused a connection")


# ------------------------------------------------------------------------------------------------- classic
def test_classic_one_connection_for_50_invocations_and_lambda_error_payloads(
    start: Any, api: RuntimeApi, server: MariaDBServer, user: AppUser
) -> None:
    runtime = start()
    api.wait_for_waiting()
    results = [api.run({"n": n}) for n in range(50)]
    assert all(inv.ok for inv in results), [inv.error for inv in results if not inv.ok]
    values = [inv.result() for inv in results]
    assert {v["thread"] for v in values} | {v["last"] for v in values} == {values[0]["thread"]}
    assert _threads(server, user) == {values[0]["thread"]}
    # The context comes from the headers: the deadline (10 s from delivery) and the function's ARN.
    assert all(0 < v["left"] <= 10_000 for v in values)
    assert values[0]["arn"].endswith(":function:ExampleFunction")

    failed = api.run({"raise": "bad order"})
    assert failed.error is not None and not failed.ok
    assert failed.error["errorType"] == "ValueError"
    assert failed.error["errorMessage"] == "bad order"
    assert failed.error["requestId"] == failed.request_id
    assert any("handler.py" in line for line in failed.error["stackTrace"])
    # The runtime goes on, on the same connection.
    assert api.run({}).result()["thread"] == values[0]["thread"]
    assert runtime.proc.poll() is None
    print(f"\nclassic: 50 invocations, median {sorted(i.seconds for i in results)[25] * 1000:.1f} ms each")


def test_a_bad_option_fails_the_init_as_lambda_reports_it(start: Any, api: RuntimeApi) -> None:
    runtime = start(SERVERLESS_MYSQL_PORT="not-a-port")
    assert runtime.proc.wait(30) == 1
    [(error_type, body)] = api.init_errors
    assert body["errorType"] == "ConfigError" == error_type
    assert "SERVERLESS_MYSQL_PORT" in body["errorMessage"]
    assert api.next_calls == 0


def test_deadline_from_the_header_against_a_full_server(
    start: Any, api: RuntimeApi, server: MariaDBServer, user: AppUser
) -> None:
    other = server.create_user()
    taken = _fill(server, other, user)
    try:
        start()
        api.wait_for_waiting()
        inv = api.run({}, timeout_ms=1000)
    finally:
        for conn in taken:
            conn.close()
    assert inv.error is not None, inv.result()
    assert inv.error["errorType"] == "DeadlineExceededError", inv.error
    assert inv.seconds < 1.0, f"reported {inv.seconds:.3f} s after delivery: past Lambda's deadline"
    print(f"\ndeadline error reported {inv.seconds * 1000:.0f} ms after delivery (deadline 1000 ms)")
    # Once the server has room, the same runtime serves again.
    assert api.run({}).ok


# ------------------------------------------------------------------------------------------- freeze, thaw
def test_frozen_longer_than_wait_timeout_then_thawed(
    start: Any, api: RuntimeApi, server: MariaDBServer, user: AppUser
) -> None:
    runtime = start()
    api.wait_for_waiting()
    before = api.run({}).result()["thread"]
    api.wait_for_waiting()  # back in invocation/next: where Lambda freezes it
    runtime.proc.send_signal(signal.SIGSTOP)
    try:
        _wait_gone(server, user, before, WAIT_TIMEOUT + 10)  # the server dropped the idle connection
    finally:
        runtime.proc.send_signal(signal.SIGCONT)
    after = api.run({})
    assert after.ok, after.error
    assert after.result()["thread"] != before
    assert all(inv.ok for inv in api.invocations)


# ---------------------------------------------------------------------------------------------- SnapStart
def _report_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_snapstart_closes_the_init_connection_and_reconnects_after_restore(
    start: Any, api: RuntimeApi, server: MariaDBServer, user: AppUser, tmp_path: Path
) -> None:
    report = tmp_path / "init.jsonl"
    aborted = _aborted(server)
    start(AWS_LAMBDA_INITIALIZATION_TYPE="snap-start", TEST_CONNECT_ON_INIT="1", TEST_REPORT=str(report))
    api.wait_for_restore_next()
    init_thread = _report_lines(report)[0]["init_thread"]
    assert init_thread is not None, "connect_on_init opened no connection"
    # Before the snapshot: gone from the server, by COM_QUIT (not counted as an aborted client).
    _wait_gone(server, user, init_thread, 2)
    assert _aborted(server) == aborted
    assert not api.init_errors
    api.restore()
    inv = api.run({})
    assert inv.ok, inv.error
    assert inv.result()["thread"] != init_thread
    assert {"restored": True} in _report_lines(report)
    assert not api.restore_errors and not api.init_errors


def test_snapstart_a_failing_close_does_not_fail_the_init(
    start: Any, api: RuntimeApi, server: MariaDBServer, user: AppUser, tmp_path: Path
) -> None:
    report = tmp_path / "init.jsonl"
    runtime = start(
        AWS_LAMBDA_INITIALIZATION_TYPE="snap-start",
        TEST_CONNECT_ON_INIT="1",
        TEST_REPORT=str(report),
        TEST_BREAK_QUIT="1",
    )
    api.wait_for_restore_next()
    init_thread = _report_lines(report)[0]["init_thread"]
    _wait_gone(server, user, init_thread, 2)  # closed anyway (the socket), not captured in the snapshot
    api.restore()
    inv = api.run({})
    assert inv.ok, inv.error
    assert not api.init_errors and not api.restore_errors, runtime.output()
    assert runtime.proc.poll() is None


# --------------------------------------------------------------------------------------- multi-concurrency
def test_multi_concurrency_four_workers_own_connections(
    start: Any, api: RuntimeApi, server: MariaDBServer, user: AppUser
) -> None:
    runtime = start(AWS_LAMBDA_MAX_CONCURRENCY="4")
    api.wait_for_waiting(4)
    invocations: list[Any] = []
    for _ in range(50):
        invocations += api.run_concurrently([{}] * 4)
        assert len(_threads(server, user)) <= 4
    errors = [inv.error for inv in invocations if not inv.ok]
    assert not errors, errors[:3]
    values = [inv.result() for inv in invocations]
    by_pid: dict[int, set[int]] = {}
    for v in values:
        by_pid.setdefault(v["pid"], set()).update({v["thread"], v["last"]})
    assert len(by_pid) == 4, f"4 worker processes expected, saw {sorted(by_pid)}"
    owners: dict[int, int] = {}
    for pid, threads in by_pid.items():
        for thread in threads:
            assert owners.setdefault(thread, pid) == pid, f"connection {thread} used by two processes"
    assert runtime.proc.poll() is None
    print(f"\nmulti-concurrency: 200 invocations over {len(owners)} connections in 4 workers")


def test_multi_concurrency_housekeeping_spares_a_busy_sibling(
    start: Any, api: RuntimeApi, server: MariaDBServer
) -> None:
    """At 4 of 6 allowed connections housekeeping kills one zombie idle 1 s: a busy sibling's connection is not one.

    (4/6 is over 75% of conn_utilization 0.8, so one of the 4 must die if it is a zombie; under 0.8, so no
    session idle timeout is lowered.)
    """
    user6 = server.create_user(max_user_connections=6)
    start(
        AWS_LAMBDA_MAX_CONCURRENCY="4",
        SERVERLESS_MYSQL_URL=user6.url(),
        SERVERLESS_MYSQL_USED_CONNS_FREQ="0",
        SERVERLESS_MYSQL_ZOMBIE_MIN_TIMEOUT="1",
    )
    api.wait_for_waiting(4)
    while len(_threads(server, user6)) < 4:  # every worker connected
        api.run_concurrently([{"sleep": 0.2}] * 4)
    slow = api.invoke({"sleep": 3})  # holds its connection idle (Sleep) for longer than zombie_min_timeout
    quick: list[Any] = []
    while not slow.done.is_set():
        quick += api.run_concurrently([{}] * 3)
        time.sleep(0.05)
    assert slow.ok, slow.error
    value = slow.result()
    assert value["thread"] == value["last"], "the busy worker's connection was killed as a zombie"
    assert all(inv.ok for inv in quick)
    assert sum(inv.result()["kills"] for inv in quick) == 0


def test_multi_concurrency_sigterm_to_the_workers_closes_every_connection(
    start: Any, api: RuntimeApi, server: MariaDBServer, user: AppUser
) -> None:
    """SIGTERM to the runtime's process group reaches every worker: each closes its connection with COM_QUIT.

    (SIGTERM to the main process alone ends only that process: the forked workers keep their connections until
    they are killed. docs/managed-instances.md says so.)
    """
    runtime = start(AWS_LAMBDA_MAX_CONCURRENCY="4")
    api.wait_for_waiting(4)
    while len(_threads(server, user)) < 4:
        api.run_concurrently([{"sleep": 0.2}] * 4)
    api.wait_for_waiting(4)
    threads = _threads(server, user)
    aborted = _aborted(server)
    os.killpg(runtime.proc.pid, signal.SIGTERM)
    for thread in threads:
        _wait_gone(server, user, thread, 2)
    assert _aborted(server) == aborted
    assert runtime.proc.wait(5) == -signal.SIGTERM


# ------------------------------------------------------------------------------------ SIGTERM, extension
@pytest.mark.parametrize("execution_env", ["AWS_Lambda_python3.12", None, "AWS_Lambda_Image"])
def test_sigterm_with_the_shutdown_extension(
    execution_env: str | None, start: Any, sandbox: Sandbox, api: RuntimeApi, server: MariaDBServer, user: AppUser
) -> None:
    extension = subprocess.Popen(
        [str(sandbox.opt / "extensions" / "serverless-mysql-shutdown")],
        env={"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin", "AWS_LAMBDA_RUNTIME_API": api.address},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        api.wait_for_extension()
        runtime = start(AWS_EXECUTION_ENV=execution_env)
        api.wait_for_waiting()
        thread = api.run({}).result()["thread"]
        api.wait_for_waiting()  # the runtime waits for the next event, as at shutdown
        aborted = _aborted(server)
        api.shutdown()
        sent = time.monotonic()
        runtime.proc.send_signal(signal.SIGTERM)
        try:
            runtime.proc.wait(2)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the runtime ignored SIGTERM for 2 s (AWS_EXECUTION_ENV={execution_env})")
        ended = time.monotonic() - sent
        gone = _wait_gone(server, user, thread, 2)
        ext_out, _ = extension.communicate(timeout=10)
    finally:
        if extension.poll() is None:
            extension.kill()
            extension.wait()
    assert api.extensions == ["serverless-mysql-shutdown"]
    assert extension.returncode == 0, ext_out
    assert runtime.proc.returncode == -signal.SIGTERM
    if execution_env == "AWS_Lambda_python3.12":
        # The decorator's handler ran: COM_QUIT, so the server counts no aborted client.
        assert _aborted(server) == aborted
    print(
        f"\nSIGTERM ({execution_env}): process ended after {ended * 1000:.0f} ms, "
        f"connection gone after {gone * 1000:.0f} ms"
    )


def test_runtime_is_isolated(sandbox: Sandbox) -> None:
    """Nothing of the repository or the test environment is on the runtime's path but what we laid out."""
    probe = subprocess.run(
        [
            sys.executable,
            "-S",
            "-B",
            "-c",
            "import serverless_mysql, pymysql, awslambdaric, sys; "
            "print(serverless_mysql.__file__); print(pymysql.__file__); print('site' in sys.modules)",
        ],
        cwd=sandbox.task,
        env={"PYTHONPATH": os.pathsep.join(str(p) for p in (sandbox.task, sandbox.opt / "python", sandbox.runtime))},
        capture_output=True,
        text=True,
        check=True,
    )
    lines = probe.stdout.split()
    assert Path(lines[0]).is_relative_to(sandbox.opt / "python")
    assert Path(lines[1]).is_relative_to(sandbox.opt / "python")
    assert shutil.which("python") is None or lines[2] == "False"
