"""SnapStart: no connection in the snapshot, fresh entropy after each restore.

Lambda's managed Python runtimes (python3.12+) ship the hooks module :data:`SNAPSTART_HOOKS_MODULE`; elsewhere
:func:`register_snapstart` does nothing and returns False.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref

from .lifecycle import INIT_CONNECT_BUDGET, terminate_quietly

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

    from ..client import ServerlessMySQL

__all__ = ["SNAPSTART_HOOKS_MODULE", "register_snapstart"]

logger = logging.getLogger(__name__)

SNAPSTART_HOOKS_MODULE = "snapshot_restore_py"
"""The runtime hooks module of Lambda's managed Python runtimes (python3.12+); absent elsewhere."""
SNAPSTART_INIT = ("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
"""The variable and value of an init phase that ends in a snapshot: the runtime runs the hooks then only."""

_snapstart_lock = threading.Lock()
_snapstart_clients: weakref.WeakSet[ServerlessMySQL] = weakref.WeakSet()
_snapstart_hooks: bool | None = None  # None: not looked for yet; then whether the hooks are registered


def register_snapstart(db: ServerlessMySQL) -> bool:
    """Close ``db``'s connection before a SnapStart snapshot and reseed it after each restore. False if no hooks.

    Registers two hooks with the runtime (once per process, the first time a client is registered):
    before the snapshot every registered client is closed (``quit()``, else ``terminate()``), so no connection
    is captured; after each restore every client draws fresh entropy (:meth:`ServerlessMySQL.reseed`), so the
    environments restored from one snapshot do not all draw the same backoff delays, and its first statement
    connects. The hooks module is imported here only, and only in an init that ends in a snapshot
    (:data:`SNAPSTART_INIT`): ``import serverless_mysql`` does not look for it. Registering must happen during
    init (the snapshot is taken right after it).
    """
    global _snapstart_hooks
    with _snapstart_lock:
        if _snapstart_hooks is None:
            _snapstart_hooks = _install_snapstart_hooks()
        if _snapstart_hooks:
            _snapstart_clients.add(db)
        return _snapstart_hooks


def _install_snapstart_hooks() -> bool:
    if os.environ.get(SNAPSTART_INIT[0]) != SNAPSTART_INIT[1]:
        return False  # no snapshot follows this init: the hooks would never run (and the module imports typing)
    import importlib  # noqa: PLC0415 - at decoration time, not at `import serverless_mysql`

    try:
        hooks: Any = importlib.import_module(SNAPSTART_HOOKS_MODULE)
        hooks.register_before_snapshot(_before_snapshot)
        hooks.register_after_restore(_after_restore)
    except ImportError:  # not one of Lambda's managed runtimes: there is no snapshot
        return False
    except Exception as exc:  # a broken hooks module must not break the handler's import
        logger.warning("SnapStart hooks not registered: %s: %s", type(exc).__name__, exc)
        return False
    logger.debug("SnapStart hooks registered", extra={"event": "snapstart_hooks"})
    return True


def _before_snapshot() -> None:
    for db in list(_snapstart_clients):
        _close_for_snapshot(db)
    logger.debug("connections closed before the snapshot", extra={"event": "snapstart_before"})


def _close_for_snapshot(db: ServerlessMySQL) -> None:
    db.set_deadline(INIT_CONNECT_BUDGET)  # a rollback of a transaction left open by init must not hang the hook
    try:
        db.quit()  # COM_QUIT: the server forgets the session now, not after wait_timeout
    except Exception as exc:
        logger.warning("closing the connection before the snapshot failed: %s: %s", type(exc).__name__, exc)
        terminate_quietly(db)
    finally:
        db.set_deadline(None)


def _after_restore() -> None:
    for db in list(_snapstart_clients):
        _reseed_quietly(db)
    logger.debug("clients reseeded after the restore", extra={"event": "snapstart_restore"})


def _reseed_quietly(db: ServerlessMySQL) -> None:
    try:
        db.reseed()
    except Exception as exc:  # never fail the restore: the jitter is then only less random
        logger.warning("reseeding after the restore failed: %s: %s", type(exc).__name__, exc)
