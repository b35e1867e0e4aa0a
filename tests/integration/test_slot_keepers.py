"""Under pressure, who gives its slot back (issue 20).

A connection that got its slot without waiting keeps it while the user's other connections are not all in use: their
idle holders are the waiters' slots (housekeeping kills them as zombies), and giving back a slot that the next
invocation wants at once only moves the wait to that invocation. A connection of the rotation (it waited for its
slot) gives it back as before, and so does every holder once the user's connections have all been running a
statement for a second: a closed loop, where no holder goes idle.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import pymysql
import pytest

from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import ServerlessMySQL
from serverless_mysql.housekeeping import Housekeeper
from tests.conftest import ServerFactory, UserFactory
from tests.integration.conftest import ClientFactory, fill, later

pytestmark = pytest.mark.integration
LIMIT = 10
OTHERS = 4  # the user's other connections (other environments of the same function)
# Zombies are what a keeper's waiters get; these tests are about the others that are not zombies yet.
OPTIONS: dict[str, Any] = {"conn_utilization": 0.5, "zombie_min_timeout": 60}


def crowded(server_factory: ServerFactory, make_user: UserFactory) -> tuple[MariaDBServer, AppUser, AppUser, list[Any]]:
    """A small server, another user to fill it, the client's user, and OTHERS idle connections of that user."""
    server = server_factory(max_connections=LIMIT)
    hog, app = make_user(server), make_user(server, process=True)
    return server, hog, app, fill(server, app, OTHERS)


def refuse(user: AppUser) -> None:
    """A waiter is refused a slot (the server counts it)."""
    with pytest.raises(pymysql.err.OperationalError, match="Too many connections"):
        user.connect()


def pressed(server: MariaDBServer, hog: AppUser, db: ServerlessMySQL) -> list[Any]:
    """``db`` holds a slot it got at once; another user fills the server and is refused: ``db`` is under pressure."""
    db.query("SELECT 1")
    held = fill(server, hog, LIMIT - server.connection_count())
    refuse(hog)
    return held


def close_all(conns: list[Any]) -> None:
    for conn in conns:
        with contextlib.suppress(Exception):
            conn.close()


def test_a_holder_that_got_its_slot_at_once_keeps_it_while_the_users_others_are_idle(
    server_factory: ServerFactory, make_user: UserFactory, client_factory: ClientFactory
) -> None:
    server, hog, app, others = crowded(server_factory, make_user)  # the user's others: idle, not zombies yet
    db = client_factory(app, **OPTIONS)
    held = pressed(server, hog, db)
    db.end()
    assert db._pressure.under_pressure(time.monotonic())
    stats = db.get_stats()
    assert db.get_client() is not None and stats.pressure_quits == 0
    # Kept while others wait: the server frees it itself if its environment is not invoked again.
    assert db.query("SELECT @@SESSION.wait_timeout AS t")[0]["t"] == 3
    close_all(held + others)


def test_once_the_users_connections_all_run_statements_for_a_second_a_holder_gives_back(
    server_factory: ServerFactory, make_user: UserFactory, client_factory: ClientFactory
) -> None:
    server, hog, app, others = crowded(server_factory, make_user)  # the user's others: idle, not zombies yet

    def run_long(conn: Any) -> None:
        with contextlib.suppress(pymysql.MySQLError):  # killed at the end of the test
            conn.query("SELECT SLEEP(30)")

    busy = [threading.Thread(target=run_long, args=(conn,), daemon=True) for conn in others]
    for thread in busy:
        thread.start()
    db = client_factory(app, **OPTIONS)
    held = pressed(server, hog, db)
    try:
        db.end()  # every other connection runs a statement: one scan may be a burst's onset, it keeps for now
        assert db.get_client() is not None and db.get_stats().pressure_quits == 0
        time.sleep(Housekeeper.SATURATED_FOR + 0.1)
        refuse(hog)
        db.query("SELECT 1")
        db.end()  # still all in use a second later: a closed loop, whose waiters only get slots given back
        assert db.get_client() is None and db.get_stats().pressure_quits == 1
    finally:
        for conn in others:
            server.kill(conn.thread_id())
        close_all(held + others)


def test_a_connection_that_waited_for_its_slot_gives_it_back(
    server_factory: ServerFactory, make_user: UserFactory, client_factory: ClientFactory
) -> None:
    server, hog, app, others = crowded(server_factory, make_user)  # the user's others: idle, not zombies yet
    held = fill(server, hog, LIMIT - server.connection_count())
    db = client_factory(app, **OPTIONS)
    later(0.5, held.pop().close)  # a slot frees while it waits
    db.query("SELECT 1")
    assert db.get_stats().refused_full >= 1
    db.end()  # the server is still full behind its wait: the rotation's connection gives its slot back
    assert db.get_client() is None and db.get_stats().pressure_quits == 1
    close_all(held + others)
