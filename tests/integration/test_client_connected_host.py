"""The host actually connected to (a credentials provider's, say a secret's) decides RDS Proxy mode and is named
in connect errors; the configured host is only ``localhost`` then."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from harness.mariadb import AppUser
from serverless_mysql import ConnectError, ServerlessMySQL, with_mysql
from serverless_mysql.credentials import Credentials
from serverless_mysql.lambda_context import LocalLambdaContext
from tests.integration.decorator_fixtures import aws, clean_serverless_env, rds_secret

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

__all__ = ["aws", "clean_serverless_env"]

pytestmark = pytest.mark.integration

PROXY = "shop.proxy-abc123xyz.us-east-1.rds.amazonaws.com"


@dataclass
class Provider:
    """A credentials provider (like a secret) that supplies the host, the port and the login."""

    user: AppUser
    host: str
    password: str | None = None
    refreshable: bool = False

    def get_credentials(self, *, refresh: bool = False) -> Credentials:
        return Credentials(
            user=self.user.name,
            password=self.password or self.user.password,
            host=self.host,
            port=self.user.port,
            database=self.user.database,
        )


@pytest.fixture
def proxy_name_resolves_to_loopback(monkeypatch: pytest.MonkeyPatch, app_user: AppUser) -> None:
    """Name resolution only: the RDS Proxy-style name points at the private MariaDB (no DNS can be added here)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real(app_user.host if host == PROXY else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def housekeeping_statements(db: ServerlessMySQL) -> int:
    db.query("SELECT 1")
    db.end()  # measures at a client's first end() (and at every one with used_conns_freq=0), unless behind a proxy
    return db.get_stats().housekeeping_statements


@pytest.mark.usefixtures("proxy_name_resolves_to_loopback")
def test_proxy_endpoint_from_the_provider_means_no_housekeeping(app_user: AppUser) -> None:
    provider = Provider(app_user, host=PROXY)
    connected: list[str] = []
    db = ServerlessMySQL(  # no host option: "localhost", as with a secret
        credentials=provider, used_conns_freq=0, on_connect=lambda conn: connected.append(conn.host)
    )
    try:
        assert housekeeping_statements(db) == 0  # no processlist scan, no KILL through the proxy
        assert connected == [PROXY]
        # The secret now names the instance itself: the next connection is direct, and housekeeping runs.
        provider.host = app_user.host
        db.quit()
        assert housekeeping_statements(db) == 1  # the measurement (used_conns_freq=0: no first reading of counters)
        assert connected == [PROXY, app_user.host]
        # And back to the proxy: decided again for each connection.
        provider.host = PROXY
        db.quit()
        assert housekeeping_statements(db) == 1  # nothing more: used_conns_freq=0 would have measured again
    finally:
        db.terminate()


@pytest.mark.usefixtures("proxy_name_resolves_to_loopback")
def test_explicit_rds_proxy_option_beats_the_providers_host(app_user: AppUser) -> None:
    # Direct: a new client's first end() reads the limits, the counters, and scans (a small server).
    for rds_proxy, host, expected in ((False, PROXY, 3), (True, app_user.host, 0)):
        db = ServerlessMySQL(credentials=Provider(app_user, host=host), rds_proxy=rds_proxy)
        try:
            assert housekeeping_statements(db) == expected
        finally:
            db.terminate()


def test_connect_error_names_the_host_and_port_tried(app_user: AppUser) -> None:
    db = ServerlessMySQL(credentials=Provider(app_user, host=app_user.host, password="wrong"), max_retries=0)
    with pytest.raises(ConnectError, match=r"\(1045\)") as caught:
        db.query("SELECT 1")
    assert f"cannot connect to {app_user.host}:{app_user.port}:" in str(caught.value)
    assert "localhost" not in str(caught.value)  # the configured host: the provider's replaced it
    assert "wrong" not in str(caught.value)


@pytest.mark.usefixtures("proxy_name_resolves_to_loopback", "clean_serverless_env")
def test_proxy_endpoint_from_a_secret_under_with_mysql(aws: SecretsManagerClient, app_user: AppUser) -> None:
    # The case: the secret's host is the proxy endpoint; the configured host is only the default.
    aws.create_secret(Name="shop/proxy", SecretString=rds_secret(app_user, host=PROXY))

    def handler(event: Any, context: Any, db: ServerlessMySQL) -> int:
        return int(db.query("SELECT 1 AS one")[0]["one"])

    wrapped = with_mysql(secret_id="shop/proxy", sigterm=False)(handler)
    db: ServerlessMySQL = getattr(wrapped, "db")  # noqa: B009
    try:
        assert wrapped({}, LocalLambdaContext()) == 1  # end() ran after the handler: a cold start measures...
        assert db.get_stats().connects == 1
        assert db.get_stats().housekeeping_statements == 0  # ...except through a proxy
    finally:
        db.terminate()
