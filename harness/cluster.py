"""A local stand-in for an Aurora MySQL cluster, and its failover.

A writer, replicas with real GTID replication, a cluster endpoint and a reader endpoint.

::

    with LocalCluster(replicas=1) as cluster:
        user = cluster.create_user()            # host/port: the cluster endpoint
        reader = cluster.reader_user(user)      # the same account through the reader endpoint
        db = ServerlessMySQL(**user.connect_kwargs(), server_role="writer")
        ...
        cluster.failover("demote", switch_delay=1.0)   # or "crash"; blocks until the endpoint has moved

What is real and what is simulated:

* **Servers**: private ``mariadbd`` processes from :mod:`harness.mariadb`, each with its own ``server_id``, a binary
  log (ROW, ``log_slave_updates``) and durable settings (``innodb_flush_log_at_trx_commit=1``, ``sync_binlog=1``),
  so a SIGKILLed writer loses nothing it acknowledged - what Aurora's shared storage guarantees. Replicas run
  ``read_only=1`` and replicate with ``CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos``. Application users
  (:meth:`LocalCluster.create_user`) have no SUPER / READ ONLY ADMIN, so ``read_only`` binds them.
* **Endpoints** (:class:`Endpoint`): loopback TCP forwarders (a :class:`~harness.faultproxy.FaultProxy` whose
  target can be switched) in place of DNS names. A connection keeps the server it was accepted for; only new ones
  follow a switch, as a warm Lambda connection stays on the address it resolved. The reader endpoint round-robins
  new connections over the readers, as Aurora's reader DNS name does. With ``endpoints="process"`` they are the
  asyncio forwarders of :mod:`harness.forwarder`, in a process of their own (the benchmark's thousand connections).
* **Failover** (:meth:`LocalCluster.failover`): ``"demote"``: the writer gets ``read_only=1``, the replica catches
  up (GTID positions), is promoted (``STOP SLAVE; RESET SLAVE ALL; read_only=0``) and the old writer replicates from
  it. ``"crash"``: the writer is SIGKILLed by pid and restarted read-only on the same datadir and port, the replica
  fetches what it had not received yet, then the same promotion. Either way the cluster endpoint moves to the new
  writer ``switch_delay`` seconds after the failover began (5 s by default: Aurora's DNS TTL), never before the
  promotion is done.

Start-up: the servers boot in parallel from the cached template datadir (about 1-2 s for a writer and one replica
on a quiet 2-core machine). Imports neither pytest nor the library under test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Protocol

from harness.faultproxy import FaultProxy
from harness.forwarder import ForwarderProcess
from harness.mariadb import AppUser, MariaDBError, MariaDBServer, PrivateServerRequired, external_url

__all__ = [
    "DEFAULT_SWITCH_DELAY",
    "Endpoint",
    "FailoverThread",
    "FailoverTimes",
    "LocalCluster",
    "SwitchableEndpoint",
    "Variant",
]

DEFAULT_SWITCH_DELAY: Final = 5.0  # Aurora's DNS TTL for the cluster endpoint
Variant = Literal["demote", "crash"]

_REPL_USER: Final = "repl"
_REPLICATION_ARGS: Final = (
    "--log-bin=mariadb-bin",
    "--log-slave-updates=1",
    "--binlog-format=ROW",
    "--relay-log=relay-bin",
    "--skip-slave-start",  # a restarted server never resumes replication from a stale master by itself
    "--innodb-flush-log-at-trx-commit=1",  # durable: a SIGKILLed writer keeps every acknowledged commit
    "--sync-binlog=1",
    "--slave-net-timeout=5",
)


class SwitchableEndpoint(Protocol):
    """What the cluster needs of an endpoint.

    :class:`Endpoint` (threads, in this process) or :class:`~harness.forwarder.RemoteEndpoint` (asyncio, in a process
    of its own).
    """

    host: str
    port: int

    def switch(self, *targets: tuple[str, int]) -> None:
        """New connections go to ``targets``."""

    def stop(self) -> None:
        """Stop accepting and forwarding."""


class Endpoint(FaultProxy):
    """A DNS name stand-in: a loopback forwarder whose target(s) can be switched.

    Each new connection goes to the next target (round-robin); connections accepted before :meth:`switch` keep
    their server. Every fault of :class:`~harness.faultproxy.FaultProxy` still works.
    """

    def __init__(self, *targets: tuple[str, int], max_connections: int = 512) -> None:
        if not targets:
            raise ValueError("an endpoint needs at least one target")
        super().__init__(*targets[0], max_connections=max_connections)
        self._targets: list[tuple[str, int]] = list(targets)
        self._turn = 0
        self.switched_at: list[float] = []
        """``time.monotonic()`` of every :meth:`switch`."""

    def __enter__(self) -> Endpoint:
        self.start()
        return self

    @property
    def targets(self) -> list[tuple[str, int]]:
        """Where new connections go now."""
        with self._lock:
            return list(self._targets)

    def switch(self, *targets: tuple[str, int]) -> None:
        """New connections go to ``targets`` from now on (existing ones stay where they are)."""
        if not targets:
            raise ValueError("an endpoint needs at least one target")
        with self._lock:
            self._targets = list(targets)
            self.target_host, self.target_port = targets[0]
            self.switched_at.append(time.monotonic())

    def _pick_target(self) -> tuple[str, int]:
        target = self._targets[self._turn % len(self._targets)]
        self._turn += 1
        return target


@dataclass
class FailoverTimes:
    """What a failover did and when (``time.monotonic()`` values; ``None`` for steps the variant skips)."""

    variant: Variant
    old_writer: MariaDBServer
    new_writer: MariaDBServer
    started: float = 0.0
    demoted: float | None = None  # read_only=1 set (demote) / SIGKILL done (crash)
    restarted: float | None = None  # crash: the old writer accepts connections again, read-only
    caught_up: float = 0.0  # the replica has every transaction the old writer committed
    promoted: float = 0.0  # the replica accepts writes
    switched: float = 0.0  # the cluster endpoint names the new writer
    events: list[tuple[float, str]] = field(default_factory=list)

    def since_start(self) -> dict[str, float | None]:
        """Each step's time in seconds since :attr:`started`."""

        def rel(t: float | None) -> float | None:
            return None if t is None else t - self.started

        return {
            "demoted": rel(self.demoted),
            "restarted": rel(self.restarted),
            "caught_up": rel(self.caught_up),
            "promoted": rel(self.promoted),
            "switched": rel(self.switched),
        }


class LocalCluster:
    """A writer and ``replicas`` replicas with GTID replication, a cluster endpoint and a reader endpoint."""

    def __init__(
        self,
        *,
        replicas: int = 1,
        max_connections: int = 100,
        switch_delay: float = DEFAULT_SWITCH_DELAY,
        endpoint_max_connections: int = 512,
        endpoints: Literal["threads", "process"] = "threads",
        server_args: tuple[str, ...] = (),
        tmp_root: Path | None = None,
    ) -> None:
        if not 1 <= replicas <= 3:
            raise ValueError("a local cluster has 1 to 3 replicas")
        if external_url() is not None:
            raise PrivateServerRequired("a local cluster needs private MariaDB servers, but SMYSQL_TEST_URL is set")
        self.switch_delay = switch_delay
        self.servers: list[MariaDBServer] = [
            MariaDBServer(
                max_connections=max_connections,
                extra_args=(f"--server-id={i + 1}", *_REPLICATION_ARGS, *server_args),
                tmp_root=tmp_root,
            )
            for i in range(replicas + 1)
        ]
        self.writer: MariaDBServer = self.servers[0]
        self._repl_password = secrets.token_urlsafe(16)
        self._endpoint_max = endpoint_max_connections
        self._endpoint_kind = endpoints
        self._forwarder: ForwarderProcess | None = None
        self.cluster: SwitchableEndpoint | None = None
        self.reader: SwitchableEndpoint | None = None
        self.failovers: list[FailoverTimes] = []
        self.last_start_seconds: float | None = None
        self._lock = threading.Lock()

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> LocalCluster:
        """Boot every server (in parallel), set up replication and both endpoints."""
        t0 = time.monotonic()
        for server in self.servers[1:]:
            server.extra_args = (*server.extra_args, "--read-only=1")
        errors: list[BaseException] = []

        def boot(server: MariaDBServer) -> None:
            try:
                server.start()
            except BaseException as exc:  # re-raised below, in the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=boot, args=(s,), daemon=True) for s in self.servers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            self.cleanup()
            raise errors[0]
        try:
            start_pos = str(self.writer.get_global("gtid_binlog_pos"))
            for replica in self.readers:
                replica.execute("SET GLOBAL gtid_slave_pos = %s", [start_pos])  # skip each server's own bootstrap
            self.writer.execute(f"CREATE USER '{_REPL_USER}'@'127.0.0.1' IDENTIFIED BY %s", [self._repl_password])
            self.writer.execute(f"GRANT REPLICATION SLAVE ON *.* TO '{_REPL_USER}'@'127.0.0.1'")
            for replica in self.readers:
                self._replicate(replica, self.writer, slave_pos_from_binlog=False)
            self.wait_replicated()
            self.cluster = self._open_endpoint(self._addr(self.writer))
            self.reader = self._open_endpoint(*[self._addr(r) for r in self.readers])
        except BaseException:
            self.cleanup()
            raise
        self.last_start_seconds = time.monotonic() - t0
        return self

    def _open_endpoint(self, *targets: tuple[str, int]) -> SwitchableEndpoint:
        if self._endpoint_kind == "process":
            if self._forwarder is None:
                self._forwarder = ForwarderProcess()
            return self._forwarder.open(*targets)
        endpoint = Endpoint(*targets, max_connections=self._endpoint_max)
        endpoint.start()
        return endpoint

    def cleanup(self) -> None:
        """Stop both endpoints and every server; delete their files."""
        for endpoint in (self.cluster, self.reader):
            if endpoint is not None:
                endpoint.stop()
        if self._forwarder is not None:
            self._forwarder.close()
            self._forwarder = None
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.cleanup()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()

    @property
    def forwarder_pid(self) -> int | None:
        """The pid of the endpoints' process (``endpoints="process"``), else None."""
        return self._forwarder.proc.pid if self._forwarder is not None else None

    # ---- topology --------------------------------------------------------------------------------------------

    @property
    def readers(self) -> list[MariaDBServer]:
        """Every server but the current writer."""
        return [s for s in self.servers if s is not self.writer]

    @staticmethod
    def _addr(server: MariaDBServer) -> tuple[str, int]:
        return server.host, server.port

    @staticmethod
    def server_id(server: MariaDBServer) -> int:
        """The ``@@server_id`` the server reports (1 for the first writer, 2, 3... for the replicas)."""
        return int(server.get_global("server_id"))

    def _endpoints(self) -> tuple[SwitchableEndpoint, SwitchableEndpoint]:
        if self.cluster is None or self.reader is None:
            raise MariaDBError("the cluster is not started")
        return self.cluster, self.reader

    def _replicate(self, replica: MariaDBServer, source: MariaDBServer, *, slave_pos_from_binlog: bool) -> None:
        with replica.root() as conn, conn.cursor() as cur:
            cur.execute("STOP SLAVE")
            if slave_pos_from_binlog:  # a former writer: replicate from where its own binlog ends
                cur.execute("SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos")
            cur.execute(
                "CHANGE MASTER TO MASTER_HOST = %s, MASTER_PORT = %s, MASTER_USER = %s, MASTER_PASSWORD = %s, "
                "MASTER_CONNECT_RETRY = 1, MASTER_USE_GTID = slave_pos",
                [source.host, source.port, _REPL_USER, self._repl_password],
            )
            cur.execute("START SLAVE")

    # ---- users -----------------------------------------------------------------------------------------------

    def create_user(self, **kw: Any) -> AppUser:
        """An application account (no SUPER: ``read_only`` binds it), created on the writer and replicated.

        host/port are the cluster endpoint's. ``kw`` as for :meth:`MariaDBServer.create_user`.
        """
        cluster, _ = self._endpoints()
        user = self.writer.create_user(**kw)
        self.wait_replicated()
        return dataclasses.replace(user, host=cluster.host, port=cluster.port)

    def reader_user(self, user: AppUser) -> AppUser:
        """The same account through the reader endpoint."""
        _, reader = self._endpoints()
        return dataclasses.replace(user, host=reader.host, port=reader.port)

    def direct_user(self, user: AppUser, server: MariaDBServer) -> AppUser:
        """The same account straight to ``server`` (no endpoint)."""
        return dataclasses.replace(user, host=server.host, port=server.port)

    # ---- replication -----------------------------------------------------------------------------------------

    def wait_caught_up(self, replica: MariaDBServer, source: MariaDBServer, timeout: float = 30.0) -> None:
        """Until ``replica`` has applied every transaction in ``source``'s binlog.

        The position is read again after the wait, so a commit that was still finishing on ``source`` is not missed.
        """
        deadline = time.monotonic() + timeout
        while True:
            pos = str(source.get_global("gtid_binlog_pos"))
            left = deadline - time.monotonic()
            if left <= 0:
                raise MariaDBError(f"{replica!r} did not reach {source!r}'s GTID position {pos} in {timeout:g} s")
            rows = replica.execute("SELECT MASTER_GTID_WAIT(%s, %s) AS r", [pos, left])
            if int(rows[0]["r"]) != 0:
                continue  # timed out: the loop raises with the position
            if str(source.get_global("gtid_binlog_pos")) == pos:
                return

    def wait_replicated(self, timeout: float = 30.0) -> None:
        """Until every reader has applied everything the writer committed."""
        for replica in self.readers:
            self.wait_caught_up(replica, self.writer, timeout)

    # ---- failover --------------------------------------------------------------------------------------------

    def failover(
        self,
        variant: Variant = "demote",
        *,
        switch_delay: float | None = None,
        on_step: Callable[[str], None] | None = None,
    ) -> FailoverTimes:
        """Make the first reader the writer (see the module docstring); returns once the cluster endpoint has moved.

        ``switch_delay`` (default: the cluster's) counts from the start of the failover; ``on_step`` is called with
        each step's name as it completes.
        """
        cluster, reader = self._endpoints()
        delay = self.switch_delay if switch_delay is None else switch_delay
        with self._lock:
            old, new = self.writer, self.readers[0]
            times = FailoverTimes(variant, old, new, started=time.monotonic())

            def step(name: str) -> float:
                now = time.monotonic()
                times.events.append((now, name))
                if on_step is not None:
                    on_step(name)
                return now

            if variant == "demote":
                old.set_global("read_only", 1)
                times.demoted = step("read_only")
            elif variant == "crash":
                old.crash()  # SIGKILL by pid: no shutdown, every connection to it dies
                times.demoted = step("killed")
                old.extra_args = (*old.extra_args, "--read-only=1")
                old.start()
                times.restarted = step("restarted")
                with new.root() as conn, conn.cursor() as cur:  # reconnect to it now, not after a retry interval
                    cur.execute("STOP SLAVE")
                    cur.execute("START SLAVE")
            else:
                raise ValueError(f"unknown failover variant {variant!r}: 'demote' or 'crash'")
            self.wait_caught_up(new, old)
            times.caught_up = step("caught_up")
            with new.root() as conn, conn.cursor() as cur:
                cur.execute("STOP SLAVE")
                cur.execute("RESET SLAVE ALL")
                cur.execute("SET GLOBAL read_only = 0")
            self.writer = new
            times.promoted = step("promoted")
            for replica in self.readers:
                self._replicate(replica, new, slave_pos_from_binlog=replica is old)
            step("repointed")
            wait = times.started + delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            cluster.switch(self._addr(new))
            reader.switch(*[self._addr(r) for r in self.readers])
            times.switched = step("switched")
            self.failovers.append(times)
            return times

    def failover_later(self, at: float, variant: Variant = "demote", **kw: Any) -> FailoverThread:
        """Run :meth:`failover` in a thread from ``time.monotonic() >= at``; wait with :meth:`FailoverThread.result`."""
        thread = FailoverThread(self, at, variant, kw)
        thread.start()
        return thread

    def root_execute(self, sql: str, args: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """One statement as root on the current writer."""
        return self.writer.execute(sql, list(args) if args is not None else None)


class FailoverThread(threading.Thread):
    """A failover running in the background (see :meth:`LocalCluster.failover_later`)."""

    def __init__(self, cluster: LocalCluster, at: float, variant: Variant, kw: dict[str, Any]) -> None:
        super().__init__(name="failover", daemon=True)
        self.cluster = cluster
        self.at = at
        self.variant: Variant = variant
        self.kw = kw
        self.times: FailoverTimes | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        """Wait until ``at``, then fail over."""
        wait = self.at - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            self.times = self.cluster.failover(self.variant, **self.kw)
        except BaseException as exc:  # handed to result()
            self.error = exc

    def result(self, timeout: float = 120.0) -> FailoverTimes:
        """Wait for the failover; re-raise its error."""
        self.join(timeout)
        if self.error is not None:
            raise self.error
        if self.times is None:
            raise MariaDBError(f"the failover did not finish within {timeout:g} s")
        return self.times
