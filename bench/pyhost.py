"""Hosts the environments of one Python strategy in a child process, like ``bench/node/fleet.js`` does for Node.

Every strategy's clients thus run in a process of their own, with their own interpreter lock, and the
scheduler, the load generator and the sampler (in the parent) neither slow them down nor get slowed down by
them; client CPU is measured per process for every strategy alike. Same JSON-lines protocol as fleet.js::

    {"op":"init","id":1,"strategy":"with_mysql","target":{...},"options":{...}}
    {"op":"create","id":2,"env":7}
    {"op":"invoke","id":3,"env":7,"event":{...},"timeout_ms":6000}   -> {"id":3,"ok":false,"error":{"key":"..."}}
    {"op":"destroy","env":7}   {"op":"reset","env":7}   {"op":"threads","id":4}   {"op":"stats","id":5}
    {"op":"ping","id":6}       {"op":"exit"}
    {"op":"attempts","id":7}   -> {"id":7,"ok":true,"n":<PyMySQL Connection.connect() calls so far>}

Run by the benchmark as ``python -m bench.pyhost``; not meant to be started by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pymysql.connections

from bench.fleet import Env, FakeContext
from bench.strategies import DbTarget, make_local_strategy

_outbox: queue.SimpleQueue[str | None] = queue.SimpleQueue()

# Connect attempts as the clients count them: every PyMySQL ``Connection.connect()`` (a TCP connect and a
# handshake), whichever strategy or library makes it and whether the server answers or not (the server cannot
# count attempts while it is down). Counted on PyMySQL's base class, so subclasses (the library's) are included.
_connect_calls = [0]
_connect_lock = threading.Lock()


def _count_connect_calls() -> None:
    original = pymysql.connections.Connection.connect

    def connect(self: Any, sock: Any = None) -> Any:
        with _connect_lock:
            _connect_calls[0] += 1
        return original(self, sock)

    setattr(pymysql.connections.Connection, "connect", connect)  # noqa: B010 - mypy: assigning to a method


def _send(msg: dict[str, Any]) -> None:
    _outbox.put(json.dumps(msg, default=str) + "\n")


def _writer() -> None:
    """One thread writes every reply, many per system call: environment threads never queue for stdout."""
    out = sys.stdout.buffer
    while True:
        line = _outbox.get()
        if line is None:
            return
        batch = [line]
        while len(batch) < 256:
            try:
                more = _outbox.get_nowait()
            except queue.Empty:
                break
            if more is None:
                _outbox.put(None)
                break
            batch.append(more)
        out.write("".join(batch).encode())
        out.flush()


class Host:
    def __init__(self) -> None:
        self.strategy: Any = None
        self.envs: dict[int, Env] = {}
        self.frozen: list[Env] = []
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=1200, thread_name_prefix="env")
        self.writer = threading.Thread(target=_writer, name="writer", daemon=True)
        self.writer.start()

    def handle(self, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        rid = msg.get("id")
        if op == "init":
            target = DbTarget(**msg["target"])
            if target.host not in ("127.0.0.1", "localhost", "::1"):
                _send({"id": rid, "ok": False, "error": {"key": "NOT_LOOPBACK"}})
                return
            self.strategy = make_local_strategy(msg["strategy"], target, msg.get("options") or {})
            _send({"id": rid, "ok": True, "pid": os.getpid()})
        elif op == "create":
            self.pool.submit(self._create, rid, int(msg["env"]))
        elif op == "invoke":
            deadline = msg.get("deadline")
            self.pool.submit(
                self._invoke, rid, int(msg["env"]), msg["event"], float(msg["timeout_ms"]) / 1000, deadline
            )
        elif op in ("destroy", "reset"):
            with self.lock:
                env = self.envs.pop(int(msg["env"]), None)
                if env is not None:
                    self.frozen.append(env)
            if env is not None:
                with contextlib.suppress(Exception):
                    env.destroy() if op == "destroy" else env.reset()
        elif op == "threads":
            with self.lock:
                live = list(self.envs.items())
            ids = {str(env_id): env.thread_id() for env_id, env in live}
            _send({"id": rid, "ok": True, "ids": ids})
        elif op == "stats":
            stats = self.strategy.stats() if self.strategy is not None else {}
            with _connect_lock:
                stats = {**stats, "client_connect_calls": _connect_calls[0]}
            _send({"id": rid, "ok": True, "counters": stats})
        elif op == "attempts":
            with _connect_lock:
                n = _connect_calls[0]
            _send({"id": rid, "ok": True, "n": n})
        elif op == "ping":
            _send({"id": rid, "ok": True})
        elif op == "exit":
            self.shutdown()
        else:
            _send({"id": rid, "ok": False, "error": {"key": f"BAD_OP {op}"}})

    def _create(self, rid: Any, env_id: int) -> None:
        try:
            env = self.strategy.new_env(env_id)
        except Exception as exc:
            _send({"id": rid, "ok": False, "error": {"key": "Init." + self.strategy.error_key(exc)}})
            return
        with self.lock:
            self.envs[env_id] = env
        _send({"id": rid, "ok": True})

    def _invoke(self, rid: Any, env_id: int, event: dict[str, Any], timeout: float, deadline: float | None) -> None:
        with self.lock:
            env = self.envs.get(env_id)
        if env is None:
            _send({"id": rid, "ok": False, "error": {"key": "NoSuchEnvironment"}})
            return
        try:
            env.invoke(event, FakeContext(timeout, deadline=deadline))
        except Exception as exc:
            _send({"id": rid, "ok": False, "error": {"key": self.strategy.error_key(exc), "message": str(exc)[:200]}})
            return
        _send({"id": rid, "ok": True})

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            if self.strategy is not None:
                self.strategy.close()
        _outbox.put(None)
        self.writer.join(5)
        os._exit(0)  # worker threads may still be blocked on sockets: do not wait for them


def _stack_sampler(path: str) -> None:
    """Debugging aid (``BENCH_PYHOST_PROFILE=<file>``): where the environment threads spend their time."""
    import collections
    import time
    import traceback

    counts: collections.Counter[str] = collections.Counter()
    me = threading.get_ident()

    def loop() -> None:
        n = 0
        while True:
            time.sleep(0.005)
            for tid, frame in sys._current_frames().items():
                if tid == me:
                    continue
                stack = traceback.extract_stack(frame)[-6:]
                counts[" <- ".join(f"{f.name}:{f.lineno}" for f in reversed(stack))] += 1
            n += 1
            if n % 10 == 0:
                with open(path, "w") as f:
                    for key, value in counts.most_common(40):
                        f.write(f"{value:7d} {key}\n")

    threading.Thread(target=loop, daemon=True).start()


def main() -> None:
    if os.environ.get("BENCH_PYHOST_PROFILE"):
        _stack_sampler(os.environ["BENCH_PYHOST_PROFILE"])
    _count_connect_calls()
    host = Host()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            host.handle(json.loads(line))
        except Exception as exc:
            _send({"id": None, "ok": False, "error": {"key": type(exc).__name__, "message": str(exc)[:200]}})
    host.shutdown()  # the parent went away: never linger


if __name__ == "__main__":
    main()
