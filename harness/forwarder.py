"""Switchable loopback TCP forwarders in a process of their own, for loads of hundreds of connections.

:class:`harness.cluster.Endpoint` is a thread per connection inside the caller's process: right for tests, too heavy
for the benchmark, where a fleet holds a thousand connections through the cluster endpoint and the scheduler
shares the interpreter lock with them. Here one child process runs every endpoint on one asyncio loop::

    with ForwarderProcess() as fwd:
        cluster = fwd.open((writer.host, writer.port))        # a RemoteEndpoint: .host, .port, .switch()
        reader = fwd.open(*[(r.host, r.port) for r in replicas])
        cluster.switch((new.host, new.port))

Same rules as :class:`~harness.cluster.Endpoint`: each new connection goes to the next target (round-robin), chosen
when it is accepted; a switch leaves existing connections where they are; a connection whose server is gone is
aborted (RST) on the client side too. Loopback only. The child is ``python harness/forwarder.py`` (stdlib only),
driven over a JSON-lines pipe, and exits when the pipe closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["ForwarderProcess", "RemoteEndpoint"]


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# ---- the child process ------------------------------------------------------------------------------------------


class _Side(asyncio.Protocol):
    """One half of a forwarded connection; ``peer`` is the other half."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.pending: list[bytes] = []
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.pending.append(data)
        else:
            peer.transport.write(data)

    def eof_received(self) -> bool:
        if self.peer is not None and self.peer.transport is not None and self.peer.transport.can_write_eof():
            self.peer.transport.write_eof()
        return True  # keep our write side open until the peer closes too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.closed:
            if exc is not None:
                peer.transport.abort()  # a reset stays a reset
            else:
                peer.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _Listener:
    def __init__(self, targets: list[tuple[str, int]]) -> None:
        self.targets = targets
        self.turn = 0
        self.accepted = 0
        self.failed_upstream = 0
        self.server: asyncio.Server | None = None

    def pick(self) -> tuple[str, int]:
        target = self.targets[self.turn % len(self.targets)]
        self.turn += 1
        return target

    def new_client(self) -> _Side:
        client = _Side()
        target = self.pick()
        self.accepted += 1
        asyncio.get_running_loop().create_task(self._connect(client, target))
        return client

    async def _connect(self, client: _Side, target: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        upstream = _Side()
        try:
            await loop.create_connection(lambda: upstream, target[0], target[1])
        except OSError:
            self.failed_upstream += 1
            if client.transport is not None:
                client.transport.abort()  # nothing listens there: the client sees a reset
            return
        upstream.peer, client.peer = client, upstream
        assert upstream.transport is not None
        if client.closed:
            upstream.transport.close()
            return
        for chunk in client.pending:
            upstream.transport.write(chunk)
        client.pending.clear()


async def _child_main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    listeners: dict[int, _Listener] = {}

    def reply(msg: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()

    while True:
        line = await reader.readline()
        if not line:
            return
        msg = json.loads(line)
        op, rid = msg.get("op"), msg.get("id")
        try:
            if op == "open":
                listener = _Listener([(str(h), int(p)) for h, p in msg["targets"]])
                server = await loop.create_server(listener.new_client, "127.0.0.1", 0, backlog=1024)
                listener.server = server
                port = int(server.sockets[0].getsockname()[1])
                listeners[port] = listener
                reply({"id": rid, "ok": True, "port": port})
            elif op == "switch":
                listeners[int(msg["port"])].targets = [(str(h), int(p)) for h, p in msg["targets"]]
                reply({"id": rid, "ok": True})
            elif op == "stats":
                stats = {
                    str(p): {"accepted": x.accepted, "failed_upstream": x.failed_upstream} for p, x in listeners.items()
                }
                reply({"id": rid, "ok": True, "stats": stats})
            elif op == "exit":
                reply({"id": rid, "ok": True})
                return
            else:
                reply({"id": rid, "ok": False, "error": f"bad op {op!r}"})
        except Exception as exc:  # reported to the parent
            reply({"id": rid, "ok": False, "error": f"{type(exc).__name__}: {exc}"})


# ---- the parent side --------------------------------------------------------------------------------------------


class RemoteEndpoint:
    """One listening address of a :class:`ForwarderProcess` (same interface as :class:`harness.cluster.Endpoint`)."""

    def __init__(self, process: ForwarderProcess, port: int, targets: list[tuple[str, int]]) -> None:
        self._process = process
        self.host = "127.0.0.1"
        self.port = port
        self._targets = targets
        self.switched_at: list[float] = []

    def __repr__(self) -> str:
        return f"<RemoteEndpoint {self.host}:{self.port} -> {self._targets}>"

    @property
    def targets(self) -> list[tuple[str, int]]:
        """Where new connections go now."""
        return list(self._targets)

    def switch(self, *targets: tuple[str, int]) -> None:
        """New connections go to ``targets`` from now on (existing ones stay where they are)."""
        if not targets or not all(_loopback(h) for h, _ in targets):
            raise ValueError("an endpoint needs at least one loopback target")
        self._process.request({"op": "switch", "port": self.port, "targets": [list(t) for t in targets]})
        self._targets = list(targets)
        self.switched_at.append(time.monotonic())

    def stop(self) -> None:
        """Nothing to do: the endpoint ends with its process (:meth:`ForwarderProcess.close`)."""


class ForwarderProcess:
    """The child process that runs every :class:`RemoteEndpoint`; close it (or use ``with``) to end them all."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._lock = threading.Lock()
        self._ids = 0

    def request(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Send one command and wait for its answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            self._ids += 1
            self.proc.stdin.write(json.dumps({**msg, "id": self._ids}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the forwarder process is gone")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise RuntimeError(f"forwarder: {answer.get('error')}")
        return answer

    def open(self, *targets: tuple[str, int]) -> RemoteEndpoint:
        """A new listening endpoint on loopback forwarding to ``targets`` (round-robin)."""
        if not targets or not all(_loopback(h) for h, _ in targets):
            raise ValueError("an endpoint needs at least one loopback target")
        port = int(self.request({"op": "open", "targets": [list(t) for t in targets]})["port"])
        return RemoteEndpoint(self, port, list(targets))

    def stats(self) -> dict[str, Any]:
        """Per port: connections accepted, and those whose server could not be reached."""
        stats: dict[str, Any] = self.request({"op": "stats"})["stats"]
        return stats

    def close(self) -> None:
        """End the process (every endpoint and connection with it)."""
        with contextlib.suppress(Exception):
            self.request({"op": "exit"})
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # our own child, by its Popen object
            self.proc.wait(5)

    def __enter__(self) -> ForwarderProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


if __name__ == "__main__":
    asyncio.run(_child_main())
