"""MySQL/MariaDB connection management for AWS Lambda."""

from __future__ import annotations

import logging

from .client import Rows, ServerlessMySQL, Stats
from .credentials import Credentials, CredentialsProvider
from .errors import (
    ConfigError,
    ConfigTypeError,
    ConnectError,
    ConnectionLostError,
    CredentialsError,
    DeadlineExceededError,
    RetriesExhaustedError,
    ServerlessMySQLError,
    TransactionAbortedError,
)

__version__ = "0.1.0"
__all__ = [
    "ConfigError",
    "ConfigTypeError",
    "ConnectError",
    "ConnectionLostError",
    "Credentials",
    "CredentialsError",
    "CredentialsProvider",
    "DeadlineExceededError",
    "RetriesExhaustedError",
    "Rows",
    "ServerlessMySQL",
    "ServerlessMySQLError",
    "Stats",
    "TransactionAbortedError",
    "__version__",
]

# Silent unless the application configures logging for "serverless_mysql".
logging.getLogger(__name__).addHandler(logging.NullHandler())
