"""SIGTERM: close every decorated client's connection when Lambda shuts the environment down.

Lambda sends SIGTERM to the runtime on shutdown only when an extension is registered (python3.12+; the layer's
shutdown extension, or any other). The handler is installed once per process, at decoration time, and chains to
the handler that was there before.

NOTE: a Python signal handler runs only when the main thread executes Python code. Lambda's runtime client
(awslambdaric) waits for the next event inside a native call; on Lambda's managed runtimes (``AWS_EXECUTION_ENV``
one of ``AWS_Lambda_python3.12`` ...) it makes that call from a helper thread, elsewhere (container images,
custom runtimes) from the main thread, where a handler of ours would keep SIGTERM pending and the process alive
until SIGKILL. There the handler is not installed: SIGTERM's default action ends the process at once, and the
kernel's closing of the socket frees the server's slot just as fast (docs/shutdown-extension.md).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import weakref

from .lifecycle import terminate_quietly

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    import signal as _signal  # typeshed has no stub for the C module; same functions, enums instead of ints
    from types import FrameType
    from typing import Any

    from ..client import ServerlessMySQL
else:
    # NOTE: _signal, not signal: the interpreter loaded it at startup, while signal builds its enums at import
    # (about 0.5 ms of Lambda's init). signal's functions only wrap these, converting ints to enums and back.
    import _signal

__all__ = ["main_thread_blocked_by_runtime", "register_sigterm"]

logger = logging.getLogger(__name__)

_sigterm_lock = threading.Lock()
_sigterm_clients: weakref.WeakSet[ServerlessMySQL] = weakref.WeakSet()
_sigterm_previous: Any = None
_sigterm_installed = False
# Where awslambdaric's LambdaConfigProvider cannot be read: the environments in which it polls from a thread.
_THREAD_POLLING_ENVS = frozenset(f"AWS_Lambda_python3.{minor}" for minor in range(12, 16))


def main_thread_blocked_by_runtime() -> bool:
    """Whether Lambda's runtime client (awslambdaric) waits for events in a native call on the main thread.

    True only when awslambdaric runs this process and ``AWS_EXECUTION_ENV`` is not one where it polls from a
    thread: there a Python signal handler cannot run between invocations.
    """
    if "awslambdaric" not in sys.modules:
        return False
    config = sys.modules.get("awslambdaric.lambda_config")
    provider = getattr(config, "LambdaConfigProvider", None)
    polling_envs = getattr(provider, "SUPPORTED_THREADPOLLING_ENVS", _THREAD_POLLING_ENVS)
    return os.environ.get("AWS_EXECUTION_ENV") not in polling_envs


def register_sigterm(db: ServerlessMySQL) -> bool:
    """Close ``db``'s connection on SIGTERM; installs the process-wide handler once. False if it cannot.

    The handler calls :meth:`ServerlessMySQL.terminate` (COM_QUIT, no housekeeping, no lock waits) for every
    registered client, then the SIGTERM handler that was installed before it; if that was the default action
    it restores the default and re-sends SIGTERM, so the process still ends as it would have. Signal handlers
    can only be installed from the main thread: elsewhere this logs and returns False. It also returns False,
    leaving SIGTERM's action alone, where the runtime client blocks the main thread in native code
    (:func:`main_thread_blocked_by_runtime`).
    """
    global _sigterm_previous, _sigterm_installed
    with _sigterm_lock:
        _sigterm_clients.add(db)
        if _sigterm_installed:
            return True
        if main_thread_blocked_by_runtime():
            logger.debug(
                "SIGTERM handler not installed: the runtime client blocks the main thread",
                extra={"event": "sigterm_unavailable"},
            )
            return False
        try:
            previous = _signal.getsignal(_signal.SIGTERM)
            _signal.signal(_signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError) as exc:  # not the main thread
            logger.debug("SIGTERM handler not installed: %s", exc, extra={"event": "sigterm_unavailable"})
            return False
        _sigterm_previous = previous
        _sigterm_installed = True
        logger.debug("SIGTERM handler installed", extra={"event": "sigterm_installed"})
        return True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Runs between two bytecodes of the main thread: terminate() takes no blocking lock and sends one packet.
    for db in list(_sigterm_clients):
        terminate_quietly(db)
    previous = _sigterm_previous
    if callable(previous):
        previous(signum, frame)
    elif previous != _signal.SIG_IGN:  # SIG_DFL, or None (installed outside Python): the default action
        _signal.signal(signum, _signal.SIG_DFL)
        os.kill(os.getpid(), signum)
