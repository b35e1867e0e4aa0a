"""SIGTERM: close every decorated client's connection when Lambda shuts the environment down.

Lambda sends SIGTERM to the runtime on shutdown only when an extension is registered (python3.12+; the layer's
shutdown extension, or any other). The handler is installed once per process, at decoration time, and chains to
the handler that was there before.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any

from .lifecycle import terminate_quietly

if TYPE_CHECKING:
    from types import FrameType

    from ..client import ServerlessMySQL

__all__ = ["register_sigterm"]

logger = logging.getLogger(__name__)

_sigterm_lock = threading.Lock()
_sigterm_clients: weakref.WeakSet[ServerlessMySQL] = weakref.WeakSet()
_sigterm_previous: Any = None
_sigterm_installed = False


def register_sigterm(db: ServerlessMySQL) -> bool:
    """Close ``db``'s connection on SIGTERM; installs the process-wide handler once. False if it cannot.

    The handler calls :meth:`ServerlessMySQL.terminate` (COM_QUIT, no housekeeping, no lock waits) for every
    registered client, then the SIGTERM handler that was installed before it; if that was the default action
    it restores the default and re-sends SIGTERM, so the process still ends as it would have. Signal handlers
    can only be installed from the main thread: elsewhere this logs and returns False.
    """
    global _sigterm_previous, _sigterm_installed
    import signal  # noqa: PLC0415 - at decoration time, not at `import serverless_mysql`

    with _sigterm_lock:
        _sigterm_clients.add(db)
        if _sigterm_installed:
            return True
        try:
            previous = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError) as exc:  # not the main thread
            logger.debug("SIGTERM handler not installed: %s", exc, extra={"event": "sigterm_unavailable"})
            return False
        _sigterm_previous = previous
        _sigterm_installed = True
        logger.debug("SIGTERM handler installed", extra={"event": "sigterm_installed"})
        return True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Runs between two bytecodes of the main thread: terminate() takes no blocking lock and sends one packet.
    import signal  # noqa: PLC0415 - loaded by register_sigterm: a sys.modules lookup, no import lock

    for db in list(_sigterm_clients):
        terminate_quietly(db)
    previous = _sigterm_previous
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:  # SIG_DFL, or None (installed outside Python): the default action
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
