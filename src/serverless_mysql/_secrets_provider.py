"""Powertools' ``SecretsProvider`` with Secrets Manager calls bounded in time; imported on the first fetch only.

botocore's defaults allow 60 s to connect, 60 s per read and several attempts, so a Secrets Manager endpoint that
never answers (a Lambda in a VPC without a NAT gateway or VPC endpoint) would hold the invocation until Lambda
kills it. Here a fetch gets at most :data:`MAX_ATTEMPTS` attempts of :data:`CONNECT_TIMEOUT` +
:data:`READ_TIMEOUT`, and when the client's deadline (:func:`~serverless_mysql.credentials.time_left`) leaves
less, one attempt that fits in what is left.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from botocore.config import Config

from ._secrets_common import MIN_FETCH_TIME, DeadlineReachedError
from .credentials import time_left

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

__all__ = ["CONNECT_TIMEOUT", "MAX_ATTEMPTS", "READ_TIMEOUT", "BoundedSecretsProvider", "client_config"]

CONNECT_TIMEOUT = 2.0
"""Seconds to open a connection to Secrets Manager (botocore: 60)."""
READ_TIMEOUT = 5.0
"""Seconds to wait for its answer (botocore: 60); GetSecretValue normally answers in well under a second."""
MAX_ATTEMPTS = 2
"""Attempts per fetch, the first included: one retry after throttling, a 5xx or a dropped connection."""
_RETRY_PAUSE = 1.0  # botocore's standard retry mode waits at most 1 s before the second attempt
_FULL_FETCH = MAX_ATTEMPTS * (CONNECT_TIMEOUT + READ_TIMEOUT) + _RETRY_PAUSE


def client_config(left: float | None) -> Config:
    """The botocore settings of a fetch that may take ``left`` seconds (``None``: no deadline)."""
    if left is None or left >= _FULL_FETCH:
        connect, read, attempts = CONNECT_TIMEOUT, READ_TIMEOUT, MAX_ATTEMPTS
    else:  # one attempt that fits; connecting gets at most a third of it
        connect = min(CONNECT_TIMEOUT, left / 3)
        read = min(READ_TIMEOUT, left - connect)
        attempts = 1
    return Config(
        connect_timeout=connect,
        read_timeout=read,
        retries={"total_max_attempts": attempts, "mode": "standard"},
    )


class BoundedSecretsProvider(SecretsProvider):
    """A ``SecretsProvider`` (same API, same cache) whose ``GetSecretValue`` calls are bounded in time.

    Its own client (used for the calls without a deadline, and by ``set``/``get_multiple``) has the fixed
    bounds; a fetch under a deadline shorter than those gets a client made for the time left (a few ms warm).
    """

    def __init__(self, session: boto3.session.Session, region: str | None) -> None:
        self._session = session
        self._region = region
        self._session_lock = threading.Lock()
        super().__init__(boto3_client=self._new_client(None))

    def _new_client(self, left: float | None) -> SecretsManagerClient:
        with self._session_lock:  # a boto3 Session must not make clients in two threads at once
            return self._session.client("secretsmanager", region_name=self._region, config=client_config(left))

    def _get(self, name: str, **sdk_options: Any) -> str | bytes:
        left = time_left()
        if left is not None and left < MIN_FETCH_TIME:
            raise DeadlineReachedError("no time left before the deadline")  # not even tried
        client = self.client if left is None or left >= _FULL_FETCH else self._new_client(left)
        sdk_options["SecretId"] = name
        response = client.get_secret_value(**sdk_options)
        if "SecretString" in response:
            return response["SecretString"]
        return response["SecretBinary"]
