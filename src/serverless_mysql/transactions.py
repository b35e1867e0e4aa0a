"""Transactions that are atomic or fail, in two forms.

Context manager (commits on success, rolls back on any exception)::

    with db.transaction() as tx:
        tx.query("INSERT INTO orders (item) VALUES (%s)", ("book",))
        tx.query("UPDATE stock SET n = n - 1 WHERE item = %s", ("book",))

serverless-mysql's chain form (nothing runs before ``commit()``, which returns each statement's rows)::

    results = (
        db.transaction()
        .query("INSERT INTO orders (item) VALUES (%s)", ("book",))
        .query(lambda last, results: ("UPDATE stock SET n = n - 1 WHERE id = %s", (last.insert_id,)))
        .rollback(lambda err: print("rolled back:", err))
        .commit()
    )

While a transaction is open it holds the client exclusively: other threads' statements wait for it to end. A
connection lost inside a transaction raises :class:`TransactionAbortedError`: the library never reconnects in
the middle of a transaction and never continues it in autocommit mode. A failed ROLLBACK closes the connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, TypeAlias

from .results import Rows

__all__ = ["ActiveTransaction", "Step", "Transaction", "TransactionHost"]

logger = logging.getLogger(__name__)

_ISOLATION_LEVELS = ("READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE")

StepFn: TypeAlias = Callable[[Any, list[Any]], tuple[str, Any] | str | None]
"""A chain step computed from the previous statement's rows and all rows so far: ``(sql, args)``, ``sql`` or None."""
Step: TypeAlias = tuple[str, Any] | StepFn


class TransactionHost(Protocol):
    """What a :class:`Transaction` needs from the client it runs on (the client gives it one)."""

    def begin(self, tx: Transaction, statement: str, isolation: str | None) -> None:
        """Take the connection exclusively for ``tx`` and run ``statement`` (START TRANSACTION ...)."""
        ...

    def finish(self, tx: Transaction, *, commit: bool) -> None:
        """COMMIT (or ROLLBACK) ``tx`` and release the connection."""
        ...

    def query(self, tx: Transaction, sql: str, args: Any = None) -> Rows:
        """Run one statement inside ``tx``; raise TransactionAbortedError when ``tx`` is no longer open."""
        ...


class ActiveTransaction:
    """The handle ``with db.transaction() as tx`` gives: ``tx.query()`` runs inside the transaction."""

    def __init__(self, host: TransactionHost, tx: Transaction) -> None:
        self._host = host
        self._tx = tx

    def query(self, sql: str, args: Any = None) -> Rows:
        """Run one statement inside the transaction and return its rows.

        Raises :class:`~serverless_mysql.TransactionAbortedError` once the transaction has ended: the statement
        would otherwise run in autocommit, outside it.
        """
        return self._host.query(self._tx, sql, args)


class Transaction:
    """A transaction on a :class:`~serverless_mysql.ServerlessMySQL` client (see the module docs)."""

    def __init__(self, host: TransactionHost, *, isolation_level: str | None = None, read_only: bool = False) -> None:
        if isolation_level is not None and str(isolation_level).upper() not in _ISOLATION_LEVELS:
            raise ValueError(f"isolation_level must be one of {', '.join(_ISOLATION_LEVELS)}, not {isolation_level!r}")
        if not isinstance(read_only, bool):
            raise TypeError(f"read_only must be True or False, not {read_only!r}")
        self._host = host
        self._isolation = isolation_level.upper() if isolation_level else None
        self._read_only = read_only
        self._steps: list[Step] = []
        self._on_rollback: Callable[[BaseException], Any] | None = None

    # ------------------------------------------------------------------------------------------ context manager
    def __enter__(self) -> ActiveTransaction:
        self._host.begin(self, self._start_statement(), self._isolation)
        return ActiveTransaction(self._host, self)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self._host.finish(self, commit=True)
            return
        logger.debug("rolling back a transaction", extra={"event": "rollback", "error": type(exc).__name__})
        self._host.finish(self, commit=False)

    def _start_statement(self) -> str:
        return "START TRANSACTION READ ONLY" if self._read_only else "START TRANSACTION"

    # ------------------------------------------------------------------------------------------ chain form
    def query(self, sql: str | StepFn, args: Any = None) -> Transaction:
        """Add a statement to run at :meth:`commit`: ``(sql, args)``, or a function of (last rows, all rows)."""
        if callable(sql):
            if args is not None:
                raise TypeError("a step function takes no args; return (sql, args) from it instead")
            self._steps.append(sql)
        elif isinstance(sql, str):
            self._steps.append((sql, args))
        else:
            raise TypeError(f"query() takes an SQL string or a function, not {type(sql).__name__}")
        return self

    def rollback(self, fn: Callable[[BaseException], Any]) -> Transaction:
        """Register a function called with the error when the transaction is rolled back."""
        if not callable(fn):
            raise TypeError("rollback() takes a function of the error")
        self._on_rollback = fn
        return self

    def commit(self) -> list[Rows]:
        """Run every statement in one transaction and commit; returns each statement's rows.

        On any error the transaction is rolled back, the ``rollback`` handler gets the error, and the error is
        raised. A skipped step (its function returned ``None``) contributes an empty list.
        """
        results: list[Rows] = []
        try:
            with self as tx:
                for step in self._steps:
                    if callable(step):
                        last = results[-1] if results else None
                        produced = step(last, list(results))
                        if produced is None:
                            results.append(Rows())
                            continue
                        sql, args = (produced, None) if isinstance(produced, str) else _unpack(produced)
                    else:
                        sql, args = step
                    results.append(tx.query(sql, args))
        except BaseException as exc:
            if self._on_rollback is not None:
                try:
                    self._on_rollback(exc)
                except Exception:
                    logger.warning("transaction rollback handler raised", exc_info=True)
            raise
        return results


def _unpack(produced: object) -> tuple[str, Any]:
    if isinstance(produced, (tuple, list)) and len(produced) in (1, 2) and isinstance(produced[0], str):
        return produced[0], (produced[1] if len(produced) == 2 else None)
    raise TypeError(f"a transaction step must return (sql, args), sql or None, not {type(produced).__name__}")
