"""The overload policy of one client (one Lambda environment): how it waits for a slot, when it gives its own back.

A fleet of environments shares ``max_connections`` slots without any coordination: each environment decides from
what it sees itself, at once.

**Waiting.** A refused connect is either "server full" (1040, 1203, 1226 for connections, 1041) or "server down"
(2003, 2006, 2013 at the handshake, 1053, connect timeouts). With the default ``backoff="paced"``:

- *server down*: decorrelated jitter from ``base`` up to ``cap``: a restarting server is found within about ``cap``
  seconds of coming back, and a server that is down only costs the client (refused TCP connects never reach it);
- *server full*: a slot frees only when another client gives one back, so retrying faster than that only adds
  refused connects that the server must handle and CPU that the waiting environments burn. Each retry waits
  ``uniform(0.5, 1.5) * m``; the mean ``m`` is ``0.75 * cap`` at first and then *grows* with the time this
  invocation has waited (:data:`GROWTH` of it, up to :data:`LONGEST_MEAN` ``* cap``, reached after 3 s with the
  default ``cap``): a queue that lasts polls less, not more (a 30 s wait makes about 22 attempts with the default
  ``cap``, 30 if it runs into its deadline). Waits that shrank instead (to ``0.4 * cap`` after 3 s) let the
  waiters' polls take the CPU the slots' holders needed in a 1,000-environment spike, until the load ended
  (docs/overload-log.md, *Waits that grow*). The price is fairness:
  newcomers poll more often than the longest waiters, whose gaps are bounded by ``LONGEST_MEAN * cap``. Close to
  the end of its wait (the deadline or ``max_connect_wait``) a waiter polls more often again: the mean is at most
  :data:`LEFT_SHARE` of the time left, but not below :data:`SHORTEST_MEAN` ``* cap`` (the policy before's
  fastest rate). Among waiters that share a timeout the oldest are the closest to it, so they get part of the
  fairness back: with growing waits alone, 10 s invocations of 100 environments on 10 slots ran into their
  timeout in 4 of 6 runs.
  An environment keeps how long its last connect waited for a full server (for :data:`LEARNED_FRESH` seconds):
  until it has waited that long again it retries about :data:`LEARNED_RETRIES` times over it (at most every
  ``LEARNED_MAX_MEAN * cap`` on average), then at the paced rate. The paced rate alone made each waiter's attempts
  grow with the length of the queue (3.1 per invocation with 100 environments on 10 slots on a loaded machine).
  An environment that has just given its slot back because others are refused waits once before its first
  attempt (it queues behind them instead of taking the slot straight back; that halved the connect attempts
  and the p99 latency of the benchmark's 10x oversubscription). How long depends on the share of the server's
  connects that were refused between its last two readings of the counters: ``FULL_MEAN * cap`` on average from
  :data:`QUEUE_SHARE` on, less in proportion below it, :data:`QUEUE_DELAY_MIN` at least (and without a fresh
  share). Where few are refused that wait is only latency: with 0.75 s after every give-back, the seed's fleet
  stayed at the limit between its bursts, every rotated invocation 0.75 s slower (:meth:`Pressure.queue_delay`).

A wait ends at the deadline (the Lambda's remaining time minus ``deadline_margin``), or ``max_connect_wait``
seconds after it began, whichever comes first, with a final attempt just before; ``max_retries`` is only a
safety bound. ``"full"``, ``"decorrelated"`` or a callable keep the serverless-mysql behaviour: the same delays
for both kinds.

**Giving the slot back.** The environment is *under pressure* for :data:`WINDOW` seconds after any of:

- two of its own readings of the server's failed-connect counters, at most :data:`FRESH` seconds apart, show a
  refusal in between (:meth:`Pressure.counters`; read at the first ``end()`` of a connection, and at ``end()``
  while the server is at ``conn_utilization`` or above at most once a second, :meth:`Pressure.counters_due`);
- the first reading on a connection finds the server at ``conn_utilization`` or above and taking connects at a
  herd's rate since this connection's own (:func:`herd_behind`), and the client has no reading of the last
  :data:`FRESH` seconds to compare with (a cold start, or a client idle for a while): a herd's newcomers that got
  in at once see the server full behind them (no reading right after connecting: docs/overload-log.md);
- the ``end()`` of an invocation whose connect was refused a slot less than :data:`WINDOW` seconds before
  (:meth:`Pressure.own_refusal`: no statement; the sign lasts ``WINDOW`` from that refusal), or later, finds the
  server (the connection count read with the counters) at ``conn_utilization`` or above: the queue it waited in is
  still there. An older refusal of its own is no sign (the burst that refused it may be over), and the counters
  are none either then (its own refusals grew them; a queue of a few slow pollers refuses nobody in the tenth of a
  second between a connect and its ``end()``, so when a closed loop's load ended its last waiters waited behind
  holders that saw no refusal and kept their slots idle);
- the account is at its own ``max_user_connections`` limit (1203 refusals are not counted by the server).

A connect that gets its slot without a refusal ends the pressure: nobody was ahead of it (else an environment
invoked every few milliseconds reconnected on every invocation of a sign's window). Under pressure ``end()``
kills the zombies it finds, scanning for them by lot unless its own recent scan found some
(:meth:`Housekeeper.pressure_scan`).

After an invocation under pressure, ``end()`` kills every zombie it sees and, if that freed nothing, gives its
own connection back (COM_QUIT) so a waiting environment gets the slot, if the connection is the rotation's: it
was refused before it got its slot, or its environment had just given one back. A connection that got its slot at
once keeps it unless this client's scans found its user's other connections all busy running statements for a
second, or found none (:meth:`Housekeeper.keeps_slot`): the waiters' slots then come from holders that go idle,
killed as zombies, and giving back a slot that the environment's next invocation wants at once only moves the wait
to that invocation (in the seed's bursts every warm holder rotating tipped the fleet to its cap). Giving back
cannot lock itself in: it lasts only while the server counts refusals or stays full behind a wait, and an
environment that sees neither, or gets its next slot at once, keeps its connection again.

**Slots held by idle or destroyed environments.** ``end()`` only runs in an invoked environment, so it cannot
free slots that frozen or destroyed environments hold when no environment with a connection is invoked. When an
``end()`` keeps a connection while the server is measured at ``conn_utilization`` or above, while it is under
pressure, or after the connection had to wait for its slot, the client lowers its session's ``wait_timeout`` to
``pressure_idle_timeout``: the server itself then closes the connection of an environment that stays idle that
long, invoked or not. Each new connection is measured at its first ``end()``, so the last environment to take a slot
of a full server always sees it full. Below :data:`~serverless_mysql.housekeeping.HEADROOM` of the threshold, with
none of those signs, the server's value is restored, so a warm environment idle for minutes keeps its connection
while nobody waits.
"""

from __future__ import annotations

import math
import random

from .backoff import Backoff, DecorrelatedJitter

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Literal

__all__ = [
    "COUNTER_INTERVAL",
    "DOWN",
    "FINAL_RESERVE",
    "FRESH",
    "FULL",
    "FULL_MEAN",
    "GROWTH",
    "HERD_RATE",
    "HERD_WINDOW_MIN",
    "LEARNED_FRESH",
    "LEARNED_MAX_MEAN",
    "LEARNED_RETRIES",
    "LEFT_SHARE",
    "LONGEST_MEAN",
    "QUEUE_DELAY_MIN",
    "QUEUE_SHARE",
    "READ_ONLY_SPREAD",
    "SHORTEST_MEAN",
    "WINDOW",
    "Pressure",
    "herd_behind",
]

if TYPE_CHECKING:  # an alias for type checkers only (not in __all__): no typing at runtime
    Kind = Literal["full", "down"]

FULL: Kind = "full"
DOWN: Kind = "down"

WINDOW = 2.0
"""Seconds an environment stays under pressure after its last sign of someone being refused."""
COUNTER_INTERVAL = 1.0
"""Seconds between two readings of the counters by a client that got its slot without waiting."""
FRESH = 5.0
"""Two readings of the refusal counter further apart than this say nothing about now: the older one is a baseline."""
FINAL_RESERVE = 0.05
"""Seconds before the end of a wait at which its final attempt is made."""
FULL_MEAN = 0.75
GROWTH = 0.5
LONGEST_MEAN = 1.5
LEFT_SHARE = 0.15
SHORTEST_MEAN = 0.4
"""A waiter for a full server waits ``FULL_MEAN * cap`` on average between attempts at first, then ``GROWTH`` times
the time it has waited so far, at most ``LONGEST_MEAN * cap`` (with the default ``cap``: 0.75 s until it has waited
1.5 s, 1.5 s from 3 s on), but never more than ``LEFT_SHARE`` of the time left before the end of its wait, nor less
than ``SHORTEST_MEAN * cap`` for that reason: a waiter close to its deadline polls again as often as every waiter
did before the waits grew."""
LEARNED_RETRIES = 2.0
"""Retries a waiter aims at over the time its previous wait for a full server lasted (see :meth:`Pressure.delay`)."""
LEARNED_MAX_MEAN = 1.5
"""The mean wait between retries paced by a learned wait is at most ``LEARNED_MAX_MEAN * cap``."""
LEARNED_FRESH = 10.0
"""Seconds after which a previous wait no longer says how long the queue is."""
QUEUE_SHARE = 0.25
"""The share of refused connects from which the wait of :meth:`Pressure.queue_delay` is longest."""
QUEUE_DELAY_MIN = 0.1
"""Seconds: the smallest mean of :meth:`Pressure.queue_delay`."""
READ_ONLY_SPREAD = 2.0
"""Seconds: while only a read-only server answers, each wait is drawn evenly from ``[base, READ_ONLY_SPREAD]``
(``cap`` does not apply; a custom backoff does). The endpoint moves within seconds (Aurora's DNS TTL is 5 s) and
each waiter notices at its next attempt; evenly spread waits turn the waiters into a stream of about
``waiters / READ_ONLY_SPREAD`` reconnects a second after the switch instead of a herd within half a second (in the
failover drill the first second after the switch then completed 200-430 invocations, the herd's 0-13:
docs/aurora.md)."""


HERD_RATE = 1.0
"""Connects a second, in units of ``max_connections``, that a server must have taken since a cold client's own connect
for that client's first reading to take the server busy for a queue (:func:`herd_behind`)."""
HERD_WINDOW_MIN = 0.1
"""Seconds: the shortest time since the connect over which that rate is judged (a handful of connects within a few
milliseconds of one's own is no herd)."""


def herd_behind(own_id: int, connected_at: float, now: float, connects: int | None, max_connections: int) -> bool:
    """Whether the server took connects at a herd's rate since the connect that got connection id ``own_id``.

    MariaDB numbers connections from its ``Connections`` counter (refused connects included), so a connection's id is
    that counter at its handshake, and ``connects - own_id`` is how many connects came after it, for free. At
    :data:`HERD_RATE` ``* max_connections`` a second or more that is a herd, not the churn of a busy server (other
    applications, monitoring: those must not make a cold client give its slot back) nor the count of a connection
    read long after its connect. Ids numbered otherwise (the handshake carries 32 bits; a proxy numbers its own
    connections) give a difference out of range or no herd's rate: no sign, as without one.
    """
    if connects is None:
        return False
    since = connects - own_id
    if not 0 < since < 1 << 32:
        return False
    return since >= HERD_RATE * max_connections * max(now - connected_at, HERD_WINDOW_MIN)


class Pressure:
    """Per-client overload state and decisions; no I/O, ``now`` is passed in, so every decision is unit-testable.

    Parameters
    ----------
    backoff
        ``None`` for the paced waits described in the module docstring, else a serverless-mysql style strategy
        used for both kinds of refusal.
    base, cap
        Seconds: the smallest delay, and the scale of the waits (see the module docstring).
    rng
        The jitter source (one per client: environments must not draw the same delays).
    """

    __slots__ = (
        "_counters",
        "_down",
        "backoff",
        "base",
        "cap",
        "learned_at",
        "learned_wait",
        "own_share",
        "pressure_until",
        "refused_at",
        "refused_share",
        "rng",
    )

    def __init__(self, *, backoff: Backoff | None, base: float, cap: float, rng: random.Random) -> None:
        self.backoff = backoff
        self.base = base
        self.cap = cap
        self.rng = rng
        self._down = DecorrelatedJitter(base, cap, rng)  # a down server: serverless-mysql's decorrelated jitter
        self.pressure_until = -math.inf
        self._counters: tuple[float, int, int, int | None] | None = None  # (time, refused, aborted, connects)
        self.learned_wait = 0.0  # seconds its last connect waited for a full server's slot (0: it was not refused)
        self.learned_at = -math.inf  # when that connect ended
        self.refused_share = (-math.inf, 0.0)  # (when, share): refused connects / connects between two readings
        self.refused_at = -math.inf  # when its last connect that waited for a full server was last refused
        self.own_share = 0.0  # the share of that connect's attempts that a full server refused

    # ------------------------------------------------------------------------------------------ waiting
    def delay(
        self,
        kind: Kind,
        attempt: int,
        previous: float,
        waited: float,
        *,
        read_only: bool = False,
        left: float | None = None,
    ) -> float:
        """Seconds to wait before connect attempt ``attempt + 1`` after a refusal of ``kind``.

        ``previous`` is the delay before this attempt (0 before the first), ``waited`` the seconds this connect
        has waited so far; ``read_only``: the refusal was a read-only server's (a writer client waits for the
        endpoint to move): a wait spread evenly up to :data:`READ_ONLY_SPREAD`; ``left``: the seconds until the
        wait ends (the deadline or ``max_connect_wait``; ``None``: no end).
        """
        if self.backoff is not None:
            return self.backoff(attempt, previous)
        if kind == DOWN:
            if read_only:
                return self.rng.uniform(self.base, max(self.base, READ_ONLY_SPREAD))
            return self._down(attempt, previous)
        learned = self.learned_wait
        # It waited this long last time: the queue is long, and retrying at the paced rate until then would only
        # add refusals (each waiter's attempts grew with the queue). About LEARNED_RETRIES retries until then, at
        # the paced rate after that. Bounded: a queue that has just shrunk (the load ended) must not be left with
        # free slots while its waiters, who learned a long wait, sleep through them.
        at_least = min(learned / LEARNED_RETRIES, LEARNED_MAX_MEAN * self.cap) if waited < learned else 0.0
        return self._paced(waited, left, at_least)

    def start_wait(self, now: float) -> None:
        """A connect begins: a learned wait older than :data:`LEARNED_FRESH` seconds says nothing about now."""
        if now - self.learned_at > LEARNED_FRESH:
            self.learned_wait = 0.0

    def learn(
        self, now: float, waited: float, *, refused_full: bool, refused_at: float = -math.inf, own_share: float = 0.0
    ) -> None:
        """A connect ended with a slot after ``waited`` s; if a full server refused it: how long, when, how often."""
        self.learned_wait = waited if refused_full else 0.0
        self.learned_at = now
        if refused_full:
            self.refused_at, self.own_share = refused_at, own_share
        else:
            # Nobody was ahead of it: the pressure is over (with a sign's whole WINDOW, the seed's fleet did hundreds
            # of logins a second between its bursts, without a refusal).
            self.pressure_until = min(self.pressure_until, now)

    def queue_delay(self, now: float) -> float:
        """The wait before the first attempt of an environment that has just given its slot back.

        Not a retry, so a custom ``backoff`` callable is not asked for it. Its mean grows with the share of the
        server's connects that it refused between this client's last two readings (``FULL_MEAN * cap`` from
        :data:`QUEUE_SHARE` on), from :data:`QUEUE_DELAY_MIN`; without a fresh share, the least.
        """
        at, share = self.refused_share
        scale = min(1.0, share / QUEUE_SHARE) if now - at <= FRESH + WINDOW else 0.0
        mean = max(FULL_MEAN * self.cap * scale, QUEUE_DELAY_MIN)
        return max(self.base, self.rng.uniform(0.5, 1.5) * mean)

    def _paced(self, waited: float, left: float | None, at_least: float) -> float:
        """A paced wait whose mean grows with ``waited`` (not below ``at_least``), cut near the end of the wait."""
        cap = self.cap
        mean = max(min(max(FULL_MEAN * cap, GROWTH * waited), LONGEST_MEAN * cap), at_least)
        if left is not None:
            # Close to its deadline a waiter polls more often again (the oldest waiters of a queue whose members
            # share a timeout are the closest to it), but never faster than the bound on every waiter's rate.
            mean = min(mean, max(LEFT_SHARE * left, SHORTEST_MEAN * cap))
        return max(self.base, self.rng.uniform(0.5, 1.5) * mean)

    @staticmethod
    def wait_over(*, attempt: int, max_retries: int, now: float, wait_end: float | None) -> bool:
        """Whether no retry follows: ``attempt`` retries were made of ``max_retries``, or no time is left for one.

        Decided before the next delay is drawn, so that a ``backoff`` callable is asked once per retry that is then
        made, never for one that is not (it may count, log or charge each call).
        """
        return attempt >= max_retries or (wait_end is not None and wait_end - FINAL_RESERVE - now <= 0)

    @staticmethod
    def next_wait(*, attempt: int, max_retries: int, now: float, delay: float, wait_end: float | None) -> float | None:
        """The seconds to sleep before another attempt, or ``None`` when the wait is over (:meth:`wait_over`).

        ``attempt`` retries were made so far. A delay that would end past ``wait_end`` is cut so that one final
        attempt lands :data:`FINAL_RESERVE` seconds before it (a slot may have freed by then); after that the
        wait is over.
        """
        if Pressure.wait_over(attempt=attempt, max_retries=max_retries, now=now, wait_end=wait_end):
            return None
        if wait_end is None or now + delay < wait_end - FINAL_RESERVE:
            return delay
        return wait_end - FINAL_RESERVE - now

    # ------------------------------------------------------------------------------------------ signals
    def counters(
        self,
        now: float,
        refused: int,
        aborted: int,
        *,
        busy: bool,
        waited: bool = False,
        herd: bool = False,
        connects: int | None = None,
    ) -> bool:
        """A reading of the server's failed-connect counters; True when it shows a refusal since a fresh previous one.

        ``refused`` is ``Connection_errors_max_connections``, ``aborted`` is ``Aborted_connects``, ``busy`` whether
        the server was just measured at ``conn_utilization`` or above. MariaDB counts a 1040 in the former only when
        it refuses before authentication (more than ``max_connections + 1`` connections at that moment), but always
        in the latter, which also counts bad passwords, TLS probes and health checks: growth of ``aborted`` is only
        taken as a refusal while the server is busy, where that noise costs at most one needless reconnect.
        ``waited``: the ``end()`` reading of a connection that was refused a slot before it got one: ``busy`` is the
        sign then, whatever the counters did (the module docstring says why). ``herd``: the first reading on a
        connection found a herd's rate of connects since its own (:func:`herd_behind`); without a fresh reading to
        compare with, ``busy`` with ``herd`` is the sign (the module docstring).
        ``connects`` (``Connections``, refused connects included) gives :meth:`queue_delay` its refused share.
        """
        before, self._counters = self._counters, (now, refused, aborted, connects)
        if before is not None and now - before[0] > FRESH:
            before = None  # too old to say anything about now: this reading is a baseline
        if before is not None and connects is not None and before[3] is not None and connects > before[3]:
            self.refused_share = (now, min(1.0, max(refused - before[1], aborted - before[2]) / (connects - before[3])))
        if waited:
            grew = busy
        elif before is not None:
            grew = refused > before[1] or (busy and aborted > before[2])
        else:
            grew = busy and herd
        if grew:
            self.pressure_until = max(self.pressure_until, now + WINDOW)
        return grew

    def counters_due(self, now: float, *, waited: bool) -> bool:
        """Whether a busy ``end()`` should read the counters (at most once a second, unless the client waited).

        A client that never read them reads them, and so does the ``end()`` of an invocation that had to wait for its
        slot (with the adaptive ``used_conns_freq``, the first ``end()`` of a new connection reads them in any case).
        Otherwise a client reads them at most every :data:`COUNTER_INTERVAL` seconds: enough to join the rotation
        within a second while the server stays full, without a statement on every invocation of a busy server.
        """
        return waited or self._counters is None or now - self._counters[0] >= COUNTER_INTERVAL

    def own_refusal(self, now: float) -> bool:
        """The ``end()`` of a connection that waited for its slot: whether its own last refusal stands for a reading.

        A refusal under :data:`WINDOW` s old says what the counters would (the queue is still there) without their
        statement, dearer to the server than a login; the sign lasts ``WINDOW`` from it. With no share measured as
        lately as :meth:`queue_delay` takes one, its own attempts' refused share stands in (else the wait after a
        give-back fell to its least: 20x attempts 2.42-2.53 against 2.25-2.26). Older: the client reads them.
        """
        if now - self.refused_at >= WINDOW:
            return False
        self.pressure_until = max(self.pressure_until, self.refused_at + WINDOW)
        if now - self.refused_share[0] > FRESH + WINDOW:
            self.refused_share = (now, self.own_share)  # nothing measured lately: its own connect's share
        return True

    def account_full(self, now: float) -> None:
        """The account is at its ``max_user_connections``: its own next connects are refused (1203)."""
        self.pressure_until = max(self.pressure_until, now + WINDOW)

    # ------------------------------------------------------------------------------------------ decisions
    def under_pressure(self, now: float) -> bool:
        """True while someone is (or very recently was) refused a slot: give the connection back after use."""
        return now < self.pressure_until
