"""IAM database authentication: a fresh RDS auth token for every new connection, over TLS only.

boto3 is imported on first use only (the Lambda runtime ships it; our layer does not vendor it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .credentials import Credentials
from .errors import ConfigError, ConfigTypeError, CredentialsError

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_rds.client import RDSClient

__all__ = ["TLS_ARGS", "IamAuthCredentials", "requires_tls"]

logger = logging.getLogger(__name__)

TLS_ARGS = ("ssl", "ssl_ca", "ssl_cert", "ssl_key", "ssl_verify_cert", "ssl_verify_identity")
"""``pymysql.connect`` arguments that make TLS required (PyMySQL 1.2: any of them given and not false)."""

_TLS_HINT = (
    "pass the RDS CA bundle, e.g. connect_args={'ssl_ca': '/opt/python/global-bundle.pem', "
    "'ssl_verify_identity': True} (or ?ssl_ca=... in the url, or SERVERLESS_MYSQL_CONNECT_ARGS)"
)


def requires_tls(connect_args: Mapping[str, Any]) -> bool:
    """True when these ``pymysql.connect`` arguments make PyMySQL refuse to connect without TLS."""
    if connect_args.get("ssl_disabled"):
        return False
    return any(connect_args.get(key) not in (None, False, "", {}) for key in TLS_ARGS)


class IamAuthCredentials:
    """RDS IAM authentication tokens (``rds.generate_db_auth_token``), one per new connection.

    A token is signed locally with the function's AWS credentials (no API call) and is valid for 15 minutes,
    for connecting only: the connection outlives it. The token travels as a clear-text password (the server
    asks for ``mysql_clear_password``, which PyMySQL supports natively), so TLS is required.

    Parameters
    ----------
    host : str
        The DB instance, cluster or RDS Proxy endpoint (the token is signed for it).
    user : str
        The database user, created ``IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'``.
    port : int
        The endpoint's port (3306).
    region : str, optional
        AWS Region of the database; by default boto3's (``AWS_REGION`` on Lambda).
    ssl_ca : str, optional
        Path of the CA bundle (RDS ``global-bundle.pem``); shorthand for ``tls={"ssl_ca": ...,
        "ssl_verify_identity": True}``.
    tls : Mapping[str, Any], optional
        ``pymysql.connect`` TLS arguments (``ssl_ca``, ``ssl_verify_identity``, ``ssl`` (an ``SSLContext``), ...).
        They are added to the connection's arguments.
    boto3_session : boto3.session.Session, optional
        Session to create the RDS client from.
    boto3_client : RDSClient, optional
        A ready RDS client; beats ``boto3_session``.

    Raises
    ------
    ConfigError
        No TLS configured (neither ``ssl_ca`` nor ``tls``), or an empty host or user.

    Example
    -------
    >>> creds = IamAuthCredentials(host="shop.proxy-abc.eu-west-1.rds.amazonaws.com", user="app",
    ...                            ssl_ca="/opt/python/global-bundle.pem")  # doctest: +SKIP
    >>> db = ServerlessMySQL(credentials=creds, database="shop")  # doctest: +SKIP
    """

    refreshable = False  # every connect already gets a fresh token; a second one would not help on 1045

    def __init__(
        self,
        *,
        host: str,
        user: str,
        port: int = 3306,
        region: str | None = None,
        ssl_ca: str | None = None,
        tls: Mapping[str, Any] | None = None,
        boto3_session: boto3.session.Session | None = None,
        boto3_client: RDSClient | None = None,
    ) -> None:
        for name, value in (("host", host), ("user", user)):
            if not isinstance(value, str) or not value:
                raise ConfigTypeError(f"iam_auth needs option {name!r}: a non-empty str")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ConfigError(f"option 'port' must be an int between 1 and 65535, not {port!r}")
        if region is not None and (not isinstance(region, str) or not region):
            raise ConfigTypeError("option 'region' must be a non-empty str or None")
        tls_args: dict[str, Any] = dict(tls or {})
        if ssl_ca is not None:
            tls_args.setdefault("ssl_ca", ssl_ca)
            tls_args.setdefault("ssl_verify_identity", True)
        if not requires_tls(tls_args):
            raise ConfigError(
                f"IAM database authentication requires TLS (the token is sent in clear text): {_TLS_HINT}"
            )
        unknown = sorted(set(tls_args) - set(TLS_ARGS))
        if unknown:
            raise ConfigError(f"tls accepts only {', '.join(TLS_ARGS)}; not {', '.join(unknown)}")
        self.host = host
        self.user = user
        self.port = port
        self.region = region
        self.tls: Mapping[str, Any] = tls_args
        self._session = boto3_session
        self._client = boto3_client

    def __repr__(self) -> str:
        return f"IamAuthCredentials(host={self.host!r}, user={self.user!r}, port={self.port}, region={self.region!r})"

    def get_credentials(self, *, refresh: bool = False) -> Credentials:
        """Return a fresh token as the password, with the TLS arguments.

        Raises
        ------
        CredentialsError
            boto3 is missing, or no AWS credentials or Region are available to sign the token.
        """
        client = self._rds_client()
        try:
            token = client.generate_db_auth_token(
                DBHostname=self.host, Port=self.port, DBUsername=self.user, Region=self.region
            )
        except Exception as exc:  # botocore: NoCredentialsError, NoRegionError, ...
            raise CredentialsError(f"cannot sign an IAM auth token: {type(exc).__name__}: {exc}") from None
        logger.debug("IAM auth token generated", extra={"event": "iam_token", "host": self.host, "user": self.user})
        return Credentials(user=self.user, password=token, host=self.host, port=self.port, connect_args=self.tls)

    def _rds_client(self) -> RDSClient:
        if self._client is None:
            try:
                import boto3  # noqa: PLC0415 - heavy, only when IAM auth is used
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise CredentialsError("iam_auth needs boto3 (the Lambda runtime provides it)") from exc
            session = self._session or boto3.session.Session()
            try:
                self._client = session.client("rds", region_name=self.region)
            except Exception as exc:
                raise CredentialsError(f"cannot create the RDS client: {type(exc).__name__}: {exc}") from None
        return self._client
