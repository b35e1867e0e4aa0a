"""Every error this library raises, under one base class.

Library errors are raised ``from`` the PyMySQL error that caused them, so ``err.__cause__`` is the original
exception and :attr:`ServerlessMySQLError.errno` gives its MySQL error number. PyMySQL errors raised by the
caller's own statements (syntax errors, duplicate keys, ...) are never wrapped: they pass through unchanged.
"""

from __future__ import annotations

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
    applied. Reads outside transactions, and statements that provably never reached the server, are re-run
    automatically instead of raising this.
    """


class TransactionAbortedError(ConnectionLostError):
    """The connection was lost inside a transaction; the server rolled the transaction back.

    Nothing of the transaction was committed. The library never reconnects in the middle of a transaction.
    """
