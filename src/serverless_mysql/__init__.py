"""MySQL/MariaDB connection management for AWS Lambda."""

from __future__ import annotations

import logging

from .client import Rows, ServerlessMySQL, Stats
from .credentials import Credentials, CredentialsProvider
from .decorator import with_mysql
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
from .iam import IamAuthCredentials
from .secrets import SecretsManagerCredentials

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
    "IamAuthCredentials",
    "RetriesExhaustedError",
    "Rows",
    "SecretsManagerCredentials",
    "ServerlessMySQL",
    "ServerlessMySQLError",
    "Stats",
    "TransactionAbortedError",
    "__version__",
    "with_mysql",
]


# Silent unless the application configures logging for "serverless_mysql".
logging.getLogger(__name__).addHandler(logging.NullHandler())
