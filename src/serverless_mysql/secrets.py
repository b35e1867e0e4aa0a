"""Connection credentials from an AWS Secrets Manager secret (RDS secret JSON), cached and refreshed on rotation.

Powertools' ``parameters.get_secret`` and boto3 are imported on first use only, so ``import serverless_mysql``
stays light. On Lambda, attach AWS's Powertools layer (boto3 ships with the runtime).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._secrets_common import MIN_FETCH_TIME, DeadlineReachedError
from .credentials import Credentials
from .errors import ConfigError, ConfigTypeError, CredentialsError, DeadlineExceededError

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

__all__ = ["MIN_FETCH_TIME", "DeadlineReachedError", "SecretsManagerCredentials", "credentials_from_secret"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_AGE = 300.0
"""Seconds a fetched secret is reused before it is fetched again (Powertools' default as well)."""

_REQUIRED_KEYS = ("username", "password")


class SecretsManagerCredentials:
    """Credentials read from a Secrets Manager secret in the RDS JSON format.

    The secret is a JSON object with ``username`` and ``password`` and optionally ``host``, ``port`` (number or
    numeric string) and ``dbname``; other keys (``engine``, ``masterarn``, ...) are ignored. RDS-managed master
    user secrets hold only ``username`` and ``password``: give host, port and database as client options.
    Options given explicitly to the client beat the secret's fields.

    The secret is fetched with Powertools' ``parameters.get_secret`` and cached for ``max_age`` seconds. The
    client asks again with ``refresh=True`` (Powertools' ``force_fetch``) once after an access-denied error
    (1045), so a rotated password costs one extra fetch and no failed invocation.

    Fetches are bounded in time: at most 2 attempts of 2 s to connect + 5 s to read, and under the client's
    deadline (``@with_mysql``: the Lambda timeout minus ``deadline_margin``) one attempt that fits in the time
    left, so an unreachable endpoint ends in :class:`CredentialsError` (or :class:`DeadlineExceededError`)
    before Lambda's timeout. When Powertools' default secrets provider does not exist yet, the one created here
    (and registered for ``get_secret``) has these bounds. A ``boto3_client`` you pass, or a default provider
    created before (by you, or by your own ``get_secret`` call), keeps its own timeouts (botocore's: 60 s):
    give it a ``botocore.config.Config`` with short ``connect_timeout``/``read_timeout``.

    Parameters
    ----------
    secret_id : str
        Name or ARN of the secret.
    max_age : float
        Seconds the fetched secret is cached (default 300); ``0`` fetches it for every new connection.
    region : str, optional
        AWS Region of the secret; by default boto3's (``AWS_REGION`` on Lambda).
    boto3_session : boto3.session.Session, optional
        Session to create the Secrets Manager client from.
    boto3_client : SecretsManagerClient, optional
        A ready Secrets Manager client (for instance one with a custom endpoint); beats ``boto3_session``.

    Raises
    ------
    ConfigError
        ``secret_id`` is empty or ``max_age`` is negative.

    Example
    -------
    >>> from serverless_mysql import ServerlessMySQL, SecretsManagerCredentials  # doctest: +SKIP
    >>> db = ServerlessMySQL(credentials=SecretsManagerCredentials("prod/shop/mysql"))  # doctest: +SKIP
    """

    refreshable = True

    def __init__(
        self,
        secret_id: str,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        region: str | None = None,
        boto3_session: boto3.session.Session | None = None,
        boto3_client: SecretsManagerClient | None = None,
    ) -> None:
        if not isinstance(secret_id, str) or not secret_id.strip():
            raise ConfigTypeError("option 'secret_id' must be a non-empty str (the secret's name or ARN)")
        if isinstance(max_age, bool) or not isinstance(max_age, (int, float)):
            raise ConfigTypeError(f"option 'secret_max_age' must be a number of seconds, not {type(max_age).__name__}")
        if not math.isfinite(max_age) or max_age < 0:
            raise ConfigError(f"option 'secret_max_age' must be >= 0 seconds, not {max_age!r}")
        if region is not None and (not isinstance(region, str) or not region):
            raise ConfigTypeError("option 'region' must be a non-empty str or None")
        self.secret_id = secret_id
        self.max_age = float(max_age)
        self.region = region
        self._session = boto3_session
        self._client = boto3_client
        self._provider: Any = None

    def __repr__(self) -> str:
        return f"SecretsManagerCredentials({self.secret_id!r}, max_age={self.max_age:g})"

    def get_credentials(self, *, refresh: bool = False) -> Credentials:
        """Return the secret's credentials; ``refresh=True`` bypasses the cache.

        Raises
        ------
        CredentialsError
            The secret cannot be fetched, is binary, is not a JSON object, or lacks ``username``/``password``.
            The message names the problem and the missing keys, never a value.
        """
        raw = self._fetch(refresh)
        credentials = credentials_from_secret(raw, self.secret_id)
        logger.debug(
            "credentials from secret",
            extra={"event": "secret", "secret_id": self.secret_id, "refresh": refresh, "user": credentials.user},
        )
        return credentials

    def _fetch(self, refresh: bool) -> object:
        # NOTE: we fetch the raw string (transform=None) and parse it ourselves: Powertools' "json" transform
        # silently decodes a SecretBinary as UTF-8, and its decode errors quote bytes of the secret.
        try:
            from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError  # noqa: PLC0415
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise CredentialsError(
                "secret_id needs aws-lambda-powertools (attach AWS's Powertools layer, or pip install "
                "'serverless-mysql[aws]')"
            ) from exc
        started = time.monotonic()
        try:
            return self._secrets_provider().get(self.secret_id, max_age=math.ceil(self.max_age), force_fetch=refresh)
        except GetParameterError as exc:
            if isinstance(exc.__context__, DeadlineReachedError):  # not tried: Powertools wraps every error
                raise DeadlineExceededError(
                    f"deadline reached while fetching secret {self.secret_id!r}: {_sdk_reason(exc)}",
                    waited=time.monotonic() - started,
                    last_error=exc,
                ) from exc
            raise CredentialsError(f"secret {self.secret_id!r} could not be fetched: {_sdk_reason(exc)}") from None

    def _secrets_provider(self) -> Any:
        if self._session is None and self._client is None and self.region is None:
            from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS  # noqa: PLC0415

            # Powertools' default provider, as get_secret() uses it (one cache, cleared by clear_caches()); when
            # nobody created it yet, we create it, with bounded timeouts instead of botocore's 60 s.
            provider = DEFAULT_PROVIDERS.get("secrets")
            if provider is None:
                provider = DEFAULT_PROVIDERS.setdefault("secrets", _bounded_provider(None, None))
            return provider
        if self._provider is None:
            if self._client is not None:
                from aws_lambda_powertools.utilities.parameters import SecretsProvider  # noqa: PLC0415

                self._provider = SecretsProvider(boto3_client=self._client)
            else:
                self._provider = _bounded_provider(self._session, self.region)
        return self._provider


def _bounded_provider(session: boto3.session.Session | None, region: str | None) -> Any:
    import boto3  # noqa: PLC0415

    from ._secrets_provider import BoundedSecretsProvider  # noqa: PLC0415

    return BoundedSecretsProvider(session or boto3.session.Session(), region)


def credentials_from_secret(value: object, secret_id: str = "the secret") -> Credentials:  # noqa: S107 - a label
    """Turn a secret's value (the ``SecretString``) in RDS JSON format into :class:`Credentials`.

    Parameters
    ----------
    value : object
        The secret's value: a JSON text, or an already parsed mapping.
    secret_id : str
        Used in error messages only.

    Raises
    ------
    CredentialsError
        Naming the problem (binary, not JSON, not an object, missing keys, wrong types); never a value.
    """
    if value is None:
        raise CredentialsError(f"secret {secret_id!r} has no value")
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise CredentialsError(
            f"secret {secret_id!r} is binary (SecretBinary); store the RDS JSON "
            '{"username": ..., "password": ..., "host": ..., "port": ..., "dbname": ...} as SecretString'
        )
    if isinstance(value, str):
        import json  # noqa: PLC0415 - keeps `import serverless_mysql` light

        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            # JSONDecodeError's message holds only a position, but say nothing more than that.
            raise CredentialsError(
                f"secret {secret_id!r} is not valid JSON (error at line {exc.lineno} column {exc.colno}); "
                "expected the RDS secret format with 'username' and 'password'"
            ) from None
    if not isinstance(value, Mapping):
        raise CredentialsError(
            f"secret {secret_id!r} must be a JSON object with 'username' and 'password', not a JSON {_json_kind(value)}"
        )
    missing = [key for key in _REQUIRED_KEYS if value.get(key) in (None, "")]
    if missing:
        present = sorted(str(k) for k in value)
        raise CredentialsError(
            f"secret {secret_id!r} lacks {', '.join(map(repr, missing))} (keys present: {present or 'none'})"
        )
    for key in ("username", "password", "host", "dbname"):
        if value.get(key) is not None and not isinstance(value[key], str):
            raise CredentialsError(
                f"secret {secret_id!r}: key {key!r} must be a string, not a JSON {_json_kind(value[key])}"
            )
    return Credentials(
        user=value["username"],
        password=value["password"],
        host=value.get("host") or None,
        port=_port(value.get("port"), secret_id),
        database=value.get("dbname") or None,
    )


def _port(raw: object, secret_id: str) -> int | None:
    if raw is None or raw == "":
        return None
    port: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        port = raw
    elif isinstance(raw, str) and raw.strip().isdigit():
        port = int(raw.strip())
    elif isinstance(raw, float) and raw.is_integer():
        port = int(raw)
    if port is None or not 1 <= port <= 65535:
        raise CredentialsError(f"secret {secret_id!r}: key 'port' must be a port number (1-65535) or numeric string")
    return port


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "null" if value is None else type(value).__name__


def _sdk_reason(exc: BaseException) -> str:
    # GetParameterError carries the SDK's message ("... can't find the specified secret.", AccessDenied ...),
    # which names the secret and the caller's role, never the secret value.
    return str(exc) or type(exc).__name__
