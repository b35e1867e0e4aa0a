"""SIGTERM in a real process: the decorated handler's connection is closed with COM_QUIT, and the server sees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.mariadb import AppUser, MariaDBServer
from tests.conftest import ServerFactory, UserFactory

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import signal, sys, time
    {prelude}
    from serverless_mysql import with_mysql

    @with_mysql  # configured by SERVERLESS_MYSQL_* only
    def handler(event, context, db):
        return db.query("SELECT CONNECTION_ID() AS id")[0]["id"]

    print(handler({{}}, None), flush=True)  # end() keeps the connection open, as in a warm environment
    time.sleep(60)
    print("not terminated", flush=True)
    """
)

PREVIOUS_HANDLER = textwrap.dedent(
    """
    def previous(signum, frame):
        print("previous handler ran", flush=True)
        sys.exit(3)

    signal.signal(signal.SIGTERM, previous)
    """
)


@pytest.fixture
def server(server_factory: ServerFactory) -> MariaDBServer:
    """A server of our own: its Aborted_clients counter sees no other test's connections."""
    return server_factory(max_connections=20)


@pytest.fixture
def user(server: MariaDBServer, make_user: UserFactory) -> AppUser:
    return make_user(server=server)


@pytest.fixture
def child_env(user: AppUser) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVERLESS_MYSQL_")}
    env.update(
        SERVERLESS_MYSQL_URL=user.url(),
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]),
    )
    return env


def start_child(prelude: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    code = CHILD.format(prelude=prelude)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise AssertionError(f"child failed: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc, int(line)


def wait_gone(server: MariaDBServer, thread_id: int, timeout: float = 5.0) -> float:
    """Seconds until ``thread_id`` left the server's processlist."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if all(int(row["ID"]) != thread_id for row in server.processlist()):
            return time.monotonic() - started
        time.sleep(0.002)
    raise AssertionError(f"connection {thread_id} still open {timeout}s after SIGTERM")


def test_sigterm_closes_the_connection_cleanly_then_ends_the_process(
    server: MariaDBServer, user: AppUser, child_env: dict[str, str]
) -> None:
    proc, thread_id = start_child("", child_env)
    try:
        assert any(int(row["ID"]) == thread_id for row in server.processlist(user.name))
        aborted_before = int(server.status("Aborted_clients") or 0)
        proc.send_signal(signal.SIGTERM)
        latency = wait_gone(server, thread_id)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # The default action still happens: the process ends by SIGTERM, as it would without us.
    assert proc.returncode == -signal.SIGTERM, err
    assert "not terminated" not in out
    # COM_QUIT, not a dropped socket: the server does not count an aborted client.
    assert int(server.status("Aborted_clients") or 0) == aborted_before
    assert latency < 0.3, latency  # Lambda gives the runtime up to 300 ms
    print(f"SIGTERM close latency (signal sent -> gone from the processlist): {latency * 1000:.1f} ms")


def test_sigterm_chains_the_previous_handler(server: MariaDBServer, user: AppUser, child_env: dict[str, str]) -> None:
    proc, thread_id = start_child(PREVIOUS_HANDLER, child_env)
    try:
        aborted_before = int(server.status("Aborted_clients") or 0)
        proc.send_signal(signal.SIGTERM)
        wait_gone(server, thread_id)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "previous handler ran" in out, err
    assert proc.returncode == 3
    assert int(server.status("Aborted_clients") or 0) == aborted_before


def test_sigterm_opt_out_leaves_the_default_behaviour(
    server: MariaDBServer, user: AppUser, child_env: dict[str, str]
) -> None:
    proc, thread_id = start_child("", {**child_env, "SERVERLESS_MYSQL_SIGTERM": "false"})
    try:
        aborted_before = int(server.status("Aborted_clients") or 0)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
        wait_gone(server, thread_id)  # the kernel closes the socket when the process dies...
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGTERM
    # ...without COM_QUIT: the server counts an aborted client (what the handler avoids).
    deadline = time.monotonic() + 2
    while int(server.status("Aborted_clients") or 0) == aborted_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert int(server.status("Aborted_clients") or 0) == aborted_before + 1
