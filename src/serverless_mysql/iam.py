"""IAM database authentication: a fresh RDS auth token for every new connection, over verified TLS only.

boto3 is imported on first use only (the Lambda runtime ships it; our layer does not vendor it).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .credentials import Credentials
from .errors import ConfigError, ConfigTypeError, CredentialsError

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_rds.client import RDSClient

__all__ = ["TLS_ARGS", "IamAuthCredentials", "requires_tls", "tls_weakness", "verified_tls"]

logger = logging.getLogger(__name__)

TLS_ARGS = ("ssl", "ssl_ca", "ssl_cert", "ssl_key", "ssl_verify_cert", "ssl_verify_identity")
"""``pymysql.connect`` arguments that make TLS required (PyMySQL 1.2: any of them given and not false)."""

_OFF: tuple[object, ...] = (None, False, "", {})  # values that leave a pymysql.connect TLS argument unset
_VERIFY_ARGS = ("ssl_verify_cert", "ssl_verify_identity")
_TLS_RULE = (
    "IAM authentication sends its token as a clear-text password, so TLS must verify the server's certificate "
    "and host name: leave ssl_verify_cert and ssl_verify_identity out (they default to True) and give ssl_ca "
    "(e.g. the RDS CA bundle '/opt/python/global-bundle.pem'; without it the system CA store is used)"
)


def requires_tls(connect_args: Mapping[str, Any]) -> bool:
    """True when these ``pymysql.connect`` arguments make PyMySQL refuse to connect without TLS."""
    if connect_args.get("ssl_disabled"):
        return False
    return any(connect_args.get(key) not in _OFF for key in TLS_ARGS)


def tls_weakness(connect_args: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(argument, why)`` for arguments that leave the server unverified; ``None`` when they verify it.

    Verified (PyMySQL checks the certificate and the host name before it sends anything) means:
    ``ssl_verify_cert=True`` and ``ssl_verify_identity=True`` (with ``ssl_ca`` or the system CA store), or an
    ``ssl.SSLContext`` in ``ssl`` with ``CERT_REQUIRED`` and ``check_hostname`` and no other TLS argument
    (PyMySQL would build its own context from those and ignore the given one).
    """
    if connect_args.get("ssl_disabled"):
        return "ssl_disabled", "switches TLS off"
    context = connect_args.get("ssl")
    if isinstance(context, ssl.SSLContext):
        if context.verify_mode != ssl.CERT_REQUIRED:
            return "ssl", "is an SSLContext whose verify_mode is not ssl.CERT_REQUIRED"
        if not context.check_hostname:
            return "ssl", "is an SSLContext whose check_hostname is off"
        for key in TLS_ARGS[1:]:
            if key in connect_args:
                return key, "makes PyMySQL ignore the SSLContext given in 'ssl'; configure that context instead"
        return None
    if context not in _OFF:
        return "ssl", (
            "is not checked here (PyMySQL ignores it next to ssl_ca and skips verification without a CA); "
            "use ssl_ca/ssl_cert/ssl_key or an ssl.SSLContext"
        )
    for key in _VERIFY_ARGS:
        if connect_args.get(key) is not True:
            return key, "must be True"
    return None


def verified_tls(tls: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """``tls`` with certificate and host-name verification switched on; anything weaker raises :class:`ConfigError`.

    ``ssl_verify_cert`` and ``ssl_verify_identity`` default to ``True`` (unless ``ssl`` is an ``SSLContext``);
    ``where`` names the mapping in the message (``"connect_args"``, ``"tls"``).
    """
    args = dict(tls)
    if not isinstance(args.get("ssl"), ssl.SSLContext):
        for key in _VERIFY_ARGS:
            args.setdefault(key, True)
    problem = tls_weakness(args)
    if problem is not None:
        key, why = problem
        raise ConfigError(f"option {where!r}: {where}[{key!r}]={args.get(key)!r} {why}. {_TLS_RULE}")
    return args


class IamAuthCredentials:
    """RDS IAM authentication tokens (``rds.generate_db_auth_token``), one per new connection.

    A token is signed locally with the function's AWS credentials (no API call) and is valid for 15 minutes,
    for connecting only: the connection outlives it. The token travels as a clear-text password (the server
    asks for ``mysql_clear_password``, which PyMySQL supports natively), so it is only ever sent over TLS that
    verified the server's certificate and host name (``ssl_verify_cert=True``, ``ssl_verify_identity=True``,
    against ``ssl_ca`` or the system CA store); a server without TLS is refused before anything is sent.

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
        Path of the CA bundle (RDS ``global-bundle.pem``); shorthand for ``tls={"ssl_ca": ...}``. Without it (and
        without ``tls``) the server's certificate is verified against the system CA store.
    tls : Mapping[str, Any], optional
        ``pymysql.connect`` TLS arguments (``ssl_ca``, ``ssl_cert``, ``ssl_key``, or ``ssl``: an ``SSLContext``
        with ``CERT_REQUIRED`` and ``check_hostname``). ``ssl_verify_cert`` and ``ssl_verify_identity`` default
        to ``True`` and may not be switched off. They are added to the connection's arguments.
    boto3_session : boto3.session.Session, optional
        Session to create the RDS client from.
    boto3_client : RDSClient, optional
        A ready RDS client; beats ``boto3_session``.

    Raises
    ------
    ConfigError
        TLS arguments that would not verify the server (``ssl_verify_cert=False``, ``ssl_verify_identity=False``,
        an ``ssl`` dict or an ``SSLContext`` that does not verify), or an empty host or user.

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
        unknown = sorted(set(tls_args) - {*TLS_ARGS, "ssl_disabled"})  # ssl_disabled: refused by name below
        if unknown:
            raise ConfigError(f"tls accepts only {', '.join(TLS_ARGS)}; not {', '.join(unknown)}")
        tls_args = verified_tls(tls_args, where="tls")
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
