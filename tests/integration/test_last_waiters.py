"""The last waiters of a load are not starved by slots held for good (issue 19, item 1).

At the end of a load (a batch that stops, a spike that ends) the environments that hold connections may never be
invoked again, so no ``end()`` gives their slots back: only the server's ``wait_timeout`` can, and only if an
``end()`` lowered it to ``pressure_idle_timeout``. In the benchmark's restart with 40 slots, sessions kept the
server's 8-hour timeout in two ways, each reproduced here with a few holders and one waiter:

- a holder that got its slot after being refused measured the server just under ``conn_utilization`` (a few
  slots had just closed and not yet been refilled), so its ``end()`` left the timeout alone;
- a holder whose last measurement was taken on a quiet server (before a restart or a KILL) reconnected into a
  full server, and its ``end()`` did not measure at all (housekeeping runs now and then far from the threshold).

The waiter must be served about ``pressure_idle_timeout`` plus one retry interval after the holders go idle.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from harness.mariadb import MariaDBServer
from serverless_mysql import ServerlessMySQL, pressure
from tests.integration.conftest import ClientFactory, fill

pytestmark = pytest.mark.integration
Factory = Any
IDLE = 1  # pressure_idle_timeout of the holders, seconds
SERVED_WITHIN = IDLE + 2.0  # the idle timeout, a retry interval (<= 1.5 * 0.75 * cap) and slack for a loaded machine


class NoLuck(random.Random):
    """Jitter as usual, but the "now and then" housekeeping draw never fires."""

    def random(self) -> float:
        return 0.99


def close_until(server: MariaDBServer, held: list[Any], count: int) -> None:
    """Close held connections until the server has ``count`` client connections (closing is asynchronous)."""
    for _ in range(server.connection_count() - count):
        held.pop().close()
    assert server.wait_for_connection_count(count) == count


def connect_after_a_wait(server: MariaDBServer, held: list[Any], clients: list[ServerlessMySQL]) -> None:
    """Connect ``clients`` into the full server: each is refused at least once, then gets a slot that ``held`` frees."""
    threads = [threading.Thread(target=db.connect) for db in clients]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # each is refused at least once
    close_until(server, held, server.connection_count() - len(clients))
    for thread in threads:
        thread.join(10)
    assert all(db.get_client() is not None and db.get_stats().refused_full >= 1 for db in clients)


def waiter_is_served(server: MariaDBServer, waiter: ServerlessMySQL) -> float:
    """The seconds a new environment waits for a slot of the full server (it fails after max_connect_wait)."""
    started = time.monotonic()
    assert waiter.query("SELECT 1 AS one")[0]["one"] == 1
    return time.monotonic() - started


def test_holders_that_waited_for_their_slot_let_the_server_close_it(
    server_factory: Factory, make_user: Factory, client_factory: ClientFactory
) -> None:
    server = server_factory(max_connections=10)
    hog, app = make_user(server), make_user(server, process=True)
    held = fill(server, hog, 10 - server.connection_count())
    holders = [client_factory(app, pressure_idle_timeout=IDLE, max_connect_wait=10) for _ in range(3)]
    connect_after_a_wait(server, held, holders)
    close_until(server, held, 6)  # a few slots just closed: the holders measure the server under the threshold
    time.sleep(pressure.WINDOW)  # their refusals are too old to be a sign by themselves: they read the counters
    free = 10 - server.connection_count()
    for db in holders:
        db.query("SELECT 1")
        db.end()
        assert db.get_client() is not None
        last = db.get_stats().last_utilization
        assert last is not None and 0.6 <= last < 0.8, last
    # Full again (unless the server already closed idle holders: a loaded machine); never invoked again.
    held += fill(server, hog, free)
    waiter = client_factory(app, max_connect_wait=8)
    assert waiter_is_served(server, waiter) < SERVED_WITHIN
    for conn in held:
        conn.close()


def test_a_holder_that_reconnects_into_a_full_server_measures_it(
    server_factory: Factory, make_user: Factory, client_factory: ClientFactory
) -> None:
    server = server_factory(max_connections=10)
    hog, app = make_user(server), make_user(server, process=True)
    holder = client_factory(app, pressure_idle_timeout=IDLE, random=NoLuck())
    holder.query("SELECT 1")
    holder.end()  # a cold start on a quiet server: measured far below the threshold
    last = holder.get_stats().last_utilization
    assert last is not None and last < 0.4, last
    server.kill(holder.query("SELECT CONNECTION_ID() AS id")[0]["id"])  # a restart, a KILL storm
    server.wait_for_connection_count(0, app.name)
    held = fill(server, hog, 10 - server.connection_count() - 1)
    holder.query("SELECT 1")  # reconnects into the last free slot, without being refused
    assert holder.get_stats().refused_full == 0 and server.connection_count() == 10
    holder.end()  # then it is never invoked again
    waiter = client_factory(app, max_connect_wait=8)
    assert waiter_is_served(server, waiter) < SERVED_WITHIN
    for conn in held:
        conn.close()


def test_a_holder_that_waited_gives_its_slot_back_while_the_server_stays_full(
    server_factory: Factory, make_user: Factory, client_factory: ClientFactory
) -> None:
    # Issue 20: when a closed loop's load ended, its last few waiters polled too rarely for a holder to see one of
    # them refused between its connect and its end(); the holders kept their slots and the waiters starved until
    # the idle timeout. Having waited itself, a holder that finds the server still full gives its slot back.
    server = server_factory(max_connections=10)
    hog, app = make_user(server), make_user(server, process=True)
    held = fill(server, hog, 10 - server.connection_count())
    holder = client_factory(app, max_connect_wait=10)
    connect_after_a_wait(server, held, [holder])
    time.sleep(pressure.WINDOW)  # its own refusal is too old to be the sign: the server still full is
    refused = int(server.status("Aborted_connects") or 0)
    holder.query("SELECT 1")
    holder.end()  # the server is full (the holder took the last slot), and nobody was refused since it connected
    assert int(server.status("Aborted_connects") or 0) == refused
    assert holder.get_client() is None and holder.get_stats().pressure_quits == 1
    holder.query("SELECT 1")  # its next invocation finds the slot free (no waiter took it): it keeps it again
    holder.end()
    assert holder.get_client() is not None and holder.get_stats().pressure_quits == 1
    for conn in held:
        conn.close()
