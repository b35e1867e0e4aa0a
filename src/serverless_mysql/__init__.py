"""MySQL/MariaDB connection management for AWS Lambda."""

from __future__ import annotations

import logging

from ._credentials import Credentials
from .client import Rows, ServerlessMySQL, Stats
from .errors import (
    ConcurrentInvocationError,
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

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

    from .credentials import CredentialsProvider
    from .decorator import with_mysql
    from .iam import IamAuthCredentials
    from .secrets import SecretsManagerCredentials

__version__ = "0.1.0"
__all__ = [
    "ConcurrentInvocationError",
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

# Imported on first access (PEP 562): code that uses only the client does not pay for compiling and loading
# the decorator, its environment parsing, or the AWS credential providers.
_LAZY = {
    "with_mysql": "decorator",
    "IamAuthCredentials": "iam",
    "SecretsManagerCredentials": "secrets",
    "CredentialsProvider": "credentials",  # a typing.Protocol: typing is not loaded before
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - already loaded by the interpreter; a dict lookup

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# Silent unless the application configures logging for "serverless_mysql".
logging.getLogger(__name__).addHandler(logging.NullHandler())
