"""``@with_mysql``: one managed MySQL client per Lambda handler, cleaned up after every invocation.

Examples
--------
>>> from serverless_mysql import with_mysql
>>> @with_mysql  # configured by SERVERLESS_MYSQL_* environment variables
... def handler(event, context, db):
...     return db.query("SELECT name FROM items WHERE id = %s", (event["id"],))

What it does for each decorated handler:

* **Init** (when the module is imported): builds the handler's own :class:`ServerlessMySQL` from the options and
  ``SERVERLESS_MYSQL_*`` variables (explicit options win); connects lazily unless ``connect_on_init=True``.
* **Before each invocation:** bounds every wait of the client by ``context.get_remaining_time_in_millis()``
  minus ``deadline_margin`` (:meth:`ServerlessMySQL.set_deadline`).
* **After each invocation**, returned or raised: ``end()`` (housekeeping; rolls back an open transaction) or
  ``quit()``; a cleanup failure is logged and the connection closed, never raised; the handler's result or
  exception is passed on untouched. Optionally per-invocation metrics into a Powertools ``Metrics``.
* **Nested calls**: a decorated handler called by another one on the same thread with the same client
  (``db=``), or inside a transaction its caller opened, gets no deadline and no cleanup of its own: the
  outermost call owns them, and the caller decides the transaction's fate.
* **On SIGTERM** (environment shutdown, python3.12+ with an extension): closes every decorated client's
  connection with COM_QUIT, then runs the previous SIGTERM handler (or the default action).
* **SnapStart** (python3.12+, Lambda's managed runtimes): before the snapshot, closes every decorated client's
  connection; after each restore, reseeds every client's random generator (:func:`register_snapstart`).

NOTE: not built on Powertools' ``lambda_handler_decorator``: importing it imports the Tracer (and so
Powertools' tracing stack) even for users without Powertools; it re-binds options on every call, whereas we
own one client created at decoration time; and it logs every handler exception at ERROR level a second time.
We follow its conventions instead: keyword-only options, usable with or without brackets, ``functools.wraps``,
extra keyword arguments forwarded.

Modules: :mod:`.options` (the types and the decoration-time setup), :mod:`.lifecycle` (per invocation),
:mod:`.wrapping` (composition with other decorators), :mod:`.sigterm`, :mod:`.snapstart`. Dependencies run one
way: this module imports them; :mod:`.sigterm` and :mod:`.snapstart` import only :mod:`.lifecycle`.
"""

from __future__ import annotations

from collections.abc import Callable

from .._record import lazy_attributes
from ..client import ServerlessMySQL
from .lifecycle import INIT_CONNECT_BUDGET, Lifecycle, connect_on_init
from .options import Setup
from .sigterm import register_sigterm
from .snapstart import SNAPSTART_HOOKS_MODULE, register_snapstart
from .wrapping import accepts, check_handler, wrap

_TYPES = ("LambdaContextLike", "MetricsSink", "MySQLHandler", "WithMySQLOptions")

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any, TypeVar, overload

    from typing_extensions import Unpack

    from ._types import LambdaContextLike, MetricsSink, MySQLHandler, WithMySQLOptions

    R = TypeVar("R")
else:

    def overload(func: object) -> object:  # typing.overload's runtime effect but for typing.get_overloads
        return func

    # The API's types (Protocols, a TypedDict) are made by typing: loaded on first access only.
    __getattr__ = lazy_attributes(__name__, **dict.fromkeys(_TYPES, "decorator._types"))


__all__ = [
    "INIT_CONNECT_BUDGET",
    "SNAPSTART_HOOKS_MODULE",
    "LambdaContextLike",
    "MetricsSink",
    "MySQLHandler",
    "WithMySQLOptions",
    "register_sigterm",
    "register_snapstart",
    "with_mysql",
]


@overload
def with_mysql(handler: Callable[..., R], /) -> MySQLHandler[R]: ...  # noqa: D103 - ruff knows typing.overload only


@overload
def with_mysql(  # noqa: D103, F811 - ruff knows typing.overload only
    handler: None = None, /, **options: Unpack[WithMySQLOptions]
) -> Callable[[Callable[..., R]], MySQLHandler[R]]: ...


def with_mysql(handler: Callable[..., Any] | None = None, /, **options: Any) -> Any:  # noqa: F811
    """Give a Lambda handler a managed MySQL client as keyword ``db``, cleaned up after every invocation.

    Usable as ``@with_mysql``, ``@with_mysql()``, ``@with_mysql(**options)`` and ``@with_mysql(db=client)``.
    With ``reader_host``, a handler that declares a ``reader`` parameter also gets a second client there (same
    options and credentials, ``server_role="reader"``), managed like ``db``; ``wrapper.reader`` is it.
    Options are keyword-only: the decorator's own (``db``, ``secret_id``, ``iam_auth``, ``after``,
    ``deadline_margin``, ``metrics``, ``sigterm``, ...) and every option of :class:`ServerlessMySQL`; each is
    described in ``docs/options.md``. An option not given comes from its ``SERVERLESS_MYSQL_<OPTION>``
    environment variable; an explicit option always beats its variable.

    Parameters
    ----------
    handler : callable
        ``def handler(event, context, db)`` (when used without brackets).
    **options
        See :class:`WithMySQLOptions` and ``docs/options.md``.

    Returns
    -------
    MySQLHandler
        ``wrapper(event, context)``; ``wrapper.db`` is the client.

    Raises
    ------
    TypeError
        Positional options, a handler without a ``db`` parameter, an async handler, a second
        ``@with_mysql`` on the same handler, or a decorator below it that can neither be copied nor pass ``db``
        on (see :mod:`serverless_mysql.decorator.wrapping`).
    ConfigError
        An invalid option or environment variable (the message names it, never a password).
    """
    if handler is not None and (isinstance(handler, ServerlessMySQL) or not _is_handler(handler)):
        raise TypeError(
            f"with_mysql takes keyword arguments only, e.g. @with_mysql(host=...) or @with_mysql(db=client); "
            f"got a positional {type(handler).__name__}"
        )
    setup = Setup.build(options)

    def decorate(func: Callable[..., Any]) -> MySQLHandler[Any]:
        if isinstance(func, ServerlessMySQL) or not _is_handler(func):
            raise TypeError(f"with_mysql(...) decorates a handler function, not a {type(func).__name__}")
        return _decorate(func, setup)

    return decorate(handler) if handler is not None else decorate


def _decorate(func: Callable[..., Any], setup: Setup) -> MySQLHandler[Any]:
    chain, rebuild = check_handler(func)  # before the client exists: a refused handler leaves nothing behind
    user_fn = chain[-1]
    wants_reader = setup.reader_host is not None and accepts(user_fn, "reader")
    if wants_reader and not rebuild:
        check_handler(func, also="reader")  # every decorator below must pass reader= on too

    def create() -> tuple[ServerlessMySQL, ServerlessMySQL | None]:
        db = setup.create()
        # A handler with a `reader` parameter gets the reader client; one without behaves as if reader_host were
        # unset (but a reader_host that cannot work is refused all the same: it is the function's configuration).
        reader = setup.create_reader(db) if setup.reader_host is not None else None
        return db, reader if wants_reader else None

    def spawn() -> tuple[ServerlessMySQL, ServerlessMySQL | None]:  # another thread's own (see lifecycle)
        pair = create()
        if setup.sigterm:
            for client in pair:
                if client is not None:
                    register_sigterm(client)
        return pair

    db, reader = create()  # one client (and reader) per decoration, created now: Lambda's init phase
    lifecycle = Lifecycle(
        db,
        after=setup.after,
        margin=setup.deadline_margin,
        metrics=setup.metrics,
        name=getattr(user_fn, "__qualname__", repr(user_fn)),
        reader=reader,
        spawn=spawn if setup.db is None else None,
    )
    wrapper = wrap(func, chain, rebuild, lifecycle, db)
    clients = (db,) if reader is None else (db, reader)
    for client in clients:  # the reader is managed exactly like db
        if setup.sigterm:
            register_sigterm(client)
        register_snapstart(client)  # now: the snapshot is taken after init, before any invocation
        if setup.connect_on_init:
            connect_on_init(client)
    return wrapper  # type: ignore[return-value]


def _is_handler(obj: object) -> bool:
    return callable(obj) and not isinstance(obj, type)
