"""A stand-in for ``snapshot_restore_py``, the SnapStart hooks module of Lambda's managed Python runtimes.

Same semantics as AWS's package (snapshot-restore-py 1.0): ``register_*`` append ``(func, args, kwargs)`` to a
module-level list and return ``func`` (so they also work as decorators); ``get_*`` return the lists. The
runtime's bootstrap runs the before-snapshot hooks by popping them (the last registered first) and the
after-restore hooks in registration order: :func:`run_before_snapshot` and :func:`run_after_restore` do the same
for tests. Put this directory first on a subprocess's ``PYTHONPATH`` to play the managed runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Hook = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]

_before_snapshot_registry: list[Hook] = []
_after_restore_registry: list[Hook] = []


def register_before_snapshot(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    """Run ``func(*args, **kwargs)`` before the snapshot is taken."""
    _before_snapshot_registry.append((func, args, kwargs))
    return func


def register_after_restore(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    """Run ``func(*args, **kwargs)`` after each restore from the snapshot."""
    _after_restore_registry.append((func, args, kwargs))
    return func


def get_before_snapshot() -> list[Hook]:
    """The registered before-snapshot hooks."""
    return _before_snapshot_registry


def get_after_restore() -> list[Hook]:
    """The registered after-restore hooks."""
    return _after_restore_registry


def run_before_snapshot() -> None:
    """What the runtime does before taking the snapshot: pop and run every hook, the last registered first."""
    hooks = get_before_snapshot()
    while hooks:
        func, args, kwargs = hooks.pop()
        func(*args, **kwargs)


def run_after_restore() -> None:
    """What the runtime does in each restored environment: run every hook in registration order."""
    for func, args, kwargs in get_after_restore():
        func(*args, **kwargs)
