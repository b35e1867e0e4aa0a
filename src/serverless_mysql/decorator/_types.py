"""The types the decorator's API names: made by ``typing``, so loaded on first access, not during Lambda's init.

:mod:`.options` and the package re-export them (module ``__getattr__``); type checkers see them directly.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, TypeVar

if TYPE_CHECKING:
    from ..client import ServerlessMySQL
    from ..config import CredentialsSource

__all__ = ["LambdaContextLike", "MetricsSink", "MySQLHandler", "WithMySQLOptions"]

R_co = TypeVar("R_co", covariant=True)


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
    """A handler decorated by :func:`~serverless_mysql.with_mysql`; ``handler.db`` is its client."""

    db: ServerlessMySQL
    reader: ServerlessMySQL | None
    """The reader client of ``reader_host`` (``None`` without one, or for a handler without ``reader``)."""

    def __call__(self, event: Any, context: Any, *args: Any, **kwargs: Any) -> R_co:
        """Run the handler with ``db=`` the managed client."""
        ...


class WithMySQLOptions(TypedDict, total=False):
    """Every keyword :func:`~serverless_mysql.with_mysql` accepts: the decorator's own, then the client's.

    Their meanings, defaults and ranges: ``docs/options.md``.
    """

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
    reader_host: str | None
    # ServerlessMySQL's
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
    server_role: str
    max_connection_age: float | None
    backoff: str | Callable[[int, float], float]
    base: float
    cap: float
    max_retries: int
    max_connect_wait: float | None
    pressure_idle_timeout: float | None
    max_query_retries: int
    query_retry_backoff: str | Callable[[int, float], float]
    credentials: CredentialsSource | None
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
