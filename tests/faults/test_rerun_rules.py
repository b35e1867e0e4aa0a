"""What is re-run after a lost answer, against a real server: a SELECT with a side effect never runs twice.

The answer is lost after the server committed: the proxy forwards the statement, then cuts the connection at the
first byte of the answer (``cut_after(0)``). The server ran the statement to its end (in autocommit it committed
before the answer was sent); the client sees "Lost connection" (2013).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest

from harness.faultproxy import FaultProxy
from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import ConnectionLostError
from tests.faults.conftest import LeakSink
from tests.faults.matrix import Target

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
