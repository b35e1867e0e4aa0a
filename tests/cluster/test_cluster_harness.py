"""The local cluster itself (harness/cluster.py), through plain PyMySQL: replication, endpoints, both failovers."""

from __future__ import annotations

import pymysql
import pytest

from harness.cluster import Endpoint, LocalCluster
from harness.forwarder import ForwarderProcess
from harness.mariadb import AppUser
from tests.cluster.conftest import counts_on_writer


def _server_id(user: AppUser) -> int:
    conn = user.connect(autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@server_id AS s")
            return int(cur.fetchall()[0]["s"])
    finally:
        conn.close()


def test_replicas_are_read_only_for_the_app_user_and_replicate(
    cluster: LocalCluster, app: AppUser, drill_table: str
) -> None:
    conn = app.connect(autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {drill_table} (k) VALUES (1)")
    conn.close()
    cluster.wait_replicated()
    for replica in cluster.readers:
        assert replica.execute(f"SELECT COUNT(*) AS n FROM {drill_table}")[0]["n"] == 1
        direct = cluster.direct_user(app, replica).connect(autocommit=True)
        with direct.cursor() as cur, pytest.raises(pymysql.err.OperationalError) as refused:
            cur.execute(f"INSERT INTO {drill_table} (k) VALUES (2)")
        direct.close()
        assert refused.value.args[0] == 1290


def test_reader_endpoint_round_robins_over_the_replicas(cluster: LocalCluster, app: AppUser) -> None:
    reader = cluster.reader_user(app)
    seen = {_server_id(reader) for _ in range(4)}
    assert seen == {cluster.server_id(r) for r in cluster.readers}
    assert cluster.server_id(cluster.writer) not in seen


def test_endpoint_switch_moves_new_connections_only(cluster: LocalCluster, app: AppUser) -> None:
    a, b = cluster.readers
    with Endpoint((a.host, a.port)) as endpoint:
        via = AppUser(app.name, app.password, endpoint.host, endpoint.port, app.database)
        before = via.connect(autocommit=True)
        endpoint.switch((b.host, b.port))
        assert _server_id(via) == cluster.server_id(b)
        with before.cursor() as cur:
            cur.execute("SELECT @@server_id AS s")
            assert cur.fetchall()[0]["s"] == cluster.server_id(a)  # a warm connection stays where it was
        before.close()


@pytest.mark.parametrize("variant", ["demote", "crash"])
def test_failover_keeps_every_committed_write(
    cluster: LocalCluster, app: AppUser, drill_table: str, variant: str
) -> None:
    old_id = cluster.server_id(cluster.writer)
    conn = app.connect(autocommit=True)
    with conn.cursor() as cur:
        for k in range(50):
            cur.execute(f"INSERT INTO {drill_table} (k) VALUES (%s)", [k])
    times = cluster.failover(variant)  # type: ignore[arg-type]
    assert times.promoted <= times.switched
    assert times.switched - times.started >= cluster.switch_delay - 0.01
    assert cluster.server_id(cluster.writer) != old_id
    assert counts_on_writer(cluster, drill_table) == dict.fromkeys(range(50), 1)
    # The warm connection stayed on the old writer: read-only (demote) or gone (crash).
    with conn.cursor() as cur, pytest.raises(pymysql.err.OperationalError) as failed:
        cur.execute(f"INSERT INTO {drill_table} (k) VALUES (99)")
    assert failed.value.args[0] in ((1290,) if variant == "demote" else (2006, 2013))
    conn.close()
    assert _server_id(app) == cluster.server_id(cluster.writer)  # a new connection follows the endpoint


def test_forwarder_process_switches_and_round_robins(cluster: LocalCluster, app: AppUser) -> None:
    a, b = cluster.readers
    with ForwarderProcess() as fwd:
        endpoint = fwd.open((a.host, a.port))
        via = AppUser(app.name, app.password, endpoint.host, endpoint.port, app.database)
        before = via.connect(autocommit=True)
        endpoint.switch((b.host, b.port))
        assert _server_id(via) == cluster.server_id(b)
        with before.cursor() as cur:
            cur.execute("SELECT @@server_id AS s")
            assert cur.fetchall()[0]["s"] == cluster.server_id(a)
        before.close()
        endpoint.switch((a.host, a.port), (b.host, b.port))
        assert {_server_id(via) for _ in range(4)} == {cluster.server_id(a), cluster.server_id(b)}
        assert fwd.stats()[str(endpoint.port)]["accepted"] == 6
