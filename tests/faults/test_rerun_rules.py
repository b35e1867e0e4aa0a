"""What is re-run after a lost answer, against a real server: a SELECT with a side effect never runs twice.

The answer is lost after the server committed: the proxy forwards the statement, then cuts the connection at the
first byte of the answer (``cut_after(0)``). The server ran the statement to its end (in autocommit it committed
before the answer was sent); the client sees "Lost connection" (2013).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.faultproxy import FaultProxy
from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import ConnectionLostError, ServerlessMySQL
from tests.faults.conftest import LeakSink
from tests.faults.matrix import Target
from tests.integration.conftest import later

pytestmark = pytest.mark.timeout(30)

_names = itertools.count(1)


@pytest.fixture
def proxied(mariadb: MariaDBServer, fault_user: AppUser, leaks: LeakSink) -> Iterator[tuple[Target, FaultProxy]]:
    with FaultProxy(mariadb.host, mariadb.port) as proxy:
        target = Target(server=mariadb, user=fault_user, host=proxy.host, port=proxy.port, leaks=leaks)
        yield target, proxy
        target.close_all()


def _unique(prefix: str) -> str:
    return f"{prefix}_{next(_names)}_{time.monotonic_ns() % 10**6}"


def test_select_calling_a_writing_stored_function_is_not_re_run(
    proxied: tuple[Target, FaultProxy], mariadb: MariaDBServer, leaks: LeakSink
) -> None:
    target, proxy = proxied
    db_name = mariadb.database
    table, function = f"`{db_name}`.`{_unique('items')}`", f"`{db_name}`.`{_unique('add_item')}`"
    mariadb.execute(f"CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB")
    with target.user.connect() as owner, owner.cursor() as cur:  # the app account owns (and may run) it
        cur.execute(
            f"CREATE FUNCTION {function}(item VARCHAR(64)) RETURNS INT MODIFIES SQL DATA "
            f"BEGIN INSERT INTO {table} (v) VALUES (item); RETURN LAST_INSERT_ID(); END"
        )
    db = target.client()
    db.set_deadline(5)
    assert db.query("SELECT 1 AS one") == [{"one": 1}]
    assert proxy.cut_after(0) == 1
    with pytest.raises(ConnectionLostError) as info:
        db.query(f"SELECT {function}(%s) AS id", ("once",))
    leaks.observe(info.value)
    assert info.value.errno == 2013, info.value
    assert "not re-run" in str(info.value)
    assert [r["v"] for r in mariadb.execute(f"SELECT v FROM {table}")] == ["once"]
    # The client reconnects for the next statement.
    assert db.query(f"SELECT COUNT(*) AS n FROM {table}") == [{"n": 1}]
    assert db.get_stats().connects == 2


def test_next_value_for_a_sequence_is_not_re_run(
    proxied: tuple[Target, FaultProxy], mariadb: MariaDBServer, leaks: LeakSink
) -> None:
    target, proxy = proxied
    seq = f"`{mariadb.database}`.`{_unique('seq')}`"
    mariadb.execute(f"CREATE SEQUENCE {seq}")
    db = target.client()
    db.set_deadline(5)
    db.query("SELECT 1")
    proxy.cut_after(0)
    with pytest.raises(ConnectionLostError) as info:
        db.query(f"SELECT NEXT VALUE FOR {seq} AS n")
    leaks.observe(info.value)
    assert db.query(f"SELECT NEXT VALUE FOR {seq} AS n") == [{"n": 2}]  # 1 was taken once, by the lost statement


def test_a_side_effect_free_read_is_re_run_through_the_same_fault(proxied: tuple[Target, FaultProxy]) -> None:
    """The control: the same cut makes a read of built-ins re-run, so the tests above prove the classification."""
    target, proxy = proxied
    db = target.client()
    db.set_deadline(5)
    db.query("SELECT 1")
    proxy.cut_after(0)
    assert db.query("SELECT CONCAT(%s, UPPER('b')) AS v, COUNT(*) AS n", ("a",)) == [{"v": "aB", "n": 1}]
    assert db.get_stats().connects == 2


@pytest.mark.parametrize("name", ["lateral", "any_value", "uuid_to_bin"])
def test_a_stored_function_named_like_a_keyword_or_another_servers_built_in_is_not_re_run(
    name: str, mariadb: MariaDBServer, fault_user: AppUser, leaks: LeakSink
) -> None:
    """Issue 18, item 4, as it was found: a stored function that inserts and sleeps, the connection KILLed while it
    runs. ``lateral`` is not reserved on MariaDB and ``ANY_VALUE``/``UUID_TO_BIN`` are MySQL's built-ins, so on
    MariaDB each calls the user's function: the insert stays (the server does not undo it) and a re-run adds one."""
    schema = f"{mariadb.database}_{_unique('fn')}"
    table = f"`{schema}`.`items`"
    mariadb.execute(f"CREATE DATABASE `{schema}`")
    mariadb.execute(f"GRANT ALL ON `{schema}`.* TO '{fault_user.name}'@'%'")
    try:
        mariadb.execute(f"CREATE TABLE {table} (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64)) ENGINE=Aria")
        with fault_user.connect() as owner, owner.cursor() as cur:
            cur.execute(
                f"CREATE FUNCTION `{schema}`.`{name}`(x INT) RETURNS INT MODIFIES SQL DATA "
                f"BEGIN INSERT INTO {table} (v) VALUES ('run'); DO SLEEP(1); RETURN x; END"
            )
        db = ServerlessMySQL(**{**fault_user.connect_kwargs(), "database": schema})
        try:
            db.set_deadline(10)
            own = int(db.query("SELECT CONNECTION_ID() AS id")[0]["id"])
            later(0.4, lambda: mariadb.kill(own))
            with pytest.raises(ConnectionLostError) as info:
                db.query(f"SELECT {name}(1) AS x")
            leaks.observe(info.value)
            assert "not re-run" in str(info.value)
            assert [r["v"] for r in mariadb.execute(f"SELECT v FROM {table}")] == ["run"]
        finally:
            db.terminate()
    finally:
        mariadb.execute(f"DROP DATABASE IF EXISTS `{schema}`")


def test_load_data_local_cut_while_the_file_streams_is_not_re_run(
    proxied: tuple[Target, FaultProxy], mariadb: MariaDBServer, tmp_path: Path, leaks: LeakSink
) -> None:
    """``LOAD DATA LOCAL INFILE``: the statement reached the server, which asked for the file and loads rows as they
    arrive. A write failing while the file streams (2006) is not "never sent": re-running would load the file again
    (an Aria table keeps the rows loaded before the cut). Before the fix PyMySQL's own clean-up wrote to the closed
    socket and an ``AttributeError`` reached the caller."""
    target, proxy = proxied
    table = f"`{mariadb.database}`.`{_unique('loaded')}`"
    mariadb.execute(f"CREATE TABLE {table} (a INT, b VARCHAR(64)) ENGINE=Aria")
    rows = 1_000_000
    data = tmp_path / "rows.csv"
    data.write_text("".join(f"{i},row-{i}-padding-padding-padding\n" for i in range(rows)))
    db = target.client(connect_args={"local_infile": True})
    db.set_deadline(20)
    db.query("SELECT 1")
    later(0.4, proxy.reset)
    with pytest.raises(ConnectionLostError) as info:
        db.query(f"LOAD DATA LOCAL INFILE %s INTO TABLE {table} FIELDS TERMINATED BY ','", (str(data),))
    leaks.observe(info.value)
    assert "not re-run" in str(info.value)
    loaded = int(mariadb.execute(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])
    assert loaded < rows, "the file was loaded once completely before the cut: the test proves nothing"
    assert db.get_stats().reconnects == 0
    assert db.query("SELECT 1 AS one") == [{"one": 1}]  # the next statement reconnects


@pytest.mark.parametrize("rds_proxy", [False, True])
def test_server_specific_built_ins_count_only_when_the_handshake_names_the_server(
    rds_proxy: bool, proxied: tuple[Target, FaultProxy]
) -> None:
    """``SFORMAT`` is MariaDB's (10.7): a read of it is re-run on MariaDB, but not behind RDS Proxy, whose handshake
    may name another server (where ``sformat()`` would be a user's stored function)."""
    target, proxy = proxied
    db = target.client(rds_proxy=rds_proxy)
    db.set_deadline(5)
    db.query("SELECT 1")
    proxy.cut_after(0)
    sql = "SELECT SFORMAT('{}-{}', 'a', 'b') AS v"
    if rds_proxy:
        with pytest.raises(ConnectionLostError):
            db.query(sql)
    else:
        assert db.query(sql) == [{"v": "a-b"}]
