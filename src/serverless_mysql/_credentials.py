"""Connection credentials and the time budget of a provider (no typing: loaded in Lambda's init phase).

:mod:`serverless_mysql.credentials` is the public module (it adds the provider protocols, which need typing).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from ._record import field, record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Credentials", "time_budget", "time_left"]

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


Credentials.__module__ = "serverless_mysql.credentials"  # its public home (repr of the class, pickling)
