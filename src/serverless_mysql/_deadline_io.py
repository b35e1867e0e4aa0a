"""What bounds each socket read of a driver connection by the deadline (a leaf module: no PyMySQL, no package import).

:class:`~serverless_mysql._driver.DriverConnection` keeps one :class:`IoLimits` per connection and reads through a
:class:`DeadlineSocketIO` under PyMySQL's buffered reader.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    import weakref
    from typing import Any, Protocol

    class _Bounded(Protocol):
        def _bound_io(self, *, write: bool) -> None: ...


__all__ = ["IO_SLACK", "DeadlineReached", "DeadlineSocketIO", "IoLimits"]

IO_SLACK = 0.005
"""Seconds a socket operation may overrun the deadline; spares a ``settimeout()`` call on most operations."""

_socket_readinto = socket.SocketIO.readinto  # looked up once (a zero-argument super() costs a lookup per read)


class DeadlineReached(TimeoutError):
    """The deadline passed before a socket read or write could start (PyMySQL wraps it like a socket timeout)."""


class IoLimits:
    """What bounds each socket operation of one connection: the timeouts and the deadline (shared with its reader).

    ``recheck_at`` is the clock reading up to which the socket's current timeout cannot carry an operation past
    the deadline (+ :data:`IO_SLACK`): before it, a read or write costs one clock call and one compare.
    """

    __slots__ = ("clock", "deadline", "read_cap", "recheck_at", "write_cap")

    def __init__(self, read_cap: float | None, write_cap: float | None) -> None:
        self.clock: Callable[[], float] = time.monotonic
        self.deadline: float | None = None
        self.read_cap = read_cap
        self.write_cap = write_cap
        self.recheck_at = -math.inf  # -inf: check before the next operation; +inf: never (no deadline)


class DeadlineSocketIO(socket.SocketIO):
    """The raw reader under PyMySQL's buffered ``_rfile``: bounds every ``recv`` by the time left.

    One ``_read_bytes`` may take several ``recv`` calls (a large packet, bytes trickling in); each one is bounded,
    so the whole read ends by the deadline. The buffered reader calls this only when its buffer is empty.
    """

    def __init__(self, sock: socket.socket, limits: IoLimits, owner: weakref.ref[_Bounded]) -> None:
        super().__init__(sock, "rb")
        self._limits = limits
        self._owner = owner  # weak: no reference cycle between the connection and its reader

    def readinto(self, b: Any) -> int | None:
        """Read into ``b`` as ``SocketIO`` does, with the socket's timeout first cut to the time left."""
        limits = self._limits
        recheck_at = limits.recheck_at
        if recheck_at != math.inf and limits.clock() > recheck_at:  # no clock read without a deadline
            conn = self._owner()
            if conn is not None:
                conn._bound_io(write=False)
        return _socket_readinto(self, b)
