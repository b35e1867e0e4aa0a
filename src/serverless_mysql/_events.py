"""The ``on_*`` event handlers of one client, called by name-checked methods; a handler's failure is only logged."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .config import Config

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Events"]

logger = logging.getLogger("serverless_mysql.client")


def _call(name: str, handler: Callable[..., Any] | None, *args: object) -> None:
    if handler is None:
        return
    try:
        handler(*args)
    except Exception:  # a faulty event handler must not break connection management
        logger.warning("event handler %s raised", name, exc_info=True, extra={"event": "handler_error"})


class Events:
    """Calls the client's event handlers (the events are listed in docs/errors.md); each method is one event."""

    __slots__ = ("_cfg",)

    def __init__(self, config: Config) -> None:
        self._cfg = config

    def connect(self, conn: object) -> None:
        """A connection was opened."""
        _call("on_connect", self._cfg.on_connect, conn)

    def connect_error(self, exc: BaseException) -> None:
        """Connecting failed for good."""
        _call("on_connect_error", self._cfg.on_connect_error, exc)

    def retry(self, exc: BaseException, attempt: int, delay: float, strategy: str) -> None:
        """A refused connect is retried after ``delay`` seconds."""
        _call("on_retry", self._cfg.on_retry, exc, attempt, delay, strategy)

    def close(self) -> None:
        """The connection was closed on purpose."""
        _call("on_close", self._cfg.on_close)

    def error(self, exc: BaseException) -> None:
        """A housekeeping or rollback failure the caller does not see as an exception."""
        _call("on_error", self._cfg.on_error, exc)

    def kill(self, thread_id: int, idle: int) -> None:
        """A zombie connection was killed."""
        _call("on_kill", self._cfg.on_kill, thread_id, idle)

    def kill_error(self, exc: BaseException, thread_id: int) -> None:
        """A KILL failed."""
        _call("on_kill_error", self._cfg.on_kill_error, exc, thread_id)

    def query_retry(self, exc: BaseException, attempt: int, delay: float, strategy: str) -> None:
        """A statement the server rolled back is retried after ``delay`` seconds."""
        _call("on_query_retry", self._cfg.on_query_retry, exc, attempt, delay, strategy)
