"""Aurora-style failover on one real MariaDB: ``SET GLOBAL read_only`` plays the demoted writer (issue 17).

The app user has no SUPER (``harness.mariadb.create_user``), so ``read_only`` binds it as it binds an application
on a demoted Aurora writer. One private server for the module: ``read_only`` is global, no other test may see it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import (
    Credentials,
    DeadlineExceededError,
    ServerlessMySQL,
    TransactionAbortedError,
    with_mysql,
)
from serverless_mysql.lambda_context import LocalLambdaContext
from tests.conftest import private_server
from tests.integration.conftest import ClientFactory, later

CLUSTER = "shop.cluster-abc123xyz.eu-west-1.rds.amazonaws.com"


@pytest.fixture(scope="module")
def server() -> Iterator[MariaDBServer]:
    yield from private_server(max_connections=40)


@pytest.fixture
def user(server: MariaDBServer) -> Iterator[AppUser]:
    """A fresh app user (no SUPER); the server is writable again after each test."""
    yield server.create_user()
    server.set_global("read_only", 0)


@pytest.fixture
def tbl(server: MariaDBServer) -> Iterator[str]:
    name = f"{server.database}.t_{time.monotonic_ns() % 10**9}"
    server.execute(f"CREATE TABLE {name} (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(50)) ENGINE=InnoDB")
    yield name
    server.set_global("read_only", 0)
    server.execute(f"DROP TABLE IF EXISTS {name}")


def thread_of(db: ServerlessMySQL) -> int:
    return int(db.query("SELECT CONNECTION_ID() AS id")[0]["id"])


def rows(server: MariaDBServer, tbl: str) -> list[str]:
    return [row["v"] for row in server.execute(f"SELECT v FROM {tbl} ORDER BY id")]


def demote(server: MariaDBServer) -> None:
    server.set_global("read_only", 1)


def promote_later(server: MariaDBServer, seconds: float) -> None:
    later(seconds, lambda: server.set_global("read_only", 0))


# ------------------------------------------------------------------------------------------ writer
def test_writer_reruns_a_refused_write_on_a_new_writable_connection(
    server: MariaDBServer, user: AppUser, tbl: str, client_factory: ClientFactory
) -> None:
    """Old code: both INSERTs fail with 1290 on the same connection, which is kept forever (issue 17)."""
    db = client_factory(user, server_role="writer")
    db.query(f"INSERT INTO {tbl} (v) VALUES ('before')")
    before = thread_of(db)
    demote(server)
    promote_later(server, 1.0)  # the failover ends: the endpoint names a writable server again
    db.set_deadline(20)
    started = time.monotonic()
    db.query(f"INSERT INTO {tbl} (v) VALUES ('during')")
    assert time.monotonic() - started >= 0.8  # it waited for the writable server
    stats = db.get_stats()
    assert stats.read_only_reruns == 1
    assert stats.refused_read_only >= 1  # the connects in between found the server read-only
    assert thread_of(db) != before
    assert rows(server, tbl) == ["before", "during"]  # exactly once


def test_writer_connect_waits_for_a_writable_server(
    server: MariaDBServer, user: AppUser, tbl: str, client_factory: ClientFactory
) -> None:
    """A new connection while the endpoint still names the demoted writer: waits, then succeeds."""
    demote(server)
    promote_later(server, 0.8)
    db = client_factory(user, server_role="writer")
    db.set_deadline(20)
    db.query(f"INSERT INTO {tbl} (v) VALUES ('x')")
    stats = db.get_stats()
    assert stats.refused_read_only >= 1
    assert stats.connects == 1
    assert stats.read_only_reruns == 0  # refused at connect, never sent to the read-only server
    assert rows(server, tbl) == ["x"]


def test_writer_deadline_says_only_read_only_servers_answered(
    server: MariaDBServer, user: AppUser, tbl: str, client_factory: ClientFactory
) -> None:
    demote(server)
    db = client_factory(user, server_role="writer")
    db.set_deadline(1.0)
    with pytest.raises(DeadlineExceededError) as caught:
        db.query(f"INSERT INTO {tbl} (v) VALUES ('x')")
    text = str(caught.value)
    assert "only read-only servers answered" in text
    assert f"{user.host}:{user.port}" in text
    assert caught.value.errno == 1290
    assert server.connection_count(user.name) == 0  # every read-only connection was closed (COM_QUIT)


def test_writer_max_connect_wait_bounds_the_wait_without_a_deadline(
    server: MariaDBServer, user: AppUser, client_factory: ClientFactory
) -> None:
    demote(server)
    db = client_factory(user, server_role="writer", max_connect_wait=0.6)
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError, match="only read-only servers answered"):
        db.connect()
    assert time.monotonic() - started < 3.0


def test_transaction_across_a_demotion_is_aborted_and_commits_nothing(
    server: MariaDBServer, user: AppUser, tbl: str, client_factory: ClientFactory
) -> None:
    """Old code: the caller gets a bare 1290 and the connection stays on the read-only server."""
    db = client_factory(user, server_role="writer")
    before = thread_of(db)
    with pytest.raises(TransactionAbortedError, match="became read-only"), db.transaction() as tx:
        tx.query(f"INSERT INTO {tbl} (v) VALUES ('a')")
        demote(server)
        tx.query(f"INSERT INTO {tbl} (v) VALUES ('b')")
    server.set_global("read_only", 0)
    assert rows(server, tbl) == []
    assert db.get_stats().read_only_reruns == 0  # never re-run inside a transaction
    assert thread_of(db) != before  # the next statement after the transaction reconnected


def test_plain_start_transaction_across_a_demotion_is_aborted(
    server: MariaDBServer, user: AppUser, tbl: str, client_factory: ClientFactory
) -> None:
    db = client_factory(user, server_role="writer")
    db.query("START TRANSACTION")
    db.query(f"INSERT INTO {tbl} (v) VALUES ('a')")
    demote(server)
    with pytest.raises(TransactionAbortedError, match="became read-only"):
        db.query(f"INSERT INTO {tbl} (v) VALUES ('b')")
    server.set_global("read_only", 0)
    assert rows(server, tbl) == []


def test_commit_refused_by_a_read_only_server_is_aborted(
    server: MariaDBServer, user: AppUser, tbl: str, client_factory: ClientFactory
) -> None:
    """MariaDB refuses the COMMIT of a transaction that wrote before the server became read-only."""
    db = client_factory(user, server_role="writer")
    with pytest.raises(TransactionAbortedError, match="became read-only") as caught, db.transaction() as tx:
        tx.query(f"INSERT INTO {tbl} (v) VALUES ('a')")
        demote(server)
    assert caught.value.errno == 1290
    server.set_global("read_only", 0)
    assert rows(server, tbl) == []
    assert db.get_client() is None  # the connection was discarded


def test_a_call_is_not_re_run_but_its_connection_is_dropped(
    server: MariaDBServer, user: AppUser, tbl: str, client_factory: ClientFactory
) -> None:
    proc = f"{server.database}.p_{time.monotonic_ns() % 10**9}"
    server.execute(f"CREATE PROCEDURE {proc}() SQL SECURITY INVOKER INSERT INTO {tbl} (v) VALUES ('p')")
    db = client_factory(user, server_role="writer")
    before = thread_of(db)
    demote(server)
    with pytest.raises(pymysql.err.OperationalError) as caught:
        db.query(f"CALL {proc}()")
    assert caught.value.args[0] == 1290  # the caller's error: a procedure may have committed part of its work
    assert db.get_stats().read_only_reruns == 0
    assert db.get_client() is None  # old code kept the connection to the read-only server
    server.set_global("read_only", 0)
    assert thread_of(db) != before


def test_1792_is_the_callers_error_and_the_connection_stays(
    server: MariaDBServer, user: AppUser, tbl: str, client_factory: ClientFactory
) -> None:
    db = client_factory(user, server_role="writer")
    before = thread_of(db)
    db.query("START TRANSACTION READ ONLY")
    with pytest.raises(pymysql.err.MySQLError) as caught:
        db.query(f"INSERT INTO {tbl} (v) VALUES ('a')")
    assert caught.value.args[0] == 1792
    db.query("ROLLBACK")
    assert thread_of(db) == before


# ------------------------------------------------------------------------------------------ any, reader
def test_role_any_passes_1290_through_and_the_next_statement_reconnects(
    server: MariaDBServer, user: AppUser, tbl: str, client_factory: ClientFactory
) -> None:
    """Old code: the next statement runs on the same connection (same thread id)."""
    db = client_factory(user)  # 127.0.0.1: "auto" is "any"
    assert db.get_config()["server_role"] == "any"
    before = thread_of(db)
    demote(server)
    with pytest.raises(pymysql.err.OperationalError) as caught:
        db.query(f"INSERT INTO {tbl} (v) VALUES ('a')")
    assert caught.value.args[0] == 1290  # unchanged: the caller's error
    server.set_global("read_only", 0)
    assert thread_of(db) != before
    assert db.get_stats().read_only_reruns == 0


def test_role_any_refusal_inside_a_plain_transaction_never_lets_the_rest_autocommit(
    server: MariaDBServer, user: AppUser, tbl: str, client_factory: ClientFactory
) -> None:
    """Second review: the 1290 passed through ended the transaction with its connection; the next statement
    autocommitted on a new one (row 'c' committed, 'a' lost). It must be refused instead."""
    db = client_factory(user)  # "any"
    db.query("START TRANSACTION")
    db.query(f"INSERT INTO {tbl} (v) VALUES ('a')")
    demote(server)
    with pytest.raises(pymysql.err.OperationalError) as caught:
        db.query(f"INSERT INTO {tbl} (v) VALUES ('b')")
    assert caught.value.args[0] == 1290
    server.set_global("read_only", 0)
    with pytest.raises(TransactionAbortedError):
        db.query(f"INSERT INTO {tbl} (v) VALUES ('c')")
    db.query("ROLLBACK")  # outside any transaction now: harmless
    assert rows(server, tbl) == []


def test_role_reader_keeps_its_connection(
    server: MariaDBServer, user: AppUser, tbl: str, client_factory: ClientFactory
) -> None:
    db = client_factory(user, server_role="reader")
    before = thread_of(db)
    demote(server)
    with pytest.raises(pymysql.err.OperationalError):
        db.query(f"INSERT INTO {tbl} (v) VALUES ('a')")
    assert thread_of(db) == before  # read-only is what a reader expects


# ------------------------------------------------------------------------------------------ "auto" from a secret
class _ClusterSecret:
    """A credentials provider whose host is an Aurora cluster endpoint, as in an RDS secret."""

    refreshable = False

    def __init__(self, user: AppUser) -> None:
        self.user = user

    def get_credentials(self, *, refresh: bool = False) -> Credentials:
        u = self.user
        return Credentials(user=u.name, password=u.password, host=CLUSTER, port=u.port, database=u.database)


@pytest.fixture
def cluster_dns(monkeypatch: pytest.MonkeyPatch, server: MariaDBServer) -> None:
    """The cluster endpoint's name resolves to the private server (DNS, as Lambda would see it)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real(server.host if host == CLUSTER else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.usefixtures("cluster_dns")
def test_auto_role_resolves_from_the_secrets_host(
    server: MariaDBServer, user: AppUser, tbl: str, client_factory: ClientFactory
) -> None:
    db = ServerlessMySQL(credentials=_ClusterSecret(user))
    try:
        assert db.get_config()["server_role"] == "any"  # "localhost" until the secret names the host
        demote(server)
        promote_later(server, 0.6)
        db.set_deadline(20)
        db.query(f"INSERT INTO {tbl} (v) VALUES ('x')")
        assert db.get_config()["server_role"] == "writer"  # the secret's host is a cluster endpoint
        assert db.get_stats().refused_read_only >= 1
    finally:
        db.terminate()
    assert rows(server, tbl) == ["x"]


# ------------------------------------------------------------------------------------------ max_connection_age
def test_max_connection_age_closes_at_end_and_the_next_invocation_reconnects(
    server: MariaDBServer, user: AppUser, client_factory: ClientFactory
) -> None:
    """Old code: unknown option."""
    db = client_factory(user, max_connection_age=1.0)
    first = thread_of(db)
    db.end()
    assert db.get_client() is not None  # young: kept
    assert thread_of(db) == first
    time.sleep(1.05)
    db.query("START TRANSACTION")
    db.end()  # rolls the leftover back, then retires the old connection
    assert db.get_client() is None
    assert db.get_stats().age_quits == 1
    assert thread_of(db) != first
    server.wait_for_connection_count(1, user.name)  # closed with COM_QUIT: gone at once


def test_max_connection_age_never_closes_inside_a_transaction(
    server: MariaDBServer, user: AppUser, tbl: str, client_factory: ClientFactory
) -> None:
    db = client_factory(user, max_connection_age=0.2)
    with db.transaction() as tx:
        tx.query(f"INSERT INTO {tbl} (v) VALUES ('a')")
        time.sleep(0.3)
        with pytest.raises(RuntimeError):
            db.end()  # end() inside an open transaction is refused as before: nothing closed
        tx.query(f"INSERT INTO {tbl} (v) VALUES ('b')")
    assert rows(server, tbl) == ["a", "b"]


# ------------------------------------------------------------------------------------------ round trips
class _Monitor:
    """Counts the statements the server sees (``Questions``), through one root connection of its own."""

    def __init__(self, server: MariaDBServer) -> None:
        self.conn = server.root()

    def questions(self) -> int:
        with self.conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'Questions'")
            row: Any = cur.fetchone()
        return int(row["Value"])

    def during(self, action: Any) -> int:
        """Statements counted during ``action`` (the monitor's own SHOW STATUS subtracted)."""
        start = self.questions()
        action()
        return self.questions() - start - 1


@pytest.mark.parametrize("manage_conns", [True, False])
def test_round_trips_per_new_connection_and_per_warm_invocation(
    server: MariaDBServer, user: AppUser, client_factory: ClientFactory, manage_conns: bool
) -> None:
    """Writer: at most one statement more per new connection; any: none; warm invocation: none for either."""
    monitor = _Monitor(server)
    assert monitor.during(lambda: None) == 0  # the calibration holds
    counts = {}
    for role in ("any", "writer"):
        db = client_factory(user, server_role=role, manage_conns=manage_conns, used_conns_freq=3600)
        baseline = ServerlessMySQL(**user.connect_kwargs(), manage_conns=manage_conns, used_conns_freq=3600)
        new = monitor.during(db.connect)
        old = monitor.during(baseline.connect)  # what a client sent before this feature existed
        baseline.terminate()
        db.query("SELECT 1")
        db.end()
        warm = monitor.during(lambda db=db: (db.query("SELECT 1"), db.end()))
        counts[role] = (new, old, warm)
    print("statements the server saw (new connection, baseline, warm invocation):", counts)
    assert counts["any"][0] == counts["any"][1]  # any: nothing extra on a new connection
    assert counts["writer"][0] == counts["writer"][1] + 1  # writer: one statement more, and only one
    assert counts["any"][2] == counts["writer"][2] == 1  # warm: just the handler's own statement
    monitor.conn.close()


# ------------------------------------------------------------------------------------------ the reader client
class _Metrics:
    def __init__(self) -> None:
        self.names: list[str] = []

    def add_metric(self, name: str, unit: str, value: float) -> None:
        self.names.append(name)


def test_decorator_injects_a_reader_managed_like_db(
    server: MariaDBServer, user: AppUser, tbl: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old code: unknown option 'reader_host'."""
    for name in [n for n in os.environ if n.startswith("SERVERLESS_MYSQL_")]:
        monkeypatch.delenv(name)
    metrics = _Metrics()
    seen: list[tuple[int, int, float | None]] = []

    @with_mysql(**user.connect_kwargs(), reader_host=f"{server.host}:{server.port}", sigterm=False, metrics=metrics)
    def handler(event: Any, context: Any, db: ServerlessMySQL, reader: ServerlessMySQL) -> None:
        db.query(f"INSERT INTO {tbl} (v) VALUES ('w')")
        seen.append((thread_of(db), thread_of(reader), reader.remaining()))

    assert handler.reader is not None
    try:
        assert handler.reader.get_config()["server_role"] == "reader"
        assert handler.reader.get_client() is None  # lazy: nothing connected at decoration
        handler({}, LocalLambdaContext(timeout=10))
        handler({}, LocalLambdaContext(timeout=10))
        (w1, r1, left1), (w2, r2, _) = seen
        assert w1 != r1  # two clients, two connections
        assert (w1, r1) == (w2, r2)  # both kept warm across invocations
        assert left1 is not None and 0 < left1 <= 9.5  # the invocation's deadline, minus the margin
        assert handler.reader.remaining() is None  # cleared after the invocation
        assert handler.reader.get_counter() == 2  # end() after every invocation
        assert "ReaderConnectionReused" in metrics.names and "ConnectionReused" in metrics.names
        demote(server)  # a reader does not care
        handler.reader.query("SELECT 1")
        assert thread_of(handler.reader) == r1
    finally:
        handler.db.terminate()
        handler.reader.terminate()
    assert rows(server, tbl) == ["w", "w"]
