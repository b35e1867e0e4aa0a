"""Every error this library raises, under one base class.

Library errors are raised ``from`` the PyMySQL error that caused them, so ``err.__cause__`` is the original
exception and :attr:`ServerlessMySQLError.errno` gives its MySQL error number. PyMySQL errors raised by the
caller's own statements (syntax errors, duplicate keys, ...) are never wrapped: they pass through unchanged.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "ConfigError",
    "ConfigTypeError",
    "ConnectError",
    "ConnectionLostError",
    "CredentialsError",
    "DeadlineExceededError",
    "RetriesExhaustedError",
    "ServerlessMySQLError",
    "TransactionAbortedError",
]


class ServerlessMySQLError(Exception):
    """Base class of every error raised by serverless_mysql."""

    @property
    def errno(self) -> int | None:
        """The MySQL error number of the PyMySQL error behind this one, if any."""
        cause = self.__cause__
        while cause is not None:
            args = getattr(cause, "args", ())
            if args and isinstance(args[0], int):
                return args[0]
            cause = cause.__cause__
        return None


class ConfigError(ServerlessMySQLError, ValueError):
    """An option has an invalid value; the message names the option and what is wrong with it."""


class ConfigTypeError(ConfigError, TypeError):
    """An option is unknown or has the wrong type; the message names the option."""


class CredentialsError(ServerlessMySQLError):
    """Credentials could not be obtained (secret missing, malformed, access denied, ...).

    The message names the problem (for instance the missing keys) and never contains a secret value.
    """


class ConnectError(ServerlessMySQLError):
    """Connecting failed with an error that retrying cannot fix (bad password, unknown database, ...)."""

    def __init__(self, message: str, *, attempts: int = 1, elapsed: float = 0.0) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.elapsed = elapsed


class RetriesExhaustedError(ConnectError):
    """Every connect retry failed with a retryable error (server full, refused, ...)."""


class DeadlineExceededError(ServerlessMySQLError):
    """The invocation's time budget ran out before the operation could finish.

    ``waited`` is how long the operation ran, in seconds; ``last_error`` is the last database error seen (also
    the ``__cause__``), or ``None``.
    """

    def __init__(self, message: str, *, waited: float, last_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.waited = waited
        self.last_error = last_error


class ConnectionLostError(ServerlessMySQLError):
    """The connection was lost while a statement may have reached the server.

    The statement was not re-run because running it twice could change data; it may or may not have been
    applied. Side-effect-free reads outside transactions and statements that provably never reached the server
    are re-run automatically instead of raising this (docs/connection-management.md, "A connection lost during a
    statement").
    """


class TransactionAbortedError(ConnectionLostError):
    """The connection was lost inside a transaction; the server rolled the transaction back.

    Nothing of the transaction was committed. The library never reconnects in the middle of a transaction.
    """


# ------------------------------------------------------------------------------------ error classification
# Server and client error numbers (PyMySQL keeps them in ``exc.args[0]``).
ER_CON_COUNT_ERROR = 1040
ER_OUT_OF_RESOURCES = 1041
ER_ACCESS_DENIED_ERROR = 1045
ER_SERVER_SHUTDOWN = 1053
ER_NO_SUCH_THREAD = 1094
ER_KILL_DENIED_ERROR = 1095
ER_ABORTING_CONNECTION = 1152
ER_TOO_MANY_USER_CONNECTIONS = 1203
ER_LOCK_WAIT_TIMEOUT = 1205
ER_LOCK_DEADLOCK = 1213
ER_USER_LIMIT_REACHED = 1226
ER_OPTION_PREVENTS_STATEMENT = 1290  # "running with the --read-only option", also --secure-file-priv and others
ER_QUERY_INTERRUPTED = 1317
ER_UNKNOWN_SYSTEM_VARIABLE = 1193
ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION = 1792  # a write in START TRANSACTION READ ONLY: the caller's own
ER_READ_ONLY_MODE = 1836  # "Running in read-only mode"
ER_CONNECTION_KILLED = 1927  # MariaDB
ER_LOCKING_SERVICE_DEADLOCK = 3132
ER_LOCKING_SERVICE_TIMEOUT = 3133
ER_CLIENT_INTERACTION_TIMEOUT = 4031  # MySQL >= 8.0.24
CR_CONN_HOST_ERROR = 2003
CR_SERVER_GONE_ERROR = 2006
CR_SERVER_LOST = 2013

# Worth another connect attempt: the server is full, out of resources, restarting or unreachable for now.
_RETRYABLE_CONNECT = frozenset(
    {
        ER_CON_COUNT_ERROR,
        ER_OUT_OF_RESOURCES,
        ER_TOO_MANY_USER_CONNECTIONS,
        ER_SERVER_SHUTDOWN,
        CR_CONN_HOST_ERROR,
        CR_SERVER_GONE_ERROR,
        CR_SERVER_LOST,
    }
)
# The connection is gone; whether the statement ran is unknown unless it provably was never sent.
_CONNECTION_LOST = frozenset(
    {
        CR_SERVER_GONE_ERROR,
        CR_SERVER_LOST,
        ER_SERVER_SHUTDOWN,
        ER_ABORTING_CONNECTION,
        ER_CONNECTION_KILLED,
        ER_CLIENT_INTERACTION_TIMEOUT,
    }
)
# The server rolled the statement back and kept the connection: safe to re-run outside a transaction.
_TRANSIENT_QUERY = frozenset(
    {
        ER_LOCK_WAIT_TIMEOUT,
        ER_LOCK_DEADLOCK,
        ER_QUERY_INTERRUPTED,
        ER_LOCKING_SERVICE_DEADLOCK,
        ER_LOCKING_SERVICE_TIMEOUT,
    }
)


def error_number(exc: BaseException) -> int | None:
    """The MySQL error number carried by a PyMySQL exception, or ``None``."""
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) and not isinstance(args[0], bool) else None


# Refusals that mean "full": a slot frees only when a client gives one back.
_SERVER_FULL = frozenset({ER_CON_COUNT_ERROR, ER_OUT_OF_RESOURCES, ER_TOO_MANY_USER_CONNECTIONS, ER_USER_LIMIT_REACHED})


def connect_failure_kind(exc: BaseException) -> Literal["full", "down"] | None:
    """``"full"`` (no free slot), ``"down"`` (unreachable, restarting) or ``None`` (no retry can fix it)."""
    if is_read_only_refusal(exc):
        return "down"  # a writer client found a read-only server: wait as for one that is down (a failover)
    if not is_retryable_connect_error(exc):
        return None
    return "full" if error_number(exc) in _SERVER_FULL else "down"


def is_retryable_connect_error(exc: BaseException) -> bool:
    """True for connect failures that another attempt may fix (1040, 1041, 1203, 1226 for connections, 2003, ...)."""
    code = error_number(exc)
    if code == CR_CONN_HOST_ERROR and _is_tls_failure(getattr(exc, "original_exception", None)):
        return False  # a bad certificate or TLS setup: every retry would fail the same way
    if code == ER_USER_LIMIT_REACHED:
        # 1226 is also raised for MAX_QUERIES_PER_HOUR and friends, which no retry fixes.
        return "max_user_connections" in str(exc)
    return code in _RETRYABLE_CONNECT


def _is_tls_failure(exc: object) -> bool:
    """A TLS error that is about certificates or protocol, not a connection dropped mid-handshake."""
    import ssl  # noqa: PLC0415 - PyMySQL has loaded it already; keeps this module's import light

    if not isinstance(exc, ssl.SSLError):
        return False
    return not isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError)


def is_connection_lost(exc: BaseException) -> bool:
    """True when ``exc`` means the connection is unusable (gone away, lost, killed, timed out by the server)."""
    import pymysql  # noqa: PLC0415 - pymysql is always loaded by the time a statement fails

    if isinstance(exc, pymysql.err.InterfaceError):
        return True  # PyMySQL raises InterfaceError(0, "") on a closed socket
    if isinstance(exc, pymysql.err.InternalError) and "Packet sequence number wrong" in str(exc):
        return True
    return error_number(exc) in _CONNECTION_LOST


def was_never_sent(exc: BaseException) -> bool:
    """True when a lost connection failed the statement's write (2006): the server never received it."""
    return error_number(exc) == CR_SERVER_GONE_ERROR


def is_timeout(exc: BaseException) -> bool:
    """True when a socket read or write timed out (a deadline or ``read_timeout``): the statement may still run."""
    return "timed out" in str(exc)


def is_read_only_refusal(exc: BaseException) -> bool:
    """True when the server refused a statement because it is read-only (a demoted writer, a replica).

    1836, or 1290 naming ``--read-only`` / ``--super-read-only``: 1290 is the server's generic "an option prevents
    this statement" (``--secure-file-priv`` ...), which stays the caller's error; so does 1792.
    """
    code = error_number(exc)
    if code == ER_READ_ONLY_MODE:
        return True
    if code != ER_OPTION_PREVENTS_STATEMENT:
        return False
    text = str(exc.args[1]).lower() if len(exc.args) > 1 else ""
    return "--read-only" in text or "--super-read-only" in text


def is_transient_query_error(exc: BaseException) -> bool:
    """True for statement errors the server rolled back (deadlock, lock wait timeout, interrupted)."""
    return error_number(exc) in _TRANSIENT_QUERY
