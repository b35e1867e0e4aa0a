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

import contextlib
import functools
import inspect
import itertools
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from types import CellType, FunctionType
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, TypeVar, overload

from .client import ServerlessMySQL, Stats
from .config import Config, parse_url
from .env import DECORATOR_DEFAULTS, read_env
from .errors import ConfigError, ConfigTypeError

if TYPE_CHECKING:
    import random
    from types import FrameType

    from typing_extensions import Unpack

__all__ = ["LambdaContextLike", "MetricsSink", "MySQLHandler", "WithMySQLOptions", "with_mysql"]

logger = logging.getLogger(__name__)

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

INIT_CONNECT_BUDGET = 5.0
"""Seconds ``connect_on_init`` may spend (Lambda's init phase has 10 s, and a failure only delays the connect)."""

_MARK = "__serverless_mysql_lifecycle__"
_OWN_OPTIONS = frozenset(DECORATOR_DEFAULTS) | {"metrics", "db"}
_CREDENTIAL_OPTIONS = ("secret_id", "secret_max_age", "iam_auth", "region")


class LambdaContextLike(Protocol):
    """What the decorator uses of Lambda's context object (it also works with ``None``)."""

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before Lambda stops the invocation."""
        ...


class MetricsSink(Protocol):
    """What the decorator uses of a Powertools ``Metrics`` object."""

    def add_metric(self, name: str, unit: str, value: float) -> None:
        """Record one value of a metric (flushed by ``@metrics.log_metrics``)."""
        ...


class MySQLHandler(Protocol[R_co]):
    """A handler decorated by :func:`with_mysql`; ``handler.db`` is its client."""

    db: ServerlessMySQL

    def __call__(self, event: Any, context: Any, *args: Any, **kwargs: Any) -> R_co:
        """Run the handler with ``db=`` the managed client."""
        ...


class WithMySQLOptions(TypedDict, total=False):
    """Every keyword :func:`with_mysql` accepts: the decorator's own, then :class:`ServerlessMySQL`'s."""

    # the decorator's own
    db: ServerlessMySQL
    secret_id: str | None
    secret_max_age: float
    iam_auth: bool
    region: str | None
    after: str
    deadline_margin: float
    metrics: MetricsSink | None
    sigterm: bool
    connect_on_init: bool
    # ServerlessMySQL's (see the README's options table)
    host: str
    port: int
    user: str | None
    password: str | None
    database: str | None
    url: str | None
    connect_args: Mapping[str, Any]
    connect_timeout: float
    read_timeout: float | None
    write_timeout: float | None
    ping_after_idle: float | None
    manage_conns: bool
    conn_utilization: float
    max_conns_freq: float
    used_conns_freq: float | None
    zombie_min_timeout: float
    zombie_max_timeout: float
    max_kills: int
    rds_proxy: bool | None
    backoff: str | Callable[[int, float], float]
    base: float
    cap: float
    max_retries: int
    max_connect_wait: float | None
    pressure_idle_timeout: float | None
    max_query_retries: int
    query_retry_backoff: str | Callable[[int, float], float]
    credentials: Any
    on_connect: Callable[..., Any] | None
    on_connect_error: Callable[..., Any] | None
    on_retry: Callable[..., Any] | None
    on_close: Callable[..., Any] | None
    on_error: Callable[..., Any] | None
    on_kill: Callable[..., Any] | None
    on_kill_error: Callable[..., Any] | None
    on_query_retry: Callable[..., Any] | None
    clock: Callable[[], float] | None
    sleep: Callable[[float], None] | None
    random: random.Random | None


# ---------------------------------------------------------------------------------------------- the decorator
@overload
def with_mysql(handler: Callable[..., R], /) -> MySQLHandler[R]: ...


@overload
def with_mysql(
    handler: None = None, /, **options: Unpack[WithMySQLOptions]
) -> Callable[[Callable[..., R]], MySQLHandler[R]]: ...


def with_mysql(handler: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Give a Lambda handler a managed MySQL client as keyword ``db``, cleaned up after every invocation.

    Usable as ``@with_mysql``, ``@with_mysql()``, ``@with_mysql(**options)`` and ``@with_mysql(db=client)``.
    Options are keyword-only. Without options (or for options not given) configuration comes from the
    ``SERVERLESS_MYSQL_<OPTION>`` environment variables; an explicit option always beats its variable.

    Parameters
    ----------
    handler : callable
        ``def handler(event, context, db)`` (when used without brackets).
    db : ServerlessMySQL, optional
        A client built elsewhere; then no client option may be given (environment variables for client
        options are ignored).
    secret_id : str, optional
        Secrets Manager secret (name or ARN) holding the RDS secret JSON; see
        :class:`~serverless_mysql.SecretsManagerCredentials`.
    secret_max_age : float
        Seconds the secret is cached (300).
    iam_auth : bool
        Connect with RDS IAM auth tokens (False); needs ``host`` and ``user``. The token is sent only over TLS
        that verified the server's certificate and host name (``ssl_ca`` in ``connect_args``/``url``, else the
        system CA store); TLS arguments that would weaken that are refused.
    region : str, optional
        AWS Region for ``secret_id``/``iam_auth`` (default: boto3's, ``AWS_REGION`` on Lambda).
    after : {"end", "quit"}
        After each invocation: ``end()`` (housekeeping, keep the connection for the next one; default) or
        ``quit()`` (close it).
    deadline_margin : float
        Seconds kept free before Lambda's timeout (0.5): every database wait ends by then with
        :class:`~serverless_mysql.DeadlineExceededError`.
    metrics : Metrics, optional
        A Powertools ``Metrics`` object; each invocation adds ``ConnectRetries``, ``ZombiesKilled``,
        ``HousekeepingTime`` (ms), ``ConnectionUtilization`` (%, when measured) and ``ConnectionReused``
        (0/1, when the database was used). Flush them with ``@metrics.log_metrics``.
    sigterm : bool
        Close the connection on SIGTERM (True).
    connect_on_init : bool
        Connect at decoration time (False; do not use with SnapStart).
    **options
        Every :class:`ServerlessMySQL` option (``host``, ``user``, ``url``, ``conn_utilization``, ...).

    Returns
    -------
    MySQLHandler
        ``wrapper(event, context)``; ``wrapper.db`` is the client.

    Raises
    ------
    TypeError
        Positional options, a handler without a ``db`` parameter, an async handler, a second
        ``@with_mysql`` on the same handler, or a decorator below it that can neither be copied nor pass ``db``
        on (see the module's NOTE).
    ConfigError
        An invalid option or environment variable (the message names it, never a password).
    """
    if handler is not None and (isinstance(handler, ServerlessMySQL) or not _is_handler(handler)):
        raise TypeError(
            f"with_mysql takes keyword arguments only, e.g. @with_mysql(host=...) or @with_mysql(db=client); "
            f"got a positional {type(handler).__name__}"
        )
    setup = _Setup.build(options)

    def decorate(func: Callable[..., Any]) -> MySQLHandler[Any]:
        if isinstance(func, ServerlessMySQL) or not _is_handler(func):
            raise TypeError(f"with_mysql(...) decorates a handler function, not a {type(func).__name__}")
        return _decorate(func, setup)

    return decorate(handler) if handler is not None else decorate


class _Setup:
    """Options resolved at decoration time; :meth:`create` makes the decoration's own client."""

    # NOTE: a plain class, not a dataclass: generating a dataclass costs ~1 ms of import time.
    __slots__ = (
        "after",
        "client_options",
        "connect_on_init",
        "db",
        "deadline_margin",
        "env_sources",
        "iam_auth",
        "metrics",
        "region",
        "secret_id",
        "secret_max_age",
        "sigterm",
    )

    def __init__(self, *, client_options: Mapping[str, Any], env_sources: Mapping[str, str], **own: Any) -> None:
        self.client_options = client_options
        self.env_sources = env_sources
        self.db: ServerlessMySQL | None = own["db"]
        self.after: str = own["after"]
        self.deadline_margin: float = own["deadline_margin"]
        self.metrics: MetricsSink | None = own["metrics"]
        self.sigterm: bool = own["sigterm"]
        self.connect_on_init: bool = own["connect_on_init"]
        self.secret_id: str | None = own["secret_id"]
        self.secret_max_age: float | None = own["secret_max_age"]
        self.iam_auth: bool = own["iam_auth"]
        self.region: str | None = own["region"]

    @classmethod
    def build(cls, options: Mapping[str, Any]) -> _Setup:
        unknown = sorted(set(options) - Config.option_names() - _OWN_OPTIONS)
        if unknown:
            import difflib  # noqa: PLC0415 - only for the error message

            known = sorted(Config.option_names() | _OWN_OPTIONS)
            hints = [f"{name!r}" + _suggest(difflib.get_close_matches(name, known, n=1)) for name in unknown]
            raise ConfigTypeError(f"with_mysql: unknown option(s) {', '.join(hints)}")
        env = read_env()
        db = options.get("db")
        explicit = dict(options)
        if db is not None:
            if not isinstance(db, ServerlessMySQL):
                raise ConfigTypeError(f"option 'db' must be a ServerlessMySQL client, not {type(db).__name__}")
            clashing = sorted((set(explicit) & Config.option_names()) | (set(explicit) & set(_CREDENTIAL_OPTIONS)))
            if clashing:
                raise ConfigTypeError(
                    f"with_mysql(db=...) uses a client built elsewhere: give {', '.join(map(repr, clashing))} to "
                    "ServerlessMySQL(...) when you build it, not to with_mysql"
                )
            ignored = sorted(v for o, (v, _) in env.items() if o in Config.option_names() or o in _CREDENTIAL_OPTIONS)
            if ignored:
                logger.debug("db= given: ignoring client variables", extra={"event": "env_ignored", "vars": ignored})
            env = {o: src for o, src in env.items() if o not in Config.option_names() and o not in _CREDENTIAL_OPTIONS}
        env = _drop_overridden(env, explicit)
        merged = {o: value for o, (_, value) in env.items()} | explicit
        own = {name: merged.get(name, default) for name, default in DECORATOR_DEFAULTS.items()}
        setup = cls(
            client_options={k: v for k, v in merged.items() if k not in _OWN_OPTIONS},
            env_sources={o: var for o, (var, _) in env.items()},
            db=db,
            metrics=merged.get("metrics"),
            **own,
        )
        setup._validate()
        return setup

    def _validate(self) -> None:
        if self.after not in ("end", "quit"):
            raise self._error(ConfigError(f"option 'after' must be 'end' or 'quit', not {self.after!r}"))
        for name in ("sigterm", "connect_on_init", "iam_auth"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise self._error(ConfigTypeError(f"option {name!r} must be True or False, not {value!r}"))
        for name in ("deadline_margin", "secret_max_age"):
            value = getattr(self, name)
            if value is None and name == "secret_max_age":  # not given: the provider's default
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._error(ConfigTypeError(f"option {name!r} must be a number of seconds, not {value!r}"))
            if not math.isfinite(value) or value < 0:
                raise self._error(ConfigError(f"option {name!r} must be >= 0 seconds, not {value!r}"))
        # Checked here too: without secret_id/iam_auth nothing else would look at it.
        if self.region is not None and (not isinstance(self.region, str) or not self.region.strip()):
            raise self._error(
                ConfigTypeError(
                    f"option 'region' must be a non-empty str (an AWS Region, e.g. 'eu-west-1') or None, "
                    f"not {self.region!r}"
                )
            )
        if self.metrics is not None and not callable(getattr(self.metrics, "add_metric", None)):
            kind = type(self.metrics).__name__
            raise ConfigTypeError(f"option 'metrics' must be a Powertools Metrics object (add_metric), not {kind}")
        sources = [n for n in ("credentials", "secret_id") if self._given(n)] + (["iam_auth"] if self.iam_auth else [])
        if len(sources) > 1:
            raise self._error(ConfigError(f"options {' and '.join(map(repr, sources))} exclude each other"))
        if self.iam_auth and self.client_options.get("password") is not None:
            raise self._error(
                ConfigError("option 'password' cannot be used with option 'iam_auth' (the token is the password)")
            )

    def _given(self, name: str) -> bool:
        value = self.secret_id if name == "secret_id" else self.client_options.get(name)
        return value is not None

    def _error(self, exc: ConfigError) -> ConfigError:
        """``exc`` with the environment variable(s) behind the named option(s) added to the message."""
        text = str(exc)
        named = [var for option, var in self.env_sources.items() if f"'{option}'" in text]
        if not named:
            return exc
        return type(exc)(f"{text} (set by environment variable {', '.join(named)})")

    def create(self) -> ServerlessMySQL:
        """The decoration's client: the given ``db``, or a new one (at decoration time: Lambda's init phase)."""
        if self.db is not None:
            return self.db
        options = dict(self.client_options)
        try:
            if self.secret_id is not None:
                from .secrets import SecretsManagerCredentials  # noqa: PLC0415

                if self.secret_max_age is None:  # the provider's default
                    options["credentials"] = SecretsManagerCredentials(self.secret_id, region=self.region)
                else:
                    options["credentials"] = SecretsManagerCredentials(
                        self.secret_id, max_age=self.secret_max_age, region=self.region
                    )
            elif self.iam_auth:
                options["credentials"] = self._iam_credentials(options)
            return ServerlessMySQL(**options)
        except ConfigError as exc:
            raise self._error(exc) from None

    def _iam_credentials(self, options: Mapping[str, Any]) -> Any:
        from .iam import TLS_ARGS, IamAuthCredentials, verified_tls  # noqa: PLC0415

        config = Config.from_options(**options)
        if "host" not in config.explicit:
            raise ConfigError("option 'iam_auth' needs option 'host' (the endpoint the token is signed for)")
        if config.user is None:
            raise ConfigError("option 'iam_auth' needs option 'user' (the IAM-enabled database user)")
        # Checked here to name connect_args (or the URL / variable it came from) rather than the provider's tls.
        given = {k: v for k, v in config.connect_args.items() if k in TLS_ARGS or k == "ssl_disabled"}
        tls = verified_tls(given, where="connect_args")
        tls.pop("ssl_disabled", None)  # present only as False here
        return IamAuthCredentials(host=config.host, user=config.user, port=config.port, region=self.region, tls=tls)


def _is_handler(obj: object) -> bool:
    return callable(obj) and not isinstance(obj, type)


def _suggest(matches: list[str]) -> str:
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def _drop_overridden(env: dict[str, tuple[str, Any]], explicit: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    """Environment values that an explicit option overrides, even indirectly, are dropped."""
    dropped: set[str] = set(explicit)
    if explicit.get("url") is not None:
        # An explicit URL beats the variables for the parts it sets (a variable would otherwise win as a keyword).
        dropped |= set(parse_url(explicit["url"]))
    if any(explicit.get(n) for n in ("credentials", "secret_id", "iam_auth")):
        dropped |= {"credentials", "secret_id", "iam_auth"}  # one credential source; the explicit one wins
    return {o: src for o, src in env.items() if o not in dropped}


# ---------------------------------------------------------------------------------------------- per invocation
class _Lifecycle:
    """The per-invocation work around one handler: deadline, cleanup, metrics."""

    def __init__(self, db: ServerlessMySQL, setup: _Setup, name: str) -> None:
        self.db = db
        self.after = setup.after
        self.margin = setup.deadline_margin
        self.metrics = setup.metrics
        self.name = name

    def run(self, call: Callable[[], R], context: object) -> R:
        db = self.db
        running = _running_here()
        if id(db) in running or _inside_transaction(db):
            # A decorated handler called by another one sharing db= (or inside a transaction of the caller's):
            # the outermost call owns the deadline and the cleanup, and the caller decides the transaction's fate.
            return call()
        running.add(id(db))
        try:
            return self._run(call, context)
        finally:
            running.discard(id(db))

    def _run(self, call: Callable[[], R], context: object) -> R:
        db = self.db
        # Counters are only compared when someone looks: metrics, or debug logging.
        before = db.get_stats() if self.metrics is not None or logger.isEnabledFor(logging.DEBUG) else None
        budget = self._budget(context)
        db.set_deadline(budget)
        if before is not None:
            logger.debug("invocation start", extra={"event": "invoke", "handler": self.name, "deadline": budget})
        try:
            return call()
        finally:
            self._finish(before)

    def _budget(self, context: object) -> float | None:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if not callable(remaining):
            return None  # no Lambda context (local runs, tests): no deadline
        try:
            millis = remaining()
        except Exception:
            logger.debug("get_remaining_time_in_millis() failed: no deadline", exc_info=True)
            return None
        if isinstance(millis, bool) or not isinstance(millis, (int, float)) or not math.isfinite(millis):
            return None
        return max(0.0, millis / 1000.0 - self.margin)

    def _finish(self, before: Stats | None) -> None:
        db = self.db
        started = time.monotonic()
        try:
            # A db.transaction() opened by this invocation and never ended (its with block was not left): roll it
            # back and release the client, or end()/quit() would refuse and the next invocation would run in it.
            _abandon_transaction(db)
            if self.after == "quit":
                db.quit()
            else:
                db.end()
            if db.in_transaction:  # end()/quit() roll back; never let a transaction reach the next invocation
                logger.warning("transaction still open after %s(): closing the connection", self.after)
                db.terminate()
        except Exception as exc:
            logger.warning(
                "cleanup after the handler failed, closing the connection: %s: %s",
                type(exc).__name__,
                exc,
                extra={"event": "cleanup_error", "handler": self.name},
            )
            _terminate_quietly(db)
        finally:
            db.set_deadline(None)
        if before is None:
            return
        try:
            self._report(before, db.get_stats(), time.monotonic() - started)
        except Exception:
            logger.warning("reporting invocation metrics failed", exc_info=True, extra={"event": "metrics_error"})

    def _report(self, before: Stats, after: Stats, cleanup_seconds: float) -> None:
        connects = after.connects - before.connects
        queries = after.queries - before.queries
        used = connects > 0 or queries > 0
        measured = after.housekeeping_runs > before.housekeeping_runs and after.last_utilization is not None
        values: dict[str, Any] = {
            "connects": connects,
            "connect_retries": after.connect_retries - before.connect_retries,
            "reconnects": after.reconnects - before.reconnects,
            "queries": queries,
            "zombies_killed": after.zombies_killed - before.zombies_killed,
            "housekeeping_ms": round((after.housekeeping_seconds - before.housekeeping_seconds) * 1000.0, 3),
            "utilization": after.last_utilization if measured else None,
            "reused": (connects == 0) if used else None,
            "cleanup_ms": round(cleanup_seconds * 1000.0, 3),
        }
        logger.debug("invocation done", extra={"event": "invoke_done", "handler": self.name, **values})
        sink = self.metrics
        if sink is None:
            return
        sink.add_metric(name="ConnectRetries", unit="Count", value=values["connect_retries"])
        sink.add_metric(name="ZombiesKilled", unit="Count", value=values["zombies_killed"])
        sink.add_metric(name="HousekeepingTime", unit="Milliseconds", value=values["housekeeping_ms"])
        if values["utilization"] is not None:
            sink.add_metric(name="ConnectionUtilization", unit="Percent", value=round(values["utilization"] * 100, 2))
        if values["reused"] is not None:
            sink.add_metric(name="ConnectionReused", unit="Count", value=int(values["reused"]))


_nesting = threading.local()


def _running_here() -> set[int]:
    """The ids of the clients with a decorated invocation running on this thread (nested calls share the thread)."""
    running: set[int] | None = getattr(_nesting, "clients", None)
    if running is None:
        running = _nesting.clients = set()
    return running


def _inside_transaction(db: ServerlessMySQL) -> bool:
    try:
        return db._in_transaction_here()
    except AttributeError:  # a subclass that skips ServerlessMySQL.__init__ (test doubles)
        return False


def _abandon_transaction(db: ServerlessMySQL) -> None:
    try:
        abandoned = db._abandon_transaction()
    except AttributeError:  # a subclass that skips ServerlessMySQL.__init__ (test doubles)
        return
    if abandoned:
        logger.warning("a transaction was left open by the handler: rolled back", extra={"event": "rollback_leftover"})


def _terminate_quietly(db: ServerlessMySQL) -> None:
    with contextlib.suppress(Exception):  # the connection is being given up either way
        db.terminate()


# ---------------------------------------------------------------------------------------------- wrapping
def _decorate(func: Callable[..., Any], setup: _Setup) -> MySQLHandler[Any]:
    chain = _chain(func)
    user_fn = chain[-1]
    if inspect.iscoroutinefunction(user_fn):
        raise TypeError("with_mysql does not support async handlers (Lambda's Python runtime calls them synchronously)")
    _check_signature(user_fn)
    # Decide before the client exists: a handler we refuse must not leave a client (or a connection) behind.
    rebuild = all(_rebuildable(layer, inner) for layer, inner in itertools.pairwise(chain))
    if not rebuild:
        _check_forwarding(chain)
    db = setup.create()  # one client per decoration, created now: Lambda's init phase
    lifecycle = _Lifecycle(db, setup, getattr(user_fn, "__qualname__", repr(user_fn)))

    def managed(target: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(target)
        def run(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            return lifecycle.run(lambda: target(event, context, *args, db=db, **kwargs), context)

        setattr(run, _MARK, lifecycle)
        return run

    wrapper: Callable[..., Any]
    if len(chain) > 1 and rebuild:
        # Our own copy of the decorators' wrappers with ours innermost (see the module's NOTE); `func` is untouched.
        top = _rebuild(chain, managed(user_fn))

        @functools.wraps(func)
        def passthrough(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            return top(event, context, *args, **kwargs)

        setattr(passthrough, _MARK, lifecycle)
        wrapper = passthrough
    else:
        wrapper = managed(func)
    setattr(wrapper, "db", db)  # noqa: B010 - the handler's attribute, typed by MySQLHandler
    if setup.sigterm:
        register_sigterm(db)
    register_snapstart(db)  # now: the snapshot is taken after init, before any invocation
    if setup.connect_on_init:
        _connect_on_init(db)
    return wrapper  # type: ignore[return-value]


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


def _check_forwarding(chain: list[Callable[..., Any]]) -> None:
    """Refuse, at decoration time, a wrapper that cannot be copied and cannot pass ``db=`` down either."""
    for layer in chain[:-1]:
        try:
            params = inspect.signature(layer, follow_wrapped=False).parameters
        except (TypeError, ValueError):  # nothing to check (some C callables)
            continue
        if not any(
            (p.name == "db" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)) or p.kind == p.VAR_KEYWORD
            for p in params.values()
        ):
            # Not __qualname__: functools.wraps copies the wrapped function's onto the wrapper.
            if isinstance(layer, FunctionType):
                name = getattr(layer.__code__, "co_qualname", layer.__code__.co_name)
            else:
                name = f"{type(layer).__qualname__} object"
            user = getattr(chain[-1], "__qualname__", repr(chain[-1]))
            raise TypeError(
                f"with_mysql cannot hand 'db' to {user} through the decorator {name}: it is not a function that "
                "keeps the function it wraps in its closure, and it takes no keyword 'db' (or **kwargs) to pass "
                "on; put @with_mysql directly on the function, below that decorator"
            )


def _connect_on_init(db: ServerlessMySQL) -> None:
    db.set_deadline(INIT_CONNECT_BUDGET)
    try:
        db.connect()
    except Exception as exc:
        logger.warning(
            "connect during init failed, connecting at first use instead: %s: %s",
            type(exc).__name__,
            exc,
            extra={"event": "init_connect_error"},
        )
    finally:
        db.set_deadline(None)


def _chain(func: Callable[..., Any]) -> list[Callable[..., Any]]:
    """``func``, the wrappers below it and last the user's function, following ``__wrapped__``."""
    chain = [func]
    seen = {id(func)}
    current = func
    while True:
        if getattr(current, _MARK, None) is not None:
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


# ---------------------------------------------------------------------------------------------- SIGTERM
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
        _terminate_quietly(db)
    previous = _sigterm_previous
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:  # SIG_DFL, or None (installed outside Python): the default action
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


# ---------------------------------------------------------------------------------------------- SnapStart
SNAPSTART_HOOKS_MODULE = "snapshot_restore_py"
"""The runtime hooks module of Lambda's managed Python runtimes (python3.12+); absent elsewhere."""

_snapstart_lock = threading.Lock()
_snapstart_clients: weakref.WeakSet[ServerlessMySQL] = weakref.WeakSet()
_snapstart_hooks: bool | None = None  # None: not looked for yet; then whether the hooks are registered


def register_snapstart(db: ServerlessMySQL) -> bool:
    """Close ``db``'s connection before a SnapStart snapshot and reseed it after each restore. False if no hooks.

    Registers two hooks with the runtime (once per process, the first time a client is registered):
    before the snapshot every registered client is closed (``quit()``, else ``terminate()``), so no connection
    is captured; after each restore every client draws fresh entropy (:meth:`ServerlessMySQL.reseed`), so the
    environments restored from one snapshot do not all draw the same backoff delays, and its first statement
    connects. The hooks module is imported here only, and only where it exists: ``import serverless_mysql``
    does not look for it. Registering must happen during init (the snapshot is taken right after it).
    """
    global _snapstart_hooks
    with _snapstart_lock:
        if _snapstart_hooks is None:
            _snapstart_hooks = _install_snapstart_hooks()
        if _snapstart_hooks:
            _snapstart_clients.add(db)
        return _snapstart_hooks


def _install_snapstart_hooks() -> bool:
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
        _terminate_quietly(db)
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
