"""``iam_auth=True`` end to end against a TLS MariaDB: a token per new connection, sent over verified TLS only.

MariaDB has no AWSAuthenticationPlugin, so the RDS client is replaced by one whose "token" is the test user's
password; everything else (the decorator building the provider, TLS arguments reaching PyMySQL, one token per
connect) is the real path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.mariadb import AppUser, MariaDBServer
from harness.tls import TestPKI
from serverless_mysql import ServerlessMySQL, with_mysql
from serverless_mysql.iam import IamAuthCredentials
from serverless_mysql.lambda_context import LocalLambdaContext
from tests.conftest import ServerFactory, UserFactory
from tests.integration.decorator_fixtures import clean_serverless_env

__all__ = ["clean_serverless_env"]

pytestmark = pytest.mark.usefixtures("clean_serverless_env")


class FakeRDS:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[dict[str, Any]] = []

    def generate_db_auth_token(self, **kwargs: Any) -> str:
        self.calls.append(kwargs)
        return self.token


@pytest.fixture
def pki(tmp_path: Any) -> TestPKI:
    return TestPKI.create(tmp_path / "pki")


@pytest.fixture
def tls_server(server_factory: ServerFactory, pki: TestPKI) -> MariaDBServer:
    return server_factory(max_connections=20, extra_args=pki.server_args())


@pytest.fixture
def tls_user(tls_server: MariaDBServer, make_user: UserFactory) -> AppUser:
    user = make_user(server=tls_server)
    tls_server.execute("ALTER USER %s@'%%' REQUIRE SSL", [user.name])  # refused without TLS
    return user


@pytest.fixture
def fake_rds(monkeypatch: pytest.MonkeyPatch, tls_user: AppUser) -> Iterator[FakeRDS]:
    fake = FakeRDS(tls_user.password)
    monkeypatch.setattr(IamAuthCredentials, "_rds_client", lambda self: fake)
    yield fake


def session(event: Any, context: Any, db: ServerlessMySQL) -> dict[str, Any]:
    cipher = db.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")[0]["Value"]
    row = db.query("SELECT CURRENT_USER() AS me, CONNECTION_ID() AS id")[0]
    return {"cipher": cipher, "user": str(row["me"]).split("@")[0], "id": int(row["id"])}


def test_iam_auth_token_per_connect_over_verified_tls(
    tls_user: AppUser, pki: TestPKI, fake_rds: FakeRDS, tls_server: MariaDBServer
) -> None:
    handler = with_mysql(
        iam_auth=True,
        host=tls_user.host,
        port=tls_user.port,
        user=tls_user.name,
        database=tls_user.database,
        region="eu-west-1",
        connect_args={"ssl_ca": pki.ca_path, "ssl_verify_identity": True},
        after="quit",  # a new connection, hence a new token, every invocation
        sigterm=False,
    )(session)
    try:
        assert fake_rds.calls == []  # nothing signed at import time
        first = handler({}, LocalLambdaContext())
        second = handler({}, LocalLambdaContext())
    finally:
        handler.db.terminate()
    assert first["cipher"]  # the session is encrypted
    assert first["user"] == tls_user.name
    assert first["id"] != second["id"]
    assert (
        fake_rds.calls
        == [{"DBHostname": tls_user.host, "Port": tls_user.port, "DBUsername": tls_user.name, "Region": "eu-west-1"}]
        * 2
    )


def test_iam_auth_from_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tls_user: AppUser, pki: TestPKI, fake_rds: FakeRDS
) -> None:
    url = f"mysql://{tls_user.name}@{tls_user.host}:{tls_user.port}/{tls_user.database}?ssl_ca={pki.ca_path}"
    monkeypatch.setenv("SERVERLESS_MYSQL_URL", url + "&ssl_verify_identity=true")
    monkeypatch.setenv("SERVERLESS_MYSQL_IAM_AUTH", "true")
    monkeypatch.setenv("SERVERLESS_MYSQL_SIGTERM", "false")
    handler = with_mysql(session)
    try:
        assert handler({}, LocalLambdaContext())["cipher"]
        assert handler({}, LocalLambdaContext())["cipher"]  # warm: the connection is reused, no new token
    finally:
        handler.db.terminate()
    assert len(fake_rds.calls) == 1
