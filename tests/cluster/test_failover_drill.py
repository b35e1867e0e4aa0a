"""The failover drill (issue 17): ``@with_mysql`` and ``ServerlessMySQL`` across a local cluster's failover.

Each test drives the public API through the cluster endpoint (a switchable loopback forwarder) while
harness/cluster.py demotes or kills the writer, promotes a replica, and moves the endpoint after a delay
(1 s here instead of Aurora's 5 s TTL). Writes are checked on the new writer as root: every acknowledged one
exactly once.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from harness.cluster import LocalCluster
from harness.mariadb import AppUser
from serverless_mysql import ConnectionLostError, ServerlessMySQL, TransactionAbortedError, with_mysql
from tests.cluster.conftest import Context, counts_on_writer, errno_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

READ_ONLY_ERRNOS = (1290, 1836)


def _writer_handler(user: AppUser, table: str, **options: Any) -> Any:
    @with_mysql(**user.connect_kwargs(), server_role="writer", sigterm=False, **options)
    def handler(event: dict[str, Any], context: Any, db: ServerlessMySQL) -> int:
        db.query(f"INSERT INTO {table} (k) VALUES (%s)", [event["k"]])
        return int(db.query("SELECT @@server_id AS s")[0]["s"])

    return handler


def _when(step: str, event: threading.Event) -> Any:
    """An ``on_step`` callback that sets ``event`` when the failover completes ``step``."""

    def on_step(name: str) -> None:
        if name == step:
            event.set()

    return on_step


def _invoke_until(
    handler: Any, stop: threading.Event, after_stop: int
) -> tuple[list[int], list[tuple[int, BaseException]]]:
    """Invoke ``handler`` back to back with k = 0, 1, ...; ``after_stop`` more times once ``stop`` is set."""
    acked: list[int] = []
    failed: list[tuple[int, BaseException]] = []
    k = 0
    left = after_stop
    while left > 0:
        if stop.is_set():
            left -= 1
        try:
            handler({"k": k}, Context(30))
            acked.append(k)
        except Exception as exc:  # recorded, judged by the test
            failed.append((k, exc))
        k += 1
    return acked, failed


def test_warm_writer_survives_a_demotion_without_an_error(
    cluster: LocalCluster, app: AppUser, drill_table: str
) -> None:
    handler = _writer_handler(app, drill_table)
    old_id = cluster.server_id(cluster.writer)
    assert handler({"k": -1}, Context(30)) == old_id  # warm: one connection to the writer
    switched = threading.Event()
    failover = cluster.failover_later(time.monotonic() + 0.3, "demote", on_step=_when("switched", switched))
    acked, failed = _invoke_until(handler, switched, after_stop=20)
    times = failover.result()
    assert failed == []  # refused statements waited for the new writer and ran there
    assert handler({"k": 10_000}, Context(30)) == cluster.server_id(cluster.writer) != old_id
    counts = counts_on_writer(cluster, drill_table)
    assert counts == dict.fromkeys([-1, *acked, 10_000], 1)  # nothing lost, nothing doubled
    assert times.switched > times.promoted


def test_warm_writer_across_a_crash_fails_only_the_write_in_flight(
    cluster: LocalCluster, app: AppUser, drill_table: str
) -> None:
    handler = _writer_handler(app, drill_table)
    assert handler({"k": -1}, Context(30)) == cluster.server_id(cluster.writer)
    switched = threading.Event()
    failover = cluster.failover_later(time.monotonic() + 0.3, "crash", on_step=_when("switched", switched))
    acked, failed = _invoke_until(handler, switched, after_stop=20)
    times = failover.result()
    # Only a write that was on the wire when the writer died may fail, as ConnectionLostError (outcome unknown,
    # never re-run); every later invocation waits for the new writer.
    assert len(failed) <= 1, failed
    for _, exc in failed:
        assert isinstance(exc, ConnectionLostError), repr(exc)
        assert not isinstance(exc, TransactionAbortedError)
    counts = counts_on_writer(cluster, drill_table)
    assert all(counts.get(k) == 1 for k in [-1, *acked]), counts  # every acknowledged write, once
    assert all(counts.get(k, 0) <= 1 for k, _ in failed)  # the unknown one: at most once, never doubled
    assert set(counts) <= {-1, *acked, *(k for k, _ in failed)}
    assert times.restarted is not None


def test_connect_through_a_stale_endpoint_waits_for_the_writer(
    cluster: LocalCluster, app: AppUser, drill_table: str
) -> None:
    demoted = threading.Event()
    failover = cluster.failover_later(time.monotonic(), "demote", on_step=_when("read_only", demoted))
    assert demoted.wait(30)
    # A cold environment: its first connection goes to the demoted writer, still named by the endpoint.
    handler = _writer_handler(app, drill_table)
    started = time.monotonic()
    server_id = handler({"k": 1}, Context(30))
    done = time.monotonic()
    times = failover.result()
    assert server_id == cluster.server_id(cluster.writer)
    assert done >= times.switched  # it waited for the switch rather than failing
    assert done - started < 10
    assert counts_on_writer(cluster, drill_table) == {1: 1}


def test_transaction_across_a_demotion_is_aborted_and_commits_nothing(
    cluster: LocalCluster, app: AppUser, drill_table: str
) -> None:
    holder: dict[str, Any] = {}

    @with_mysql(**app.connect_kwargs(), server_role="writer", sigterm=False)
    def handler(event: dict[str, Any], context: Any, db: ServerlessMySQL) -> None:
        if event.get("tx"):
            with db.transaction() as tx:
                tx.query(f"INSERT INTO {drill_table} (k) VALUES (1)")
                demoted = threading.Event()
                holder["failover"] = cluster.failover_later(
                    time.monotonic(), "demote", on_step=_when("read_only", demoted)
                )
                assert demoted.wait(30)
                tx.query(f"INSERT INTO {drill_table} (k) VALUES (2)")
        else:
            db.query(f"INSERT INTO {drill_table} (k) VALUES (3)")

    handler({}, Context(30))  # warm
    with pytest.raises(TransactionAbortedError) as aborted:
        handler({"tx": True}, Context(30))
    assert "read-only" in str(aborted.value) or "read only" in str(aborted.value)
    holder["failover"].result()
    handler({}, Context(30))  # the next statement reconnects, to the new writer
    assert counts_on_writer(cluster, drill_table) == {3: 2}  # neither insert of the aborted transaction


def test_commit_refused_by_a_demoted_writer_commits_nothing(
    cluster: LocalCluster, app: AppUser, drill_table: str
) -> None:
    """MariaDB refuses the COMMIT of a transaction that wrote before the server became read-only."""
    db = ServerlessMySQL(**app.connect_kwargs(), server_role="writer")
    try:
        old = cluster.writer
        with pytest.raises(TransactionAbortedError), db.transaction() as tx:
            tx.query(f"INSERT INTO {drill_table} (k) VALUES (1)")
            old.set_global("read_only", 1)
        old.set_global("read_only", 0)
        db.query(f"INSERT INTO {drill_table} (k) VALUES (2)")
    finally:
        cluster.writer.set_global("read_only", 0)
        db.terminate()
    assert counts_on_writer(cluster, drill_table) == {2: 1}


def test_role_any_passes_1290_through_and_reconnects(cluster: LocalCluster, app: AppUser, drill_table: str) -> None:
    # server_role "auto" (the default) on 127.0.0.1 is "any": the refusal is the caller's error, as today, but the
    # connection is not kept.
    db = ServerlessMySQL(**app.connect_kwargs())
    try:
        before = int(db.query("SELECT CONNECTION_ID() AS c")[0]["c"])
        failover = cluster.failover_later(time.monotonic(), "demote", switch_delay=0.0)
        failover.result()
        with pytest.raises(Exception) as refused:
            db.query(f"INSERT INTO {drill_table} (k) VALUES (1)")  # the warm connection: still the old writer
        assert errno_of(refused.value) in READ_ONLY_ERRNOS
        after = int(db.query("SELECT CONNECTION_ID() AS c")[0]["c"])
        assert after != before  # a new connection thread...
        db.query(f"INSERT INTO {drill_table} (k) VALUES (2)")  # ...made through the endpoint: the new writer
    finally:
        db.terminate()
    assert counts_on_writer(cluster, drill_table) == {2: 1}


def test_reader_client_reads_from_a_replica(cluster: LocalCluster, app: AppUser) -> None:
    reader_endpoint = cluster.reader_user(app)

    @with_mysql(**app.connect_kwargs(), reader_host=f"{reader_endpoint.host}:{reader_endpoint.port}", sigterm=False)
    def handler(event: dict[str, Any], context: Any, db: ServerlessMySQL, reader: ServerlessMySQL) -> tuple[int, int]:
        writer_id = int(db.query("SELECT @@server_id AS s")[0]["s"])
        return writer_id, int(reader.query("SELECT @@server_id AS s")[0]["s"])

    writer_id, reader_id = handler({}, Context(30))
    assert writer_id == cluster.server_id(cluster.writer)
    assert reader_id in {cluster.server_id(r) for r in cluster.readers}
    assert reader_id != writer_id


@pytest.mark.parametrize("variant", ["demote", "crash"])
def test_reader_client_survives_the_failover(cluster: LocalCluster, app: AppUser, variant: Any) -> None:
    reader_endpoint = cluster.reader_user(app)

    @with_mysql(
        **app.connect_kwargs(),
        server_role="writer",
        reader_host=f"{reader_endpoint.host}:{reader_endpoint.port}",
        sigterm=False,
    )
    def handler(event: dict[str, Any], context: Any, db: ServerlessMySQL, reader: ServerlessMySQL) -> int:
        return int(reader.query("SELECT @@server_id AS s")[0]["s"])

    assert handler({}, Context(30)) in {cluster.server_id(r) for r in cluster.readers}
    switched = threading.Event()
    failover = cluster.failover_later(time.monotonic(), variant, on_step=_when("switched", switched))
    seen: list[int] = []
    while not switched.is_set():
        seen.append(handler({}, Context(30)))  # no error: the reader's replica keeps serving reads
        time.sleep(0.05)
    failover.result()
    seen.extend(handler({}, Context(30)) for _ in range(3))
    assert len(seen) >= 5


def test_max_connection_age_moves_warm_environments_across_readers(cluster: LocalCluster, app: AppUser) -> None:
    reader_endpoint = cluster.reader_user(app)

    @with_mysql(
        **app.connect_kwargs(),
        reader_host=f"{reader_endpoint.host}:{reader_endpoint.port}",
        max_connection_age=1.0,  # room for a loaded machine: a first invocation may take a good part of a second
        sigterm=False,
    )
    def handler(event: dict[str, Any], context: Any, db: ServerlessMySQL, reader: ServerlessMySQL) -> tuple[int, int]:
        row = reader.query("SELECT @@server_id AS s, CONNECTION_ID() AS c")[0]
        return int(row["s"]), int(row["c"])

    seen = [handler({}, Context(30))]
    for _ in range(5):  # connections A, A, A (closed at its end()), B, B (closed), C
        seen.append(handler({}, Context(30)))  # same connection while it is young
        time.sleep(1.1)  # older than the age: the end() of the next invocation closes it
    servers = {s for s, _ in seen}
    assert servers == {cluster.server_id(r) for r in cluster.readers}  # the reader endpoint's round-robin
    assert len(set(seen)) >= 3  # (server, thread id): thread ids repeat across servers
    assert seen[0] == seen[1]  # never closed while younger than the age
