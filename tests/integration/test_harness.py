"""The MariaDB test harness itself, against real servers: if these fail, no other integration test means anything."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql
import pytest

from harness.mariadb import (
    AppUser,
    ExternalServer,
    MariaDBServer,
    MariaDBStartError,
    PrivateServerRequired,
    free_ports,
    memory_tmp_root,
    template_datadir,
    thread_id,
)

ServerFactory = Callable[..., MariaDBServer]
UserFactory = Callable[..., AppUser]

ER_CON_COUNT_ERROR = 1040  # Too many connections
ER_USER_LIMIT_REACHED = 1226  # User '...' has exceeded the 'max_user_connections' resource


def errno(exc: pymysql.err.MySQLError) -> int:
    return int(exc.args[0])


def visible_thread_ids(user: AppUser) -> set[int]:
    """Thread ids that ``user`` can see in the processlist (from its own connection, which is then closed)."""
    with user.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT ID FROM information_schema.PROCESSLIST")
        return {int(row["ID"]) for row in cur.fetchall()}


# ---------------------------------------------------------------------------------------------------------------
# Basics
# ---------------------------------------------------------------------------------------------------------------


def test_server_accepts_connections(mariadb: MariaDBServer, app_user: AppUser) -> None:
    assert mariadb.host == "127.0.0.1"
    rows = mariadb.execute("SELECT @@port AS port, VERSION() AS version, DATABASE() AS db")
    assert rows[0]["port"] == mariadb.port
    assert rows[0]["db"] is None

    with app_user.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT DATABASE() AS db, CURRENT_USER() AS cu")
        row = cur.fetchone()
        assert row == {"db": mariadb.database, "cu": f"{app_user.name}@%"}
        cur.execute("CREATE TABLE t_basic (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute("INSERT INTO t_basic VALUES (1, %s)", ["héllo"])
        conn.commit()
        cur.execute(
            "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't_basic'"
        )
        assert cur.fetchone() == {"ENGINE": "InnoDB"}
    assert mariadb.execute(f"SELECT v FROM `{mariadb.database}`.t_basic") == [{"v": "héllo"}]

    # connect_kwargs() is what the library (and pymysql.connect) takes.
    conn2 = pymysql.connect(**app_user.connect_kwargs())
    conn2.close()


def test_private_server_is_isolated(mariadb: MariaDBServer, requires_private_server: None) -> None:
    assert mariadb.port != 3306
    assert mariadb.pid is not None
    os.kill(mariadb.pid, 0)  # ours and alive
    settings = mariadb.execute(
        "SELECT @@bind_address AS bind, @@datadir AS datadir, @@userstat AS userstat, @@event_scheduler AS ev, "
        "@@log_bin AS log_bin, @@skip_name_resolve AS snr, @@max_connections AS mc"
    )[0]
    assert settings["bind"] == "127.0.0.1"
    assert os.path.realpath(settings["datadir"]) == os.path.realpath(mariadb.datadir)
    assert settings["userstat"] == 1
    assert settings["ev"] == "OFF"
    assert settings["log_bin"] == 0
    assert settings["snr"] == 1
    assert settings["mc"] == 100
    assert "ready for connections" in mariadb.error_log()
    assert mariadb.datadir.is_relative_to(mariadb.basedir)
    assert not template_datadir().is_relative_to(mariadb.basedir)


def test_helper_connections_take_no_application_slot(mariadb: MariaDBServer) -> None:
    if not mariadb.private:
        pytest.skip("the admin port exists only on private servers")
    with mariadb.root() as conn:
        assert conn.port == mariadb.admin_port != mariadb.port
        mariadb.processlist()
        assert mariadb.status("Threads_connected") == "0"  # extra_port connections are not counted
    # The helper itself is excluded; the closed root() connection disappears asynchronously.
    assert mariadb.wait_for_connection_count(0, "root") == 0


def test_start_time_and_distinct_servers(server_factory: ServerFactory) -> None:
    servers = [server_factory() for _ in range(3)]
    assert len({s.port for s in servers} | {s.admin_port for s in servers}) == 6
    assert len({s.datadir for s in servers}) == 3
    for s in servers:
        assert s.last_start_seconds is not None
        assert s.last_start_seconds < 5.0, f"a server start took {s.last_start_seconds:.2f}s"
        assert s.execute("SELECT @@max_connections AS m") == [{"m": 10}]
    print("server starts (s):", ", ".join(f"{s.last_start_seconds:.3f}" for s in servers))


def test_start_failure_reports_error_log(requires_private_server: None) -> None:
    server = MariaDBServer(extra_args=["--no-such-option-for-the-harness=1"])
    try:
        with pytest.raises(MariaDBStartError, match="no-such-option-for-the-harness") as info:
            server.start(timeout=20)
        assert "error log" in str(info.value)
        assert server.pid is None
    finally:
        server.cleanup()
    assert not server.basedir.exists()


def test_free_ports_are_distinct_unbound_and_outside_the_ephemeral_range() -> None:
    low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = free_ports(6)
    assert len(set(ports)) == 6
    assert all(1024 < p < 65536 and not low <= p <= high for p in ports)
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_pytest_mysql_plugin_is_switched_off(pytestconfig: pytest.Config) -> None:
    # The harness starts every server; pytest-mysql's fixtures (mysql, mysql_proc) and options stay out of the suite.
    assert not pytestconfig.pluginmanager.has_plugin("pytest_mysql")
    assert not pytestconfig.pluginmanager.has_plugin("pytest_mysql.plugin")


def test_a_server_survives_only_by_its_own_process(server_factory: ServerFactory) -> None:
    # crash() must leave the server down (no supervisor such as mysqld_safe restarting it) until restart().
    server = server_factory()
    pid = server.pid
    assert pid is not None
    server.crash()
    time.sleep(0.5)
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host=server.host, port=server.port, user="x", password="y", connect_timeout=1)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.restart()
    assert server.pid not in (None, pid)


def test_max_connections_below_mariadb_minimum_is_rejected() -> None:
    with pytest.raises(ValueError, match="minimum"):
        MariaDBServer(max_connections=5)


def test_stop_is_idempotent_and_context_manager_cleans_up(requires_private_server: None) -> None:
    with MariaDBServer(max_connections=10) as server:
        pid = server.pid
        assert pid is not None
        server.stop()
        server.stop()
        assert server.pid is None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        server.start()  # same datadir, same port
        assert server.execute("SELECT @@port AS p") == [{"p": server.port}]
    assert server.pid is None
    assert not server.basedir.exists()


# ---------------------------------------------------------------------------------------------------------------
# Users, processlist, zombies
# ---------------------------------------------------------------------------------------------------------------


def test_user_without_process_sees_only_its_own_threads(mariadb: MariaDBServer, make_user: UserFactory) -> None:
    plain = make_user()
    other = make_user()
    [other_zombie] = mariadb.open_zombies(other, 1)
    [own_zombie] = mariadb.open_zombies(plain, 1)
    with mariadb.root(port=mariadb.port) as root_conn:
        root_thread = thread_id(root_conn)
        seen = visible_thread_ids(plain)
    assert own_zombie in seen
    assert other_zombie not in seen
    assert root_thread not in seen
    grants = " ".join(next(iter(r.values())) for r in mariadb.execute("SHOW GRANTS FOR %s@'%%'", [plain.name]))
    assert "SUPER" not in grants
    assert "PROCESS" not in grants
    assert f"ALL PRIVILEGES ON `{mariadb.database}`.*" in grants
    assert "GRANT USAGE ON *.*" in grants


def test_user_with_process_sees_everyone(mariadb: MariaDBServer, make_user: UserFactory) -> None:
    watcher = make_user(process=True)
    other = make_user()
    [other_zombie] = mariadb.open_zombies(other, 1)
    with mariadb.root(port=mariadb.port) as root_conn:
        root_thread = thread_id(root_conn)
        seen = visible_thread_ids(watcher)
    assert {other_zombie, root_thread} <= seen
    grants = " ".join(next(iter(r.values())) for r in mariadb.execute("SHOW GRANTS FOR %s@'%%'", [watcher.name]))
    assert "GRANT PROCESS ON *.*" in grants
    assert "SUPER" not in grants


def test_zombies_sleep_and_their_time_grows(mariadb: MariaDBServer, app_user: AppUser) -> None:
    ids = mariadb.open_zombies(app_user, 3)
    assert len(set(ids)) == 3
    rows = mariadb.processlist(app_user.name)
    assert sorted(int(r["ID"]) for r in rows) == sorted(ids)
    assert {r["COMMAND"] for r in rows} == {"Sleep"}
    assert mariadb.connection_count(app_user.name) == 3
    first = {int(r["ID"]): int(r["TIME"]) for r in rows}

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        later = {int(r["ID"]): int(r["TIME"]) for r in mariadb.processlist(app_user.name)}
        if all(later[i] > first[i] for i in ids):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"zombie TIME did not grow: {first} -> {later}")
    assert {r["COMMAND"] for r in mariadb.processlist(app_user.name)} == {"Sleep"}

    mariadb.close_zombies()
    assert mariadb.wait_for_connection_count(0, app_user.name) == 0


def test_kill_drops_a_zombie(mariadb: MariaDBServer, app_user: AppUser) -> None:
    victim, survivor = mariadb.open_zombies(app_user, 2)
    mariadb.kill(victim)
    assert mariadb.wait_for_connection_count(1, app_user.name) == 1
    assert [int(r["ID"]) for r in mariadb.processlist(app_user.name)] == [survivor]
    mariadb.close_zombies()  # closing the killed one must not raise
    assert mariadb.wait_for_connection_count(0, app_user.name) == 0


def test_user_statistics_are_collected(mariadb: MariaDBServer, app_user: AppUser) -> None:
    if not mariadb.private:
        pytest.skip("userstat is only switched on for private servers")
    mariadb.open_zombies(app_user, 2)
    rows = mariadb.execute(
        "SELECT TOTAL_CONNECTIONS AS total FROM information_schema.USER_STATISTICS WHERE USER = %s", [app_user.name]
    )
    assert rows == [{"total": 2}]


def test_url_and_special_passwords(mariadb: MariaDBServer) -> None:
    password = "p@ss:w/rd%?#&= 'quote\"\\"  # ASCII: PyMySQL sends str passwords as latin-1, the server hashed utf-8
    user = mariadb.create_user(password=password)
    parts = urlsplit(user.url())
    assert parts.scheme == "mysql"
    assert unquote(parts.username or "") == user.name
    assert unquote(parts.password or "") == password
    assert (parts.hostname, parts.port, unquote(parts.path[1:])) == (user.host, user.port, user.database)
    assert password not in repr(user)
    with user.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 AS one")
        assert cur.fetchone() == {"one": 1}
    with pytest.raises(pymysql.err.OperationalError) as info:
        pymysql.connect(host=user.host, port=user.port, user=user.name, password="wrong")
    assert errno(info.value) == 1045


def test_create_user_validates_names(mariadb: MariaDBServer) -> None:
    with pytest.raises(ValueError, match="user names"):
        mariadb.create_user("bad'name")
    with pytest.raises(ValueError, match="system variable"):
        mariadb.set_global("max_connections = 1; DROP DATABASE app; --", 1)


# ---------------------------------------------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------------------------------------------


def test_max_connections_refuses_with_1040(server_factory: ServerFactory, make_user: UserFactory) -> None:
    server = server_factory(max_connections=10)
    user = make_user(server)
    assert server.connection_count() == 0

    ids = server.open_zombies(user, 10)  # all 10 slots for the application: helpers use the admin port
    assert server.connection_count(user.name) == 10
    for _ in range(2):
        with pytest.raises(pymysql.err.OperationalError) as info:
            server.open_zombies(user, 1)
        assert errno(info.value) == ER_CON_COUNT_ERROR
    assert server.zombie_count == 10

    # MariaDB keeps one extra connection (max_connections + 1) for SUPER / CONNECTION ADMIN on the main port.
    extra = server.root(port=server.port)
    try:
        with pytest.raises(pymysql.err.OperationalError) as info:
            server.root(port=server.port)
        assert errno(info.value) == ER_CON_COUNT_ERROR
        assert server.status("Threads_connected") == "11"
    finally:
        extra.close()
    assert server.wait_for_connection_count(10) == 10  # the root connection is really gone

    # Freeing one slot lets exactly one more application connection in.
    server.kill(ids[0])
    assert server.wait_for_connection_count(9, user.name) == 9
    server.open_zombies(user, 1)
    with pytest.raises(pymysql.err.OperationalError) as info:
        server.open_zombies(user, 1)
    assert errno(info.value) == ER_CON_COUNT_ERROR


def test_set_global_max_connections(server_factory: ServerFactory, make_user: UserFactory) -> None:
    server = server_factory(max_connections=10)
    user = make_user(server)
    server.set_global("max_connections", 12)
    assert server.get_global("max_connections") == 12
    server.open_zombies(user, 12)
    with pytest.raises(pymysql.err.OperationalError) as info:
        server.open_zombies(user, 1)
    assert errno(info.value) == ER_CON_COUNT_ERROR


def test_max_user_connections_refuses_with_1226(mariadb: MariaDBServer, make_user: UserFactory) -> None:
    limited = make_user(max_user_connections=2)
    unlimited = make_user()
    mariadb.open_zombies(limited, 2)
    with pytest.raises(pymysql.err.OperationalError) as info:
        mariadb.open_zombies(limited, 1)
    assert errno(info.value) == ER_USER_LIMIT_REACHED
    assert "max_user_connections" in str(info.value)
    mariadb.open_zombies(unlimited, 3)  # per account: others are not affected
    assert mariadb.connection_count(limited.name) == 2


# ---------------------------------------------------------------------------------------------------------------
# Crash and restart
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["tmpdir", "memory"])
def test_crash_then_restart_keeps_port_and_data(
    server_factory: ServerFactory, make_user: UserFactory, where: str
) -> None:
    # "memory": the failover drill's servers (bench/failover.py): what a SIGKILLed server acknowledged stays there.
    tmp_root = memory_tmp_root() if where == "memory" else None
    if where == "memory" and tmp_root is None:
        pytest.skip("no writable /dev/shm on this machine")
    server = server_factory(max_connections=10, tmp_root=tmp_root)
    if tmp_root is not None:
        assert server.datadir.is_relative_to(tmp_root)
    user = make_user(server)
    port, datadir, pid = server.port, server.datadir, server.pid
    assert pid is not None
    with user.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t_persist (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO t_persist VALUES (1), (2), (3)")
        conn.commit()
    server.open_zombies(user, 2)

    server.crash()
    assert server.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(pymysql.err.OperationalError):
        user.connect(connect_timeout=2)
    assert server.zombie_count == 0

    server.restart()
    assert (server.port, server.datadir) == (port, datadir)
    assert server.pid not in (None, pid)
    assert "ready for connections" in server.error_log()
    with user.connect() as conn, conn.cursor() as cur:  # the account survived, the password too
        cur.execute("SELECT COUNT(*) AS n FROM t_persist")
        assert cur.fetchone() == {"n": 3}
    assert server.connection_count(user.name) == 0


def test_restart_of_running_server(server_factory: ServerFactory) -> None:
    server = server_factory()
    server.execute(f"CREATE TABLE `{server.database}`.t_r (id INT)")
    old_pid = server.pid
    server.restart()
    assert server.pid != old_pid
    assert server.execute(f"SELECT COUNT(*) AS n FROM `{server.database}`.t_r") == [{"n": 0}]


# ---------------------------------------------------------------------------------------------------------------
# External servers (SMYSQL_TEST_URL), exercised against a private one
# ---------------------------------------------------------------------------------------------------------------


def test_external_server_interface(server_factory: ServerFactory) -> None:
    backing = server_factory()
    with ExternalServer(backing.root_url("ext_db")) as ext:
        assert (ext.host, ext.port, ext.database, ext.private) == ("127.0.0.1", backing.port, "ext_db", False)
        assert ext.max_connections == 10
        assert {"Database": "ext_db"} in backing.execute("SHOW DATABASES")
        user = ext.create_user(process=True)
        ids = ext.open_zombies(user, 2)
        assert sorted(int(r["ID"]) for r in backing.processlist(user.name)) == sorted(ids)
        assert ext.connection_count(user.name) == 2
        ext.kill(ids[0])
        assert ext.wait_for_connection_count(1, user.name) == 1
        lifecycle: list[Callable[[], Any]] = [ext.start, ext.stop, ext.crash, ext.restart, ext.error_log]
        for call in lifecycle:
            with pytest.raises(PrivateServerRequired, match="SMYSQL_TEST_URL"):
                call()
        with pytest.raises(PrivateServerRequired):
            _ = ext.datadir
        ext.cleanup()
    assert backing.wait_for_connection_count(0, user.name) == 0
    assert backing.execute("SELECT User FROM mysql.user WHERE User = %s", [user.name]) == []


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root:pw@10.0.0.1:3306/db",
        "mysql://root:pw@db.example.com:3306/db",
        "postgres://root:pw@127.0.0.1:3306/db",
        "mysql://root:pw@127.0.0.1:3306/bad-name",
    ],
)
def test_external_server_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValueError, match="SMYSQL_TEST_URL"):
        ExternalServer(url)


def test_given_basedir_is_reusable_by_a_new_object(tmp_path: Path, requires_private_server: None) -> None:
    with MariaDBServer(basedir=tmp_path / "srv", max_connections=10) as first:
        first.execute(f"CREATE TABLE `{first.database}`.t_keep (id INT)")
        port = first.port
    assert (tmp_path / "srv" / "data").is_dir()  # a caller-owned basedir is kept
    assert oct((tmp_path / "srv" / "root-password").stat().st_mode & 0o777) == "0o600"
    with MariaDBServer(basedir=tmp_path / "srv", port=port, max_connections=10) as second:
        assert second.execute(f"SHOW TABLES FROM `{second.database}`") == [{f"Tables_in_{second.database}": "t_keep"}]
