"""The DB-API connection a SQLAlchemy engine sees (:mod:`serverless_mysql.sqlalchemy`): a stand-in for the client.

Kept apart from :mod:`serverless_mysql.sqlalchemy` so that the engine's module holds only SQLAlchemy's side (the
dialect, the pool, ``create_engine``); this one imports no SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cursor import TupleCursor
from .errors import TransactionAbortedError

if TYPE_CHECKING:
    from .client import ServerlessMySQL

__all__ = ["ClientConnection"]


class ClientConnection:
    """The DB-API connection one SQLAlchemy connection sees: the client, whichever PyMySQL connection it holds now.

    The engine's pool makes one per checkout, so each SQLAlchemy connection (or ``Session`` transaction) has its own
    autocommit mode, isolation level and transaction, in whatever thread; all of them run on the client's one
    server connection. It never closes the client's connection. Transactions are begun and ended by
    :class:`ServerlessMySQLDialect` (one at a time per client).
    """

    def __init__(self, client: ServerlessMySQL) -> None:
        self.client = client
        self.autocommit_mode = False  # isolation_level="AUTOCOMMIT": no transaction at all
        self.isolation: str | None = None  # a non-default level, set before each START TRANSACTION
        self._began = False  # this connection began a transaction and did not end it (it may have been rolled back)

    # ---- DB-API --------------------------------------------------------------------------------------------
    def cursor(self, *args: Any) -> TupleCursor:
        """A cursor on the managed connection (tuple rows; buffered, like PyMySQL's default)."""
        return TupleCursor(self.client)

    def commit(self) -> None:
        """For DB-API use of ``engine.raw_connection()``: COMMIT a transaction begun with a plain statement."""
        if self.client._tx_host.owner is None and self.client.in_transaction:
            self.client.query("COMMIT")

    def rollback(self) -> None:
        """For DB-API use of ``engine.raw_connection()``: ROLLBACK a transaction begun with a plain statement."""
        if self.client._tx_host.owner is None and self.client.in_transaction:
            self.client.query("ROLLBACK")

    def close(self) -> None:
        """Nothing: the connection is the client's, and stays open for the next invocation."""

    def ping(self, reconnect: bool = False) -> None:
        """The client's liveness check (and reconnect, outside a transaction)."""
        if not self.client.in_transaction:
            self.client.connect()

    def get_server_info(self) -> str:
        """The server's version string, from the handshake (no round trip)."""
        return str(self._pymysql().get_server_info())

    def character_set_name(self) -> str:
        """The connection's character set (``utf8mb4`` unless the client's ``connect_args`` say otherwise)."""
        return str(self._pymysql().character_set_name())

    def get_autocommit(self) -> bool:
        """True outside transactions (the managed connection autocommits)."""
        return not self.client.in_transaction

    def _pymysql(self) -> Any:
        self.client.connect()
        conn = self.client.get_client()
        assert conn is not None  # connect() returned
        return conn

    # ---- transactions, called by the dialect ---------------------------------------------------------------
    def begin(self) -> None:
        """START TRANSACTION for this connection; it holds the client until it ends."""
        if self.autocommit_mode:
            return
        self.client._tx_host.begin(self, "START TRANSACTION", self.isolation)
        self._began = True

    def end(self, *, commit: bool) -> None:
        """COMMIT or ROLLBACK this connection's transaction; nothing at all when it began none."""
        if not self._began:
            return  # AUTOCOMMIT, the pool's reset on check-in: nothing to end
        if self.client._tx_host.owner is self:
            # Marked ended only once it is: a refusal (another thread's call) leaves it to its own thread to end.
            self.client._tx_host.finish(self, commit=commit)
            self._began = False
            return
        self._began = False
        if commit:
            raise TransactionAbortedError(
                "the transaction was rolled back when the invocation that began it ended (or its connection was "
                "closed); nothing of it was committed"
            )

    def check(self) -> None:
        """Refuse a statement of a transaction the client no longer has open: it would run in autocommit."""
        if self._began and self.client._tx_host.owner is not self:
            raise TransactionAbortedError(
                "this SQLAlchemy transaction was rolled back when the invocation that began it ended; nothing of "
                "it was committed: roll back (or close) the session or connection and begin again"
            )
