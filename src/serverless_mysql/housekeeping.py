"""``end()`` housekeeping: measure connection utilization, kill the user's zombies, give up the connection.

One statement measures everything (serverless-mysql needs up to three): the server's limits, the number of
client connections, and the user's own sleeping connections older than ``zombie_min_timeout``, oldest first.
It reads ``performance_schema.processlist`` where the server has a working one, else
``information_schema.PROCESSLIST`` (:func:`usage_sql`, :func:`has_performance_schema_processlist`); or, on a server of
up to :data:`SHOW_PROCESSLIST_MAX` connections, ``SHOW PROCESSLIST``, counted in Python (:func:`usage_row`): a
seventh of the server's CPU.
What to do is then decided here, in plain Python (:func:`plan`), with the reference's defects fixed:

- Utilization counts the connected user's connections against ``LEAST(max_user_connections, max_connections)``
  when the account has a connection limit, otherwise all client connections against ``max_connections``;
  system and daemon threads (``event_scheduler``, replication) never count.
- Zombie ages are taken over the user's own ``Sleep`` connections only, never including this connection.
- Zombies past ``zombie_max_timeout`` always die; from 75% of the threshold on (:data:`HEADROOM`), just enough
  of the oldest zombies die to get back to that level, so bursts find free slots (at most ``max_kills`` per
  call). "Unknown thread id" (1094: another environment killed it first) counts as freed.
- Whether to give this connection back is not decided here but by the overload policy
  (:mod:`serverless_mysql.pressure`): only while someone is refused a slot. serverless-mysql quits whenever it is
  over the threshold with nothing to kill; when the connections over the threshold belong to the same warm fleet,
  that only hands the slot to another environment of the fleet, which pays a reconnect on every invocation.
- It runs adaptively (:meth:`Housekeeper.due`): on a client's first ``end()`` (a cold start: the fleet is
  growing), then on one ``end()`` in ten, also once a second from half the threshold on (per environment, but
  at most ``MID_FLEET_RATE`` a second for the whole fleet, bounded by the connections counted), and
  four times a second while the last measurement was over the threshold. The client also runs housekeeping at every
  ``end()`` under pressure and after waiting for a slot (that environment is the one that can kill the zombies
  holding the others; it scans by lot unless its own recent scan found some: :meth:`Housekeeper.pressure_scan`), and
  at the first ``end()`` of each connection (where its session's idle timeout is decided; on a server with many
  connections, except by lot, the connection count stands for that measurement when it is far below the threshold
  and the account has no connection limit: :meth:`Housekeeper.first_scan`).
"""

from __future__ import annotations

import logging
import math
import random

from ._processlist import (
    INFORMATION_SCHEMA_PROCESSLIST,
    PERFORMANCE_SCHEMA_PROCESSLIST,
    PROCESSLIST_FALLBACK_ERRORS,
    SHOW_PROCESSLIST_COLUMNS,
    SHOW_PROCESSLIST_MAX,
    has_performance_schema_processlist,
    usage_row,
    usage_sql,
)
from ._record import record

__all__ = [
    "HEADROOM",
    "INFORMATION_SCHEMA_PROCESSLIST",
    "LIMITS_SQL",
    "PERFORMANCE_SCHEMA_PROCESSLIST",
    "PROCESSLIST_FALLBACK_ERRORS",
    "REFUSALS_SQL",
    "SHOW_PROCESSLIST_COLUMNS",
    "SHOW_PROCESSLIST_MAX",
    "Housekeeper",
    "Plan",
    "Usage",
    "Zombie",
    "has_performance_schema_processlist",
    "plan",
    "usage_row",
    "usage_sql",
]

logger = logging.getLogger(__name__)


@record(frozen=True)  # not a NamedTuple: see _record
class Zombie:
    """A sleeping connection of the same user, idle for ``idle`` seconds."""

    thread_id: int
    idle: int


@record(frozen=True)  # not a NamedTuple: see _record
class Usage:
    """What the housekeeping statement measured."""

    max_connections: int
    max_user_connections: int
    total: int
    user_total: int
    zombies: tuple[Zombie, ...] = ()
    user_running: int | None = None  # the user's connections running a statement (this one included); None: unscanned

    @property
    def limit(self) -> int:
        """The limit that applies: the account's connection limit when it has one, else the server's."""
        if self.max_user_connections > 0:
            return min(self.max_user_connections, self.max_connections)
        return self.max_connections

    @property
    def used(self) -> int:
        """Connections counted against :attr:`limit`."""
        return self.user_total if self.max_user_connections > 0 else self.total

    @property
    def utilization(self) -> float:
        """``used / limit``."""
        return self.used / self.limit if self.limit > 0 else 1.0


@record(frozen=True)  # not a NamedTuple: see _record
class Plan:
    """What ``end()`` should kill."""

    kill: tuple[Zombie, ...] = ()


def parse_zombies(text: str | bytes | None, exclude: frozenset[int] = frozenset()) -> tuple[Zombie, ...]:
    """Parse the statement's ``id:idle,id:idle`` list (already ordered oldest first)."""
    if not text:
        return ()
    if isinstance(text, bytes):
        text = text.decode("ascii")
    out = []
    for item in text.split(","):
        thread_id, _, idle = item.partition(":")
        if thread_id and idle and int(thread_id) not in exclude:
            out.append(Zombie(int(thread_id), int(idle)))
    return tuple(out)


HEADROOM = 0.75
"""Zombies idle ``zombie_min_timeout`` die from this share of ``conn_utilization`` on, not only above it."""


def plan(
    usage: Usage, *, conn_utilization: float, zombie_max_timeout: float, max_kills: int, pressure: bool = False
) -> Plan:
    """Decide what to kill given ``usage`` (a pure function: the whole policy, testable without a server).

    Zombies idle ``zombie_max_timeout`` always die. From ``HEADROOM * conn_utilization`` on, just enough of the
    oldest zombies die to get back to that level, so that the next burst of cold starts finds free slots instead
    of "too many connections" (each KILL may hit a frozen environment about to thaw, which then reconnects).
    Under ``pressure`` (someone is refused a slot right now) every zombie dies: each one is a slot for a waiter.
    """
    if pressure:
        return Plan(kill=usage.zombies[:max_kills])
    expired = sum(1 for z in usage.zombies if z.idle >= zombie_max_timeout)  # zombies are ordered oldest first
    count = expired
    floor = HEADROOM * conn_utilization
    if usage.utilization > floor:
        count = max(count, usage.used - math.floor(floor * usage.limit))
    return Plan(kill=usage.zombies[: min(count, max_kills)])


# Failed connects: Connection_errors_max_connections counts only refusals for max_connections, but MariaDB 10.11
# counts a 1040 there only when it refuses before authentication (measured: not while the slot reserved for
# SUPER is free); Aborted_connects counts every 1040, and also bad passwords, TLS probes and health checks.
# serverless_mysql.pressure weighs the two. Threads_connected is the server's connection count.
# SESSION scope: these three have only a global value, which MySQL and MariaDB show in either scope; GLOBAL would
# first sum every connection's status (O(connections) under a lock, for each of a herd's newcomers).
REFUSALS_SQL = (
    "SHOW SESSION STATUS WHERE Variable_name IN ('Connection_errors_max_connections', 'Aborted_connects', "
    "'Connections', 'Threads_connected')"
)
LIMITS_SQL = "SELECT @@max_connections AS max_connections, @@max_user_connections AS max_user_connections"


class Housekeeper:
    """Decides when housekeeping runs and remembers the server's limits between runs."""

    def __init__(
        self,
        *,
        conn_utilization: float,
        used_conns_freq: float | None,
        max_conns_freq: float,
        rng: random.Random | None = None,
        last_run: float = -math.inf,
    ) -> None:
        self.conn_utilization = conn_utilization
        self.used_conns_freq = used_conns_freq
        self.max_conns_freq = max_conns_freq
        self.rng = rng if rng is not None else random.Random()
        self.last_run = last_run
        self.last_utilization: float | None = None
        self.last_used = 0  # connections counted at the last measurement: a bound on the fleet's size
        self.limits: tuple[int, int] | None = None
        self.limits_at = -math.inf
        self.scanned_at = -math.inf  # this client's last processlist scan, and the zombies it found
        self.zombies_found = 0
        self.others = 0  # the user's other connections at its last scan
        self.saturated_since: float | None = None  # since when its scans found them all in use

    # Adaptive mode, by how close the last measurement was to the threshold (utilization / conn_utilization):
    # over it, every OVER_INTERVAL seconds and any end() with LOW_CHANCE; from MID on, every MID_INTERVAL seconds
    # (not also one end() in ten: in the benchmark's bursts, 150-450/s on 90 connections, those were two thirds of
    # the scans and 1.19-1.22 statements per invocation, 1.13 without them); under MID, one end() in ten. A whole
    # fleet measuring, each environment once a second, notices a climb within a fraction of a second. Measuring on
    # every end() already *near* the threshold doubled the work per invocation exactly when the server was busiest:
    # in the benchmark's burst scenario that tipped the fleet into collapse.
    # Far below it (under MID), also not more than once every LOW_INTERVAL seconds: a hot environment (thousands
    # of invocations a second) would otherwise pay a processlist scan - ten times a SELECT 1 - hundreds of times a
    # second to learn what ten readings a second tell it. Environments invoked less than 1 / (LOW_CHANCE *
    # LOW_INTERVAL) = 100 times a second (every fleet scenario of the benchmark) measure as often as without it.
    LOW_CHANCE = 0.1
    LOW_INTERVAL = 0.1
    MID = 0.5
    MID_INTERVAL = 1.0
    OVER_INTERVAL = 0.25
    # From MID on, "once a second per environment" is per *fleet* at most MID_FLEET_RATE measurements a second:
    # every environment holding a connection may measure, so the last measurement's connection count bounds the
    # fleet, and each one waits at least used / MID_FLEET_RATE seconds. Per environment, the fleet's scans grew
    # with its size while each scan walks every connection: O(N^2) on the server. In the failover benchmark
    # ~1,000 environments at 2,000-3,000 connections scanned on nearly every end() (~8 ms per scan on MariaDB at
    # 2,500 connections), while the server also had to serve the backlog of the failover.
    MID_FLEET_RATE = 20.0

    def due(self, now: float) -> bool:
        """Whether this ``end()`` should measure utilization (the client also measures under pressure)."""
        if self.used_conns_freq is not None:
            return now - self.last_run >= self.used_conns_freq
        if self.last_utilization is None:  # a cold start: the fleet is growing
            return True
        closeness = self.last_utilization / self.conn_utilization
        since = now - self.last_run
        if closeness > 1.0:
            # Over the threshold, four times a second (and one end() in ten): a waiter's refusal reaches every
            # end() through the pressure state anyway (which always measures), so measuring each end() only
            # re-decided the zombie kills, and cost S1's bursts 1.22 statements per invocation.
            return since >= self.OVER_INTERVAL or self.rng.random() < self.LOW_CHANCE
        if closeness >= self.MID:
            interval = max(self.MID_INTERVAL, self.last_used / self.MID_FLEET_RATE)
            return since >= interval
        return since >= self.LOW_INTERVAL and self.rng.random() < self.LOW_CHANCE

    # A new connection's first measurement scans by lot on a server with more connections than FIRST_SCAN_ALL (up
    # to there every newcomer scans: the scan is cheap): each scan walks every connection, so a herd's newcomers
    # together walk about FIRST_SCAN_ROWS rows each, however large the herd. With 100 rows the failover drill's drain
    # (~1,000 newcomers) left service unclean until 2.8 s after the switch in two runs of three; with 25, in one of
    # six (1.8 s or less in the other five).
    FIRST_SCAN_ALL = 100
    FIRST_SCAN_ROWS = 25

    def first_scan(self, connections: int) -> bool:
        """Whether a new connection whose first ``end()`` counted ``connections`` on the server scans there."""
        return connections <= self.FIRST_SCAN_ALL or self.rng.random() < self.FIRST_SCAN_ROWS / connections

    # Under pressure an end() gives its slot back unless it finds zombies to kill in its place; finding them takes a
    # scan of every connection. Every rotated invocation scanning made the scans most of the server's CPU in the
    # seed load (issue 20: ~0.4 of its ~0.9 ms per served invocation at 90 connections): O(N) per invocation. So
    # such an end() scans only by lot, PRESSURE_SCAN_ROWS / max_connections, and otherwise gives its slot back
    # unscanned, unless this client's own scan, less than SCAN_FRESH seconds old, found zombies: that keeps it
    # scanning at every end() while they last, as a fleet full of zombies needs. (A client that had not scanned
    # for SCAN_FRESH seconds scanning at once made a fifth of the scans in the spike: every one of ~1,000 cold
    # environments once.)
    PRESSURE_SCAN_ROWS = 10
    SCAN_FRESH = 10.0

    def scanned(self, now: float, zombies: int) -> None:
        """A scan found ``zombies`` zombies of the user (before killing any)."""
        self.scanned_at = now
        self.zombies_found = zombies

    def pressure_scan(self, now: float) -> bool:
        """Whether an ``end()`` under pressure scans for zombies rather than give its slot back unscanned."""
        assert self.limits is not None
        limit = self.limits[0]
        if limit <= self.PRESSURE_SCAN_ROWS or (self.zombies_found and now - self.scanned_at <= self.SCAN_FRESH):
            return True
        return self.rng.random() < self.PRESSURE_SCAN_ROWS / limit

    def limits_stale(self, now: float) -> bool:
        """Whether the cached server limits are older than ``max_conns_freq``."""
        return self.limits is None or now - self.limits_at > self.max_conns_freq

    # Under pressure a connection that got its slot without waiting keeps it unless this client's scans found the
    # user's other connections all in use, SATURATED_SHARE or more of them running a statement, for SATURATED_FOR
    # seconds (no two scans more than SCAN_GAP apart, the last one recent), or found none: then no holder goes idle,
    # and a waiter only gets a slot that a holder gives back (a closed loop: every holder is invoked again at once).
    # Otherwise the idle holders are the waiters' slots (killed as zombies). In the benchmark the seed's holders saw
    # 20-60% of the slots running while its bursts refused waiters; the closed loops 90-100%.
    SATURATED_SHARE = 0.8
    SATURATED_FOR = 1.0
    SCAN_GAP = 2.0

    def record(self, now: float, usage: Usage) -> None:
        """Remember a measurement."""
        if usage.user_running is not None:
            self.others = usage.user_total - 1
            if self.others > 0 and (usage.user_running - 1) / self.others < self.SATURATED_SHARE:
                self.saturated_since = None
            elif self.saturated_since is None or now - self.scanned_at > self.SCAN_GAP:
                self.saturated_since = now
        self.last_run = now
        self.last_utilization = usage.utilization
        self.last_used = usage.used

    def keeps_slot(self, now: float) -> bool:
        """Whether a connection that got its slot without waiting keeps it under pressure (see SATURATED_SHARE)."""
        if now - self.scanned_at > self.SCAN_GAP:
            return True  # nothing recent says the slots are all in use
        since = self.saturated_since
        return self.others > 0 and (since is None or now - since < self.SATURATED_FOR)

    def store_limits(self, now: float, max_connections: int, max_user_connections: int) -> None:
        """Cache the server's limits."""
        self.limits = (max_connections, max_user_connections)
        self.limits_at = now
