"""Where connection credentials come from.

The client asks its credentials provider for :class:`Credentials` before every new connection. Providers that
can be refreshed (a Secrets Manager secret after rotation) are asked again with ``refresh=True`` once after an
access-denied error (1045). While it asks, :func:`time_left` tells a provider how much of the client's deadline
is left, so that a provider calling the network can bound its timeouts by it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

from ._record import field, record

__all__ = ["Credentials", "CredentialsProvider", "time_budget", "time_left"]

# Per thread, not an argument of get_credentials: existing providers keep their signature, and each thread sees
# the deadline of the client it runs. (threading is loaded anyway; contextvars would cost an import.)
_budget = threading.local()


@record(frozen=True)
class Credentials:
    """Connection fields supplied by a provider; ``None`` means "not supplied".

    Options given explicitly to the client beat these fields. ``connect_args`` are merged into the arguments
    of ``pymysql.connect`` (an IAM token provider uses them to require TLS and the clear-text auth plugin).
    The password never appears in ``repr``.
    """

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    database: str | None = None
    connect_args: Mapping[str, Any] = field(default_factory=dict, repr=False)


@runtime_checkable
class CredentialsProvider(Protocol):
    """Supplies credentials for each new connection.

    ``refreshable`` says whether asking again with ``refresh=True`` may give different credentials (so that an
    access-denied error is worth one more connect). A provider may also have a ``tls`` mapping: the
    ``pymysql.connect`` TLS arguments it requires; the client then refuses ``connect_args`` that would switch
    them off or weaken them (``ssl_disabled``, ``ssl_verify_identity=False``, ...).
    """

    refreshable: bool

    def get_credentials(self, *, refresh: bool = False) -> Credentials:
        """Return the credentials for the next connection; ``refresh`` bypasses any cache."""
        ...


class CredentialsSource(Protocol):
    """What the client calls on option ``credentials``.

    A provider may also have ``refreshable`` (``True`` if asking again with ``refresh=True`` can fix an
    access-denied error; read with a default of ``False``) and ``tls`` (TLS arguments ``connect_args`` may not
    weaken); :class:`~serverless_mysql.CredentialsProvider` is the full protocol.
    """

    def get_credentials(self, *, refresh: bool = False) -> Credentials:
        """The credentials for the next connection; ``refresh`` bypasses any cache."""
        ...


def time_left() -> float | None:
    """Seconds a credentials provider may still spend, or ``None`` without a deadline.

    :class:`~serverless_mysql.ServerlessMySQL` sets it around every ``get_credentials`` call from its deadline
    (:meth:`~serverless_mysql.ServerlessMySQL.set_deadline`, which ``@with_mysql`` derives from the Lambda
    context). It may be zero or negative when the deadline has passed.
    """
    deadline: float | None = getattr(_budget, "deadline", None)
    return None if deadline is None else deadline - time.monotonic()


@contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    """Within the block, :func:`time_left` counts down from ``seconds`` (``None``: no deadline)."""
    previous = getattr(_budget, "deadline", None)
    _budget.deadline = None if seconds is None else time.monotonic() + seconds
    try:
        yield
    finally:
        _budget.deadline = previous
