"""Which failures the client retries, re-runs or answers with a credential refresh: one policy, unit-tested.

Next to :mod:`~serverless_mysql.pressure` (how long to wait for a slot), this says *whether* to try again:

- **connecting**: an access-denied error (1045) with a refreshable credentials provider gets one refresh (the
  password may have rotated); a refusal that another attempt may fix is ``"full"`` or ``"down"``
  (:func:`~serverless_mysql.errors.connect_failure_kind`) and waits as the pressure policy says; anything else
  (bad password, unknown database, a TLS failure) fails at once;
- **a lost connection during a statement**: re-run on a new connection at most :data:`MAX_LOST_RERUNS` times, and
  only when the statement provably never reached the server (2006: the write failed) or cannot have had a side
  effect (``idempotent=True``, or a plain read by :func:`~serverless_mysql._statements.is_plain_read`), never
  after a timeout (it may still be running), never inside a transaction;
- **a statement a read-only server refused** (a failover demoted the writer:
  :func:`~serverless_mysql.errors.is_read_only_refusal`): nothing of it ran; :meth:`RetryPolicy.after_read_only`
  says whether the connection stays, the error passes through, the transaction is aborted or the statement runs
  again on a writable server (at most :data:`MAX_READ_ONLY_RERUNS` times, never a ``CALL``);
- **statements the server rolled back** (deadlock, lock wait timeout, interrupted): retried with backoff up to
  ``max_query_retries`` times, outside transactions only.
"""

from __future__ import annotations

from collections.abc import Callable

from .backoff import Backoff, RetryBudget
from .errors import (
    ER_ACCESS_DENIED_ERROR,
    connect_failure_kind,
    error_number,
    is_connection_lost,
    is_read_only_refusal,
    is_timeout,
    is_transient_query_error,
    was_never_sent,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Literal

    from .pressure import Kind

__all__ = ["MAX_LOST_RERUNS", "MAX_READ_ONLY_RERUNS", "RetryPolicy"]  # ReadOnlyAction: for type checkers only

MAX_LOST_RERUNS = 2
"""Re-runs of one statement after lost connections: bounded, whatever the server does."""
MAX_READ_ONLY_RERUNS = 5
"""Re-runs of one statement refused by read-only servers (each on a connection found writable; time bounds too)."""

if TYPE_CHECKING:  # an alias for type checkers only: no typing at runtime
    ReadOnlyAction = Literal["keep", "raise", "abort", "rerun"]
    """After a statement error: ``keep`` the connection and raise (not a read-only refusal, or a reader client);
    ``raise`` the error unchanged but drop the connection; ``abort`` the transaction (drop it, raise
    ``TransactionAbortedError``); ``rerun`` the statement on a new, writable connection."""


class RetryPolicy:
    """Decides, for one client, which failures are worth another try; no I/O and no state of its own.

    Parameters
    ----------
    query_backoff
        The delays between retries of a statement the server rolled back.
    max_query_retries
        How many times such a statement is retried (0: never).
    max_lost_reruns
        How many times a statement is re-run after lost connections.
    """

    __slots__ = ("max_lost_reruns", "max_query_retries", "query_backoff")

    def __init__(self, *, query_backoff: Backoff, max_query_retries: int = 0, max_lost_reruns: int = MAX_LOST_RERUNS):
        self.query_backoff = query_backoff
        self.max_query_retries = max_query_retries
        self.max_lost_reruns = max_lost_reruns

    # ------------------------------------------------------------------------------------------ connecting
    @staticmethod
    def refresh_credentials(exc: BaseException, *, refreshable: bool, refreshed: bool) -> bool:
        """Whether a failed connect should fetch the credentials again (once) and retry at once."""
        return refreshable and not refreshed and error_number(exc) == ER_ACCESS_DENIED_ERROR

    @staticmethod
    def connect_failure(exc: BaseException) -> Kind | None:
        """``"full"`` or ``"down"`` for a refusal worth waiting out, ``None`` for one no retry can fix."""
        return connect_failure_kind(exc)

    # ------------------------------------------------------------------------------------------ statements
    @staticmethod
    def is_lost(exc: BaseException) -> bool:
        """Whether the connection is unusable after ``exc`` (it must be replaced)."""
        return is_connection_lost(exc)

    def rerun_after_loss(
        self, exc: BaseException, sql: str, *, idempotent: bool | None, reruns: int, server: str | None = None
    ) -> bool:
        """Whether a statement outside a transaction whose connection was lost runs again on a new one.

        ``reruns`` is how many times it was re-run already; ``idempotent`` is the caller's word (``None``: plain
        reads only, read as ``server`` (the handshake's version string) reads them).
        """
        if reruns >= self.max_lost_reruns or is_timeout(exc):
            return False  # a timed-out statement may still be running on the server
        if was_never_sent(exc):
            return True
        if idempotent is not None:
            return idempotent
        from ._statements import is_plain_read  # noqa: PLC0415 - only needed after a lost connection

        return is_plain_read(sql, server)

    @staticmethod
    def after_read_only(
        exc: BaseException, sql: str, *, role: str, in_transaction: bool, reruns: int
    ) -> ReadOnlyAction:
        """What a statement error means for a client of ``role`` (resolved) when the server may be read-only.

        A read-only refusal ran nothing, so a writer re-runs it outside transactions, but not a ``CALL`` (a
        procedure may have committed its earlier statements before one was refused).
        """
        if role == "reader" or not is_read_only_refusal(exc):
            return "keep"
        if role != "writer":
            return "raise"
        if in_transaction:
            return "abort"
        if reruns >= MAX_READ_ONLY_RERUNS:
            return "raise"
        from ._statements import is_call  # noqa: PLC0415 - only after a read-only refusal

        return "raise" if is_call(sql) else "rerun"

    def retry_transient(self, exc: BaseException, *, in_transaction: bool) -> bool:
        """Whether a statement error is one the server rolled back and a retry may fix (outside transactions)."""
        return self.max_query_retries > 0 and not in_transaction and is_transient_query_error(exc)

    def query_budget(self, deadline: float | None, clock: Callable[[], float]) -> RetryBudget:
        """The retry budget of one statement: ``max_query_retries`` retries, sleeps ending before ``deadline``."""
        return RetryBudget(self.query_backoff, self.max_query_retries, deadline, clock)
