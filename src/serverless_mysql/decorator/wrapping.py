"""How ``@with_mysql`` puts its per-invocation work around the user's function, below other decorators.

NOTE: composition with other decorators in any order. ``@event_source`` (like every middleware made with
``lambda_handler_decorator`` that takes no ``**kwargs``) cannot forward ``db=`` to the function below it. So
when ``@with_mysql`` sits on top of other decorators, it builds its own copy of their wrappers with its
per-invocation work right around the user's function: each wrapper that keeps the function below it in a
closure cell is copied (same code, globals and other cells, so the decorator's state stays shared) with a new
cell pointing at the copy below, or at our shim for the innermost. The decorators' own wrappers are never
modified (one wrapper decorated twice, e.g. for a primary and a replica, gives two independent handlers).
``@with_mysql`` therefore behaves as the innermost decorator (its metrics are flushed by
``@metrics.log_metrics``, its logs carry ``@logger.inject_lambda_context``'s keys, its housekeeping is inside
the Tracer's subsegment). A wrapper that cannot be copied (a class with ``__call__``, a function that reaches
the next one through a helper or an attribute) gets ``db=`` as a keyword instead, and then every decorator
below must accept it (``db`` or ``**kwargs``): one that does not is refused at decoration time.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Callable
from types import CellType, FunctionType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..client import ServerlessMySQL
    from .lifecycle import Lifecycle

__all__ = ["MARK", "accepts", "check_handler", "wrap"]

MARK = "__serverless_mysql_lifecycle__"
"""The attribute on a decorated handler (and our wrappers) holding its :class:`~.lifecycle.Lifecycle`."""


def check_handler(func: Callable[..., Any], *, also: str = "") -> tuple[list[Callable[..., Any]], bool]:
    """The wrapper chain of ``func`` (ending with the user's function) and whether it can be rebuilt.

    Raises ``TypeError`` for an async handler, one without a ``db`` parameter, one already decorated, or a
    decorator in the chain that can neither be copied nor pass ``db=`` on: decided before the client exists, so a
    refused handler leaves no client (and no connection) behind.
    """
    chain = _chain(func)
    user_fn = chain[-1]
    if inspect.iscoroutinefunction(user_fn):
        raise TypeError("with_mysql does not support async handlers (Lambda's Python runtime calls them synchronously)")
    _check_signature(user_fn)
    rebuild = all(_rebuildable(layer, inner) for layer, inner in itertools.pairwise(chain))
    if not rebuild:
        _check_forwarding(chain, "db")
        if also:
            _check_forwarding(chain, also)
    return chain, rebuild


def accepts(func: Callable[..., Any], name: str) -> bool:
    """True when ``func`` has a parameter ``name`` that a keyword argument can fill."""
    try:
        param = inspect.signature(func).parameters.get(name)
    except (TypeError, ValueError):
        return False
    return param is not None and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)


def wrap(
    func: Callable[..., Any], chain: list[Callable[..., Any]], rebuild: bool, lifecycle: Lifecycle, db: ServerlessMySQL
) -> Callable[..., Any]:
    """The decorated handler: ``lifecycle`` around the user's function, ``handler.db`` the client."""
    run_invocation = lifecycle.run

    def managed(target: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(target)
        def run(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            return run_invocation(target, event, context, args, kwargs)

        setattr(run, MARK, lifecycle)
        return run

    wrapper: Callable[..., Any]
    if len(chain) > 1 and rebuild:
        # Our own copy of the decorators' wrappers with ours innermost (see the module's NOTE); `func` is untouched.
        top = _rebuild(chain, managed(chain[-1]))

        @functools.wraps(func)
        def passthrough(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            return top(event, context, *args, **kwargs)

        setattr(passthrough, MARK, lifecycle)
        wrapper = passthrough
    else:
        wrapper = managed(func)
    setattr(wrapper, "db", db)  # noqa: B010 - the handler's attribute, typed by MySQLHandler
    setattr(wrapper, "reader", lifecycle.reader)  # noqa: B010 - None without reader_host
    return wrapper


def _cell_holds(cell: CellType, obj: object) -> bool:
    try:
        return cell.cell_contents is obj
    except ValueError:  # an empty cell
        return False


def _rebuildable(layer: Callable[..., Any], inner: Callable[..., Any]) -> bool:
    """True when ``layer`` is a plain function that calls ``inner`` through its own closure, and only through it.

    Then a copy of ``layer`` with a new cell in that place calls whatever we put there. A function that reaches
    ``inner`` through a helper sharing the cell (the copy would not redirect the helper), a global, a default
    argument or an object's attribute is not: it gets ``db=`` as a keyword instead.
    """
    if not isinstance(layer, FunctionType) or not layer.__closure__:
        return False
    target = {id(cell) for cell in layer.__closure__ if _cell_holds(cell, inner)}
    if not target:
        return False
    for cell in layer.__closure__:
        if id(cell) in target:
            continue
        try:
            content = cell.cell_contents
        except ValueError:
            continue
        helper_cells = getattr(content, "__closure__", None) if isinstance(content, FunctionType) else None
        if helper_cells and any(id(c) in target for c in helper_cells):
            return False
    return True


def _rebuild(chain: list[Callable[..., Any]], shim: Callable[..., Any]) -> Callable[..., Any]:
    """Copies of the wrappers in ``chain`` (outermost first) with ``shim`` in place of the user's function.

    Each copy shares its original's code, globals and every other closure cell (so a decorator's state, e.g. a
    Logger, stays one), and gets a fresh cell for the function below it. The originals are never modified.
    """
    below = shim
    for layer, inner in reversed(list(itertools.pairwise(chain))):  # from the innermost wrapper out
        if not isinstance(layer, FunctionType) or layer.__closure__ is None:  # excluded by _rebuildable
            raise TypeError(f"cannot copy {layer!r}")
        cells = tuple(CellType(below) if _cell_holds(cell, inner) else cell for cell in layer.__closure__)
        copy = FunctionType(layer.__code__, layer.__globals__, layer.__name__, layer.__defaults__, cells)
        functools.update_wrapper(copy, layer)  # name, doc, annotations, its __dict__ (attributes decorators set)
        copy.__kwdefaults__ = None if layer.__kwdefaults__ is None else dict(layer.__kwdefaults__)
        copy.__wrapped__ = below  # type: ignore[attr-defined]
        below = copy
    return below


def _check_forwarding(chain: list[Callable[..., Any]], keyword: str) -> None:
    """Refuse, at decoration time, a wrapper that cannot be copied and cannot pass ``keyword=`` down either."""
    for layer in chain[:-1]:
        try:
            params = inspect.signature(layer, follow_wrapped=False).parameters
        except (TypeError, ValueError):  # nothing to check (some C callables)
            continue
        if not any(
            (p.name == keyword and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)) or p.kind == p.VAR_KEYWORD
            for p in params.values()
        ):
            # Not __qualname__: functools.wraps copies the wrapped function's onto the wrapper.
            if isinstance(layer, FunctionType):
                name = getattr(layer.__code__, "co_qualname", layer.__code__.co_name)
            else:
                name = f"{type(layer).__qualname__} object"
            user = getattr(chain[-1], "__qualname__", repr(chain[-1]))
            raise TypeError(
                f"with_mysql cannot hand {keyword!r} to {user} through the decorator {name}: it is not a function "
                "that keeps the function it wraps in its closure, and it takes no keyword "
                f"{keyword!r} (or **kwargs) to pass on; put @with_mysql directly on the function, below that decorator"
            )


def _chain(func: Callable[..., Any]) -> list[Callable[..., Any]]:
    """``func``, the wrappers below it and last the user's function, following ``__wrapped__``."""
    chain = [func]
    seen = {id(func)}
    current = func
    while True:
        if getattr(current, MARK, None) is not None:
            raise TypeError(
                f"{getattr(current, '__qualname__', current)!r} is already decorated with with_mysql; one client "
                "per handler (for a second database build another ServerlessMySQL)"
            )
        inner = getattr(current, "__wrapped__", None)
        if inner is None or not callable(inner) or id(inner) in seen:
            return chain
        seen.add(id(inner))
        chain.append(inner)
        current = inner


def _check_signature(user_fn: Callable[..., Any]) -> None:
    try:
        params = inspect.signature(user_fn).parameters
    except (TypeError, ValueError):  # builtins, some C callables: nothing to check
        return
    ok = any(
        (p.name == "db" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)) or p.kind == p.VAR_KEYWORD
        for p in params.values()
    )
    if not ok:
        name = getattr(user_fn, "__qualname__", repr(user_fn))
        raise TypeError(f"{name} must accept the client as keyword argument 'db': def handler(event, context, db)")
