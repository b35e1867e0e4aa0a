"""The per-invocation work around a decorated handler: deadline, cleanup, metrics; and the init-phase connect.

Per invocation (the hot path): one thread-local lookup for nesting, a pop and an append on the free list,
``set_deadline`` from the Lambda context, the handler, then ``end()`` or ``quit()`` and ``set_deadline(None)``.
Counters are compared only when someone looks (a metrics sink, or debug logging).

Threads: a runtime that runs invocations concurrently in threads of one process (Lambda Managed Instances may)
must not have them queue on one connection. The decoration keeps a free list of idle ``(db, reader)`` pairs: an
invocation takes one (the decoration's own first), and gives it back when it ends; a new pair, built from the
same options, is made only when every pair is busy. So connections are bounded by the peak concurrency and reused
by whichever thread comes next (a thread's end leaves nothing behind). A client given with ``db=`` cannot be
copied: an invocation that finds it busy in another thread raises
:class:`~serverless_mysql.ConcurrentInvocationError` instead of waiting for it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping

from .._spec import INIT_CONNECT_BUDGET
from ..errors import ConcurrentInvocationError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

    from ..client import ServerlessMySQL, Stats
    from ._types import MetricsSink

    Clients = tuple[ServerlessMySQL, ServerlessMySQL | None]  # a thread's db and its reader (reader_host only)

__all__ = ["INIT_CONNECT_BUDGET", "Lifecycle", "connect_on_init", "terminate_quietly"]

logger = logging.getLogger(__name__)

_DEBUG = logging.DEBUG
_nesting = threading.local()


class Lifecycle:
    """The per-invocation work around one handler: deadline, cleanup, metrics."""

    __slots__ = ("_idle", "_spawn", "after", "db", "margin", "metrics", "name", "reader")

    def __init__(
        self,
        db: ServerlessMySQL,
        *,
        after: str,
        margin: float,
        metrics: MetricsSink | None,
        name: str,
        reader: ServerlessMySQL | None = None,
        spawn: Callable[[], Clients] | None = None,
    ) -> None:
        self.db = db
        self.reader = reader  # the second client of reader_host: same deadline, same cleanup, its own metrics
        self.after = after
        self.margin = margin
        self.metrics = metrics
        self.name = name
        self._spawn = spawn  # builds another (db, reader) pair; None: db= was given, it cannot be copied
        # Pairs no invocation uses; the decoration's own is taken first. Only pop/append/insert, each atomic (the
        # GIL, or the list's own lock in free-threaded builds): no lock of ours on the hot path.
        self._idle: list[Clients] = [(db, reader)]

    def run(
        self, handler: Callable[..., Any], event: Any, context: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Any:
        """Call ``handler(event, context, *args, db=db, **kwargs)`` inside the invocation's deadline and cleanup."""
        try:
            held: dict[Lifecycle, Clients] = _nesting.held  # this thread's running invocations and their pairs
        except AttributeError:
            held = _nesting.held = {}
        pair = held.get(self)
        if pair is not None:  # this handler called again inside its own invocation, on this thread: nested
            return _call(handler, event, context, args, kwargs, pair=pair)
        idle = self._idle
        try:
            pair = idle.pop()  # atomic, like append and insert: no lock (free-threaded builds lock the list itself)
        except IndexError:
            pair = self._more()
        db, reader = pair
        try:
            if (self._spawn is None and _running_here(held, db)) or _inside_transaction(db):
                # A decorated handler called by another one sharing db= (or inside a transaction of the caller's):
                # the outermost call owns the deadline and the cleanup, and the caller decides the transaction's fate.
                return _call(handler, event, context, args, kwargs, pair=pair)
            held[self] = pair
            try:
                # Counters are only compared when someone looks: metrics, or debug logging.
                before = db.get_stats() if self.metrics is not None or logger.isEnabledFor(_DEBUG) else None
                budget = self._budget(context)
                db.set_deadline(budget)
                if reader is not None:
                    kwargs = {**kwargs, "reader": reader}
                    reader.set_deadline(budget)  # the reader is managed exactly like db
                    before_reader = None if before is None else reader.get_stats()
                if before is not None:
                    logger.debug(
                        "invocation start", extra={"event": "invoke", "handler": self.name, "deadline": budget}
                    )
                try:
                    return handler(event, context, *args, db=db, **kwargs)
                finally:
                    self._finish(db, before)
                    if reader is not None:
                        self._finish(reader, before_reader, prefix="Reader")
            finally:
                del held[self]
        finally:
            if db is self.db:
                idle.append(pair)  # popped first: the decoration's own client stays the busiest
            else:
                idle.insert(0, pair)

    def _more(self) -> Clients:
        """A new ``(db, reader)``: every pair is in use (refused when the client was given and cannot be copied)."""
        if self._spawn is None:
            raise ConcurrentInvocationError(
                f"{self.name}: invoked while another thread runs an invocation on the same client (given with "
                "db=); concurrent invocations in threads need a client each: decorate without db="
            )
        pair = self._spawn()
        logger.debug("client created: all were busy", extra={"event": "thread_client", "handler": self.name})
        return pair

    def _budget(self, context: object) -> float | None:
        try:
            millis = context.get_remaining_time_in_millis()  # type: ignore[attr-defined]
        except AttributeError:
            return None  # no Lambda context (local runs, tests): no deadline
        except Exception:  # not callable, or it failed
            logger.debug("get_remaining_time_in_millis() failed: no deadline", exc_info=True)
            return None
        if not isinstance(millis, int | float) or isinstance(millis, bool) or not math.isfinite(millis):
            return None  # None, text, True, inf: no deadline rather than a wrong one
        return max(0.0, millis / 1000.0 - self.margin)

    def _finish(self, db: ServerlessMySQL, before: Stats | None, prefix: str = "") -> None:
        started = time.monotonic() if before is not None else 0.0
        try:
            # A db.transaction() opened by this invocation and never ended (its with block was not left): roll it
            # back and release the client, or end()/quit() would refuse and the next invocation would run in it.
            _abandon_transaction(db)
            if self.after == "quit":
                db.quit()
            else:
                db.end()
            if db.in_transaction:  # end()/quit() roll back; never let a transaction reach the next invocation
                logger.warning("transaction still open after %s(): closing the connection", self.after)
                db.terminate()
        except Exception as exc:
            logger.warning(
                "cleanup after the handler failed, closing the connection: %s: %s",
                type(exc).__name__,
                exc,
                extra={"event": "cleanup_error", "handler": self.name},
            )
            terminate_quietly(db)
        finally:
            db.set_deadline(None)
        if before is None:
            return
        try:
            self._report(before, db.get_stats(), time.monotonic() - started, prefix)
        except Exception:
            logger.warning("reporting invocation metrics failed", exc_info=True, extra={"event": "metrics_error"})

    def _report(self, before: Stats, after: Stats, cleanup_seconds: float, prefix: str) -> None:
        connects = after.connects - before.connects
        queries = after.queries - before.queries
        used = connects > 0 or queries > 0
        measured = after.housekeeping_runs > before.housekeeping_runs and after.last_utilization is not None
        values: dict[str, Any] = {
            "connects": connects,
            "connect_retries": after.connect_retries - before.connect_retries,
            "reconnects": after.reconnects - before.reconnects,
            "queries": queries,
            "zombies_killed": after.zombies_killed - before.zombies_killed,
            "housekeeping_ms": round((after.housekeeping_seconds - before.housekeeping_seconds) * 1000.0, 3),
            "utilization": after.last_utilization if measured else None,
            "reused": (connects == 0) if used else None,
            "cleanup_ms": round(cleanup_seconds * 1000.0, 3),
        }
        client = prefix.lower() or "db"
        logger.debug(
            "invocation done", extra={"event": "invoke_done", "handler": self.name, "client": client, **values}
        )
        sink = self.metrics
        if sink is None:
            return
        sink.add_metric(name=prefix + "ConnectRetries", unit="Count", value=values["connect_retries"])
        sink.add_metric(name=prefix + "ZombiesKilled", unit="Count", value=values["zombies_killed"])
        sink.add_metric(name=prefix + "HousekeepingTime", unit="Milliseconds", value=values["housekeeping_ms"])
        if values["utilization"] is not None:
            utilization = round(values["utilization"] * 100, 2)
            sink.add_metric(name=prefix + "ConnectionUtilization", unit="Percent", value=utilization)
        if values["reused"] is not None:
            sink.add_metric(name=prefix + "ConnectionReused", unit="Count", value=int(values["reused"]))


def _call(
    handler: Callable[..., Any],
    event: Any,
    context: Any,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    *,
    pair: Clients,
) -> Any:
    """The handler without a lifecycle of its own (a nested call: the outermost one owns it)."""
    db, reader = pair
    if reader is not None:
        kwargs = {**kwargs, "reader": reader}
    return handler(event, context, *args, db=db, **kwargs)


def _running_here(held: Mapping[Lifecycle, Clients], db: ServerlessMySQL) -> bool:
    """Whether ``db`` (a client given with ``db=`` to several decorations) runs an invocation on this thread."""
    return any(pair[0] is db for pair in held.values())


def _inside_transaction(db: ServerlessMySQL) -> bool:
    try:
        return db._in_transaction_here()
    except AttributeError:  # a subclass that skips ServerlessMySQL.__init__ (test doubles)
        return False


def _abandon_transaction(db: ServerlessMySQL) -> None:
    try:
        abandoned = db._abandon_transaction()
    except AttributeError:  # a subclass that skips ServerlessMySQL.__init__ (test doubles)
        return
    if abandoned:
        logger.warning("a transaction was left open by the handler: rolled back", extra={"event": "rollback_leftover"})


def terminate_quietly(db: ServerlessMySQL) -> None:
    """``db.terminate()``, ignoring any error: the connection is being given up either way."""
    with contextlib.suppress(Exception):
        db.terminate()


def connect_on_init(db: ServerlessMySQL) -> None:
    """Connect now, within :data:`INIT_CONNECT_BUDGET`; a failure is logged and the connect left to first use."""
    db.set_deadline(INIT_CONNECT_BUDGET)
    try:
        db.connect()
    except Exception as exc:
        logger.warning(
            "connect during init failed, connecting at first use instead: %s: %s",
            type(exc).__name__,
            exc,
            extra={"event": "init_connect_error"},
        )
    finally:
        db.set_deadline(None)
