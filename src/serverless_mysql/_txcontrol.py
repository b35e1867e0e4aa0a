"""Transactions on the session: START, COMMIT or ROLLBACK, and holding the connection exclusively in between.

:class:`~serverless_mysql.transactions.Transaction` talks to this through its
:class:`~serverless_mysql.transactions.TransactionHost` interface (the session's :attr:`TransactionControl.tx_host`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pymysql

from ._connect import describe
from ._driver import DriverConnection
from ._session import Execute, R, Session, became_read_only
from .errors import DeadlineExceededError, TransactionAbortedError
from .results import Rows

__all__ = ["TransactionControl"]

logger = logging.getLogger("serverless_mysql.client")


class _Host:
    """The one hook through which a transaction's owner drives the session.

    The owner is a :class:`~serverless_mysql.transactions.Transaction` (this is its
    :class:`~serverless_mysql.transactions.TransactionHost`) or a SQLAlchemy connection
    (:mod:`serverless_mysql.sqlalchemy`); :meth:`statement` also serves :meth:`ServerlessMySQL.cursor`.
    """

    __slots__ = ("_session",)

    def __init__(self, session: TransactionControl) -> None:
        self._session = session

    @property
    def owner(self) -> object | None:
        """The owner of the open transaction (``None``: no transaction open through the client)."""
        return self._session._tx

    def begin(self, owner: object, statement: str, isolation: str | None) -> None:
        self._session._begin(owner, statement, isolation)

    def finish(self, owner: object, *, commit: bool) -> None:
        self._session._finish(owner, commit=commit)

    def query(self, sql: str, args: Any = None) -> Rows:
        return self.statement(sql, args, DriverConnection.run, idempotent=None)

    def statement(self, sql: str, args: Any, execute: Execute[R], *, idempotent: bool | None) -> R:
        """Run one statement under the lock and the client's rules (liveness, re-runs, retries, deadline)."""
        session = self._session
        session._acquire()
        try:
            return session._run(sql, args, idempotent, execute)
        finally:
            session._lock.release()


class TransactionControl(Session):
    """A session that runs :class:`~serverless_mysql.transactions.Transaction` objects."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._tx_host = _Host(self)

    def _refuse_inside_transaction(self, where: str) -> None:
        """Raise when a :class:`Transaction` is open: ending the connection in it would split it in two.

        Called with the lock held, so an open transaction is this thread's own.
        """
        if self._tx is not None:
            raise RuntimeError(
                f"{where} called inside an open transaction (db.transaction()); the transaction was left as it was: "
                "leave the with block (or let the chain's commit() return) first"
            )

    def _in_transaction_here(self) -> bool:
        """True while the calling thread has a :class:`Transaction` open on this client (no lock needed)."""
        return self._tx is not None and self._tx_thread == threading.get_ident()

    def _abandon_transaction(self) -> bool:
        """Roll back a :class:`Transaction` this thread opened and never ended, and release the client.

        For the end of an invocation only (``@with_mysql``): True if there was one.
        """
        tx = self._tx
        if tx is None or self._tx_thread != threading.get_ident():
            return False
        self._stats.rollbacks_on_end += 1
        self._finish(tx, commit=False)
        return True

    def _rollback_leftover(self, conn: DriverConnection, where: str) -> bool:
        """Roll back a transaction left open so that no later invocation can commit it; False if that failed."""
        if not conn.in_transaction:
            return True
        logger.warning("rolling back a transaction left open at %s", where, extra={"event": "rollback_leftover"})
        self._stats.rollbacks_on_end += 1
        try:
            self._prepare(conn)
            conn.rollback()
        except Exception as exc:  # any failure: the connection must not survive with an open transaction
            self._discard(conn, "rollback failed", mark_lost_tx=False)  # end()/quit(): nobody continues it
            self._events.error(exc)
            return False
        return True

    # ------------------------------------------------------------------------------------------ the host
    def _begin(self, tx: object, statement: str, isolation: str | None) -> None:
        """Take the connection exclusively (until :meth:`_finish`) and start the transaction."""
        self._acquire()
        try:
            if self._tx is not None:
                raise RuntimeError(
                    "a transaction is already open on this client; nested transactions are not supported"
                )
            self._lost_transaction = False
            conn = self._ensure_connection()
            self._prepare(conn)
            try:
                if isolation is not None:
                    conn.query(f"SET TRANSACTION ISOLATION LEVEL {isolation}")  # validated against a fixed list
                conn.query(statement)
            except pymysql.MySQLError as exc:
                if self._policy.is_lost(exc):
                    self._discard(conn, "lost at START TRANSACTION", mark_lost_tx=False)
                    self._raise_if_deadline(exc)
                    raise TransactionAbortedError(
                        f"the connection was lost starting a transaction ({describe(exc)})"
                    ) from exc
                raise
            self._tx = tx
            self._tx_thread = threading.get_ident()
        except BaseException:
            self._lock.release()
            raise

    def _finish(self, tx: object, *, commit: bool) -> None:
        """COMMIT or ROLLBACK, then release the connection."""
        if self._tx is not tx:
            raise RuntimeError("this transaction is not the one open on the client")
        try:
            conn = self._conn
            if conn is None:  # lost inside the transaction: the server already rolled it back
                if commit:
                    raise TransactionAbortedError(
                        "the connection was lost inside the transaction; nothing was committed"
                    )
                return
            if commit:
                self._commit(conn)
            else:
                self._rollback_or_close(conn)
        finally:
            self._tx = None
            self._lost_transaction = False
            self._lock.release()

    def _commit(self, conn: DriverConnection) -> None:
        try:
            self._prepare(conn)
        except BaseException as exc:
            # COMMIT was not sent: the transaction must not stay open on the server, where the next
            # START TRANSACTION would commit it implicitly. Closing the connection rolls it back.
            self._discard(conn, "no time left for COMMIT")
            if isinstance(exc, DeadlineExceededError):
                raise DeadlineExceededError(
                    "deadline reached before COMMIT could be sent; the transaction was rolled back",
                    waited=exc.waited,
                ) from exc
            raise
        try:
            conn.commit()
        except pymysql.MySQLError as exc:
            if self._policy.is_lost(exc):
                self._discard(conn, "lost at COMMIT")
                raise TransactionAbortedError(
                    f"the connection was lost at COMMIT ({describe(exc)}); the commit may or may not have been applied"
                ) from exc
            action = self._policy.after_read_only(exc, "COMMIT", role=self._role, in_transaction=True, reruns=0)
            if action != "keep":  # refused as read-only: nothing was committed; closing rolls it back
                self._discard(conn, "the server is read-only at COMMIT")
                if action == "abort":
                    raise became_read_only(exc) from exc
                raise
            self._rollback_or_close(conn)
            raise
        except BaseException:
            self._discard(conn, "interrupted at COMMIT")  # never keep a connection in an unknown state
            raise

    def _rollback_or_close(self, conn: DriverConnection) -> None:
        if not conn.open:
            self._discard(conn, "closed before ROLLBACK")
            return
        try:
            self._prepare(conn)
        except DeadlineExceededError:
            self._discard(conn, "no time left for ROLLBACK")  # closing the connection rolls back on the server
            return
        try:
            conn.rollback()
        except Exception as exc:
            self._discard(conn, "ROLLBACK failed")  # never leave an open transaction behind
            self._events.error(exc)
