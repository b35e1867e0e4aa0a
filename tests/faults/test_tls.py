"""TLS: a private MariaDB with a certificate from a CA generated here.

Verifying the CA and the host name succeeds; a wrong CA or a wrong host name fails closed with a clear error.
The host-name mismatch is produced without a second server: the fault proxy listens on ``127.0.0.2`` (loopback,
not in the certificate's SAN) and forwards to the server.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import boto3
import pymysql
import pytest

from serverless_mysql import ServerlessMySQL, with_mysql
from serverless_mysql.errors import ConfigError, ConnectError, ServerlessMySQLError
from serverless_mysql.iam import IamAuthCredentials
from serverless_mysql.lambda_context import LocalLambdaContext
from tests.faults.conftest import LeakSink
from tests.support.faultproxy import FaultProxy
from tests.support.mariadb import AppUser, MariaDBServer, external_url
from tests.support.tls import TestPKI

pytestmark = [pytest.mark.timeout(60), pytest.mark.private_server]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI.create(tmp_path_factory.mktemp("other-pki"))


@pytest.fixture(scope="module")
def tls_server(pki: TestPKI) -> Iterator[MariaDBServer]:
    if external_url() is not None:
        pytest.skip("needs a private MariaDB server (SMYSQL_TEST_URL is set)")
    with MariaDBServer(max_connections=20, extra_args=pki.server_args()) as server:
        yield server


@pytest.fixture(scope="module")
def tls_user(tls_server: MariaDBServer) -> AppUser:
    return tls_server.create_user()


@pytest.fixture(scope="module")
def wrong_name_proxy(tls_server: MariaDBServer) -> Iterator[FaultProxy]:
    """The TLS server reached as 127.0.0.2, a loopback address that is not in its certificate."""
    try:
        proxy = FaultProxy(tls_server.host, tls_server.port, listen_host="127.0.0.2").start()
    except OSError as exc:
        pytest.skip(f"cannot listen on 127.0.0.2: {exc}")
    yield proxy
    proxy.stop()


def tls_kwargs(pki: TestPKI, **kw: Any) -> dict[str, Any]:
    return {"ssl_ca": pki.ca_path, "ssl_verify_cert": True, "ssl_verify_identity": True, **kw}


def test_pki_files(pki: TestPKI) -> None:
    for path in (pki.ca.cert_path, pki.ca.key_path, pki.server.cert_path, pki.server.key_path):
        assert path.exists()
        assert path.stat().st_mode & 0o077 == 0
    assert pki.server.subject_names == ("127.0.0.1", "localhost")
    ctx = ssl.create_default_context(cafile=pki.ca_path)
    assert ctx.get_ca_certs()[0]["subject"] == ((("commonName", "serverless-mysql test CA"),),)


def test_server_has_tls(tls_server: MariaDBServer) -> None:
    assert tls_server.execute("SELECT @@have_ssl AS s")[0]["s"] == "YES"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_pymysql_verifies_ca_and_host_name(tls_user: AppUser, pki: TestPKI, host: str) -> None:
    with tls_user.connect(host=host, **tls_kwargs(pki)) as conn, conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
        row = cur.fetchone()
        assert row is not None
        assert str(row["Value"]).startswith("TLS")


def test_pymysql_wrong_ca_fails_closed(tls_user: AppUser, other_pki: TestPKI, tls_server: MariaDBServer) -> None:
    with pytest.raises(pymysql.err.OperationalError) as info:
        tls_user.connect(**tls_kwargs(other_pki), connect_timeout=3)
    assert "CERTIFICATE_VERIFY_FAILED" in repr(info.value)
    assert tls_server.wait_for_connection_count(0, tls_user.name) == 0


def test_pymysql_wrong_host_name_fails_closed(tls_user: AppUser, pki: TestPKI, wrong_name_proxy: FaultProxy) -> None:
    with pytest.raises(pymysql.err.OperationalError) as info:
        tls_user.connect(host=wrong_name_proxy.host, port=wrong_name_proxy.port, **tls_kwargs(pki), connect_timeout=3)
    assert "IP address mismatch" in repr(info.value) or "hostname mismatch" in repr(info.value)
    # Without name verification the same route works: the failure above is the name check, not the proxy.
    with tls_user.connect(
        host=wrong_name_proxy.host, port=wrong_name_proxy.port, ssl_ca=pki.ca_path, ssl_verify_identity=False
    ) as conn:
        conn.ping()


def test_tls_material_is_fresh_per_pki(pki: TestPKI, other_pki: TestPKI) -> None:
    assert Path(pki.ca_path).read_bytes() != Path(other_pki.ca_path).read_bytes()


# ================================================================================================ the library over TLS
def verified(pki: TestPKI) -> dict[str, Any]:
    return {"connect_args": {"ssl_ca": pki.ca_path, "ssl_verify_identity": True}}


def tls_version(db: ServerlessMySQL) -> str:
    rows = db.query("SHOW SESSION STATUS LIKE 'Ssl_version'")
    return str(rows[0]["Value"])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_client_requires_tls_and_verifies_ca_and_host(
    tls_user: AppUser, pki: TestPKI, host: str, leaks: LeakSink
) -> None:
    leaks.secret(tls_user.password)
    db = ServerlessMySQL(**{**tls_user.connect_kwargs(), "host": host}, **verified(pki))
    try:
        assert tls_version(db).startswith("TLS")
    finally:
        db.quit()


def test_client_tls_options_from_the_url(tls_user: AppUser, pki: TestPKI, leaks: LeakSink) -> None:
    leaks.secret(tls_user.password)
    db = ServerlessMySQL(url=f"{tls_user.url()}?ssl_ca={quote(pki.ca_path)}&ssl_verify_identity=true")
    try:
        assert tls_version(db).startswith("TLS")
    finally:
        db.quit()


def test_decorator_over_tls(tls_user: AppUser, pki: TestPKI, leaks: LeakSink) -> None:
    leaks.secret(tls_user.password)

    @with_mysql(**tls_user.connect_kwargs(), **verified(pki), sigterm=False)
    def handler(event: object, context: object, db: ServerlessMySQL) -> str:
        return tls_version(db)

    try:
        assert handler({}, LocalLambdaContext(timeout=5)).startswith("TLS")
    finally:
        handler.db.quit()


def wrong_ca(tls_user: AppUser, other_pki: TestPKI) -> ServerlessMySQL:
    return ServerlessMySQL(**tls_user.connect_kwargs(), **verified(other_pki), connect_timeout=1.0)


def wrong_name(tls_user: AppUser, pki: TestPKI, proxy: FaultProxy) -> ServerlessMySQL:
    return ServerlessMySQL(
        **{**tls_user.connect_kwargs(), "host": proxy.host, "port": proxy.port}, **verified(pki), connect_timeout=1.0
    )


@pytest.mark.parametrize("fault", ["wrong CA", "wrong host name"])
def test_tls_verification_failure_fails_closed_with_a_clear_error(
    fault: str,
    tls_user: AppUser,
    pki: TestPKI,
    other_pki: TestPKI,
    wrong_name_proxy: FaultProxy,
    tls_server: MariaDBServer,
    leaks: LeakSink,
) -> None:
    leaks.secret(tls_user.password)
    db = wrong_ca(tls_user, other_pki) if fault == "wrong CA" else wrong_name(tls_user, pki, wrong_name_proxy)
    db.set_deadline(1.0)
    t0 = time.monotonic()
    with pytest.raises(ServerlessMySQLError) as info:
        db.query("SELECT 1")
    leaks.observe(info.value, db)
    assert time.monotonic() - t0 < 1.0 + 0.75
    message = str(info.value)
    assert "CERTIFICATE_VERIFY_FAILED" in message, message
    assert ("mismatch" in message) == (fault == "wrong host name"), message
    assert db.get_client() is None and db.get_stats().connects == 0  # fails closed: no connection, no statement
    assert tls_server.wait_for_connection_count(0, tls_user.name) == 0


@pytest.mark.parametrize("fault", ["wrong CA", "wrong host name"])
def test_tls_verification_failure_is_not_retried(
    fault: str, tls_user: AppUser, pki: TestPKI, other_pki: TestPKI, wrong_name_proxy: FaultProxy, leaks: LeakSink
) -> None:
    leaks.secret(tls_user.password)
    db = wrong_ca(tls_user, other_pki) if fault == "wrong CA" else wrong_name(tls_user, pki, wrong_name_proxy)
    db.set_deadline(1.0)
    with pytest.raises(ServerlessMySQLError) as info:
        db.connect()
    leaks.observe(info.value)
    attempts = db.get_stats().connect_attempts
    assert type(info.value) is ConnectError and attempts == 1, f"{type(info.value).__name__} after {attempts} attempts"


def test_tls_required_but_server_has_none(mariadb: MariaDBServer, fault_user: AppUser, pki: TestPKI) -> None:
    """The session server has no certificate: requiring TLS fails at once, nothing is sent in clear text."""
    db = ServerlessMySQL(**fault_user.connect_kwargs(), **verified(pki))
    db.set_deadline(2.0)
    with pytest.raises(ConnectError) as info:
        db.connect()
    assert "SSL is required" in str(info.value) and db.get_stats().connect_attempts == 1, str(info.value)


# ================================================================================================ IAM auth needs TLS
class TokenRecorder:
    """An RDS client stand-in: real ``generate_db_auth_token`` (signed locally), every token registered as secret."""

    def __init__(self, leaks: LeakSink) -> None:
        self._client = boto3.client("rds", region_name="us-east-1")
        self._leaks = leaks
        self.tokens: list[str] = []

    def generate_db_auth_token(self, **kw: Any) -> str:
        token = str(self._client.generate_db_auth_token(**kw))
        self._leaks.secret(token)
        self.tokens.append(token)
        return token


@pytest.fixture
def rds(monkeypatch: pytest.MonkeyPatch, leaks: LeakSink) -> TokenRecorder:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAULTSUITE000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", leaks.secret("fault-suite-aws-secret-key-0123456789"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return TokenRecorder(leaks)


def test_iam_auth_refuses_without_tls() -> None:
    with pytest.raises(ConfigError, match="requires TLS"):
        IamAuthCredentials(host="db.example.com", user="app")
    with pytest.raises(ConfigError, match="requires TLS"):
        IamAuthCredentials(host="db.example.com", user="app", tls={"ssl_verify_cert": False})
    with pytest.raises(ConfigError, match="requires TLS"):

        @with_mysql(iam_auth=True, host="db.example.com", user="app", region="us-east-1", sigterm=False)
        def handler(event: object, context: object, db: ServerlessMySQL) -> None:
            pass

    with pytest.raises(ConfigError, match="requires TLS"):

        @with_mysql(
            iam_auth=True,
            host="db.example.com",
            user="app",
            region="us-east-1",
            connect_args={"ssl_ca": "/x.pem", "ssl_disabled": True},
            sigterm=False,
        )
        def handler2(event: object, context: object, db: ServerlessMySQL) -> None:
            pass


def test_iam_token_travels_only_inside_tls(
    tls_server: MariaDBServer, pki: TestPKI, rds: TokenRecorder, leaks: LeakSink
) -> None:
    """With TLS the token is used (the account is not IAM-enabled, so 1045 follows) and never crosses the wire or
    the logs in clear text."""
    with FaultProxy(tls_server.host, tls_server.port, record=65536) as proxy:
        creds = IamAuthCredentials(
            host="127.0.0.1", user="iam_app", port=proxy.port, ssl_ca=pki.ca_path, boto3_client=cast(Any, rds)
        )
        db = ServerlessMySQL(host="127.0.0.1", port=proxy.port, credentials=creds)
        db.set_deadline(2.0)
        with pytest.raises(ConnectError) as info:
            db.connect()
        leaks.observe(info.value, db, creds, db.get_config())
        assert info.value.errno == 1045 and len(rds.tokens) == 1
        proxy.wait_for_connections(0)
        wire = b"".join(bytes(c.recorded) for c in proxy.finished)
    assert wire and b"iam_app" not in wire, "the handshake response went out in clear text"
    assert rds.tokens[0].encode() not in wire


@pytest.mark.parametrize("downgrade", [{"ssl_disabled": True}, {"ssl_verify_identity": False}])
def test_iam_auth_cannot_be_downgraded_by_connect_args(
    downgrade: dict[str, Any], tls_server: MariaDBServer, pki: TestPKI, rds: TokenRecorder, leaks: LeakSink
) -> None:
    """connect_args are merged over the credentials' TLS arguments: switching TLS off (or its host-name check) is
    refused when the client is built, before any token is signed or byte sent."""
    with FaultProxy(tls_server.host, tls_server.port, record=65536) as proxy:
        creds = IamAuthCredentials(
            host="127.0.0.1", user="iam_app", port=proxy.port, ssl_ca=pki.ca_path, boto3_client=cast(Any, rds)
        )
        with pytest.raises(ServerlessMySQLError) as info:
            db = ServerlessMySQL(host="127.0.0.1", port=proxy.port, credentials=creds, connect_args=downgrade)
            db.set_deadline(2.0)
            db.connect()
        leaks.observe(info.value)
        proxy.wait_for_connections(0)
        wire = b"".join(bytes(c.recorded) for c in proxy.finished)
    assert not wire, f"a connection was attempted without TLS ({len(wire)} bytes sent in clear text)"
    assert not rds.tokens, "a token was signed"
    assert isinstance(info.value, ConfigError), repr(info.value)
    assert f"connect_args[{next(iter(downgrade))!r}]" in str(info.value), str(info.value)
