"""TLS: a private MariaDB with a certificate from a CA generated here.

Verifying the CA and the host name succeeds; a wrong CA or a wrong host name fails closed with a clear error.
The host-name mismatch is produced without a second server: the fault proxy listens on ``127.0.0.2`` (loopback,
not in the certificate's SAN) and forwards to the server.

IAM tokens are sent as clear-text passwords: a fake server (``tests/support/fake_mysql.py``) playing the man in
the middle records everything the client sends it, decrypted, to prove the token never reaches a server that is
not verified.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import boto3
import pymysql
import pytest

from harness.faultproxy import FaultProxy
from harness.mariadb import AppUser, MariaDBServer
from harness.tls import CertPair, TestPKI
from serverless_mysql import ServerlessMySQL, with_mysql
from serverless_mysql._deadline_io import DeadlineSocketIO
from serverless_mysql._driver import DriverConnection
from serverless_mysql.errors import ConfigError, ConnectError, ServerlessMySQLError
from serverless_mysql.iam import IamAuthCredentials
from serverless_mysql.lambda_context import LocalLambdaContext
from tests.conftest import private_server
from tests.faults.conftest import LeakSink
from tests.support.fake_mysql import FakeMySQLServer

pytestmark = [pytest.mark.timeout(60), pytest.mark.private_server]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI.create(tmp_path_factory.mktemp("other-pki"))


@pytest.fixture(scope="module")
def tls_server(pki: TestPKI) -> Iterator[MariaDBServer]:
    yield from private_server(max_connections=20, extra_args=pki.server_args())


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


def unverified_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_iam_auth_verifies_the_server_by_default() -> None:
    """Certificate and host-name verification are switched on whatever TLS arguments are given (or none)."""
    verify = {"ssl_verify_cert": True, "ssl_verify_identity": True}
    assert IamAuthCredentials(host="db.example.com", user="app").tls == verify  # the system CA store
    assert IamAuthCredentials(host="db.example.com", user="app", ssl_ca="/ca.pem").tls == {
        "ssl_ca": "/ca.pem",
        **verify,
    }
    context = ssl.create_default_context()
    assert IamAuthCredentials(host="db.example.com", user="app", tls={"ssl": context}).tls == {"ssl": context}


@pytest.mark.parametrize(
    ("tls", "culprit"),
    [
        ({"ssl_verify_cert": False}, "ssl_verify_cert"),
        ({"ssl_ca": "/ca.pem", "ssl_verify_identity": False}, "ssl_verify_identity"),
        ({"ssl_ca": "/ca.pem", "ssl_verify_cert": "yes"}, "ssl_verify_cert"),
        ({"ssl": {"ca": "/ca.pem"}}, "ssl"),
        ({"ssl": "unverified context"}, "ssl"),
        ({"ssl": "verified context", "ssl_ca": "/ca.pem"}, "ssl_ca"),
    ],
)
def test_iam_auth_refuses_tls_that_does_not_verify(tls: dict[str, Any], culprit: str) -> None:
    if tls.get("ssl") == "unverified context":
        tls = {**tls, "ssl": unverified_context()}
    elif tls.get("ssl") == "verified context":
        tls = {**tls, "ssl": ssl.create_default_context()}
    with pytest.raises(ConfigError, match=f"tls\\[{culprit!r}\\]") as info:
        IamAuthCredentials(host="db.example.com", user="app", tls=tls)
    assert "verify the server's certificate and host name" in str(info.value)


@pytest.mark.parametrize(
    "connect_args",
    [{"ssl_ca": "/x.pem", "ssl_disabled": True}, {"ssl_verify_cert": False}, {"ssl_verify_identity": False}],
    ids=["ssl_disabled", "ssl_verify_cert", "ssl_verify_identity"],
)
def test_iam_auth_decorator_refuses_tls_that_does_not_verify_naming_connect_args(
    connect_args: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    culprit = next(k for k in connect_args if k != "ssl_ca")
    with pytest.raises(ConfigError, match=f"connect_args\\[{culprit!r}\\]"):

        @with_mysql(
            iam_auth=True,
            host="db.example.com",
            user="app",
            region="us-east-1",
            connect_args=connect_args,
            sigterm=False,
        )
        def handler(event: object, context: object, db: ServerlessMySQL) -> None:
            pass

    # The same through the environment: the message names the variable the value came from.
    monkeypatch.setenv("SERVERLESS_MYSQL_CONNECT_ARGS", json.dumps(connect_args))
    with pytest.raises(ConfigError, match="SERVERLESS_MYSQL_CONNECT_ARGS") as info:

        @with_mysql(iam_auth=True, host="db.example.com", user="app", region="us-east-1", sigterm=False)
        def handler2(event: object, context: object, db: ServerlessMySQL) -> None:
            pass

    assert f"connect_args[{culprit!r}]" in str(info.value)


def test_iam_auth_without_tls_arguments_is_accepted() -> None:
    """No TLS arguments: TLS with verification against the system CA store (it used to be refused outright)."""

    @with_mysql(iam_auth=True, host="db.example.com", user="app", region="us-east-1", sigterm=False)
    def handler(event: object, context: object, db: ServerlessMySQL) -> None:
        pass

    creds = handler.db.get_config()["credentials"]
    assert creds.tls == {"ssl_verify_cert": True, "ssl_verify_identity": True}


def test_connect_args_cannot_replace_the_verified_context() -> None:
    """connect_args are merged over the provider's TLS arguments: an SSLContext there would be ignored by PyMySQL
    next to them, or would not verify: refused naming it."""
    creds = IamAuthCredentials(host="db.example.com", user="app", ssl_ca="/ca.pem")
    with pytest.raises(ConfigError, match=r"connect_args\['ssl'\]"):
        ServerlessMySQL(host="db.example.com", credentials=creds, connect_args={"ssl": unverified_context()})
    creds = IamAuthCredentials(host="db.example.com", user="app", tls={"ssl": ssl.create_default_context()})
    with pytest.raises(ConfigError, match=r"connect_args\['ssl'\]"):
        ServerlessMySQL(host="db.example.com", credentials=creds, connect_args={"ssl": unverified_context()})


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


@pytest.mark.parametrize(
    "downgrade", [{"ssl_disabled": True}, {"ssl_verify_identity": False}, {"ssl_verify_cert": False}]
)
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


# ================================================================================================ IAM and a fake server
@pytest.fixture(scope="module")
def wrong_name_cert(pki: TestPKI) -> CertPair:
    """A certificate from the trusted CA, but for another host name."""
    return pki.issue("elsewhere", ("db.example.com",))


def iam_client(form: str, port: int, ca_path: str | None, rds: TokenRecorder, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An IAM client for 127.0.0.1:port given only ``ssl_ca`` (or nothing), built as docs/credentials.md shows it."""
    if form == "credentials":
        tls = {} if ca_path is None else {"ssl_ca": ca_path}
        creds = IamAuthCredentials(host="127.0.0.1", user="iam_app", port=port, tls=tls, boto3_client=cast(Any, rds))
        return ServerlessMySQL(host="127.0.0.1", port=port, credentials=creds, connect_timeout=2.0)
    monkeypatch.setattr(IamAuthCredentials, "_rds_client", lambda self: rds)
    if ca_path is not None:  # docs/credentials.md's example for the variable
        monkeypatch.setenv("SERVERLESS_MYSQL_CONNECT_ARGS", json.dumps({"ssl_ca": ca_path}))

    @with_mysql(iam_auth=True, host="127.0.0.1", port=port, user="iam_app", region="us-east-1", sigterm=False)
    def handler(event: object, context: object, db: ServerlessMySQL) -> None:
        pass

    return handler.db


FORMS = ["credentials", "decorator"]


def connect_to_fake(db: ServerlessMySQL, fake: FakeMySQLServer, leaks: LeakSink) -> ConnectError:
    db.set_deadline(3.0)
    with pytest.raises(ConnectError) as info:
        db.connect()
    leaks.observe(info.value, db)
    fake.stop()  # waits for the fake to finish with the connection
    return info.value


@pytest.mark.parametrize("form", FORMS)
def test_iam_token_reaches_a_trusted_server(
    form: str, pki: TestPKI, rds: TokenRecorder, leaks: LeakSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control for the tests below: a fake server the client has reason to trust gets the token."""
    with FakeMySQLServer(cert=pki.server) as fake:
        error = connect_to_fake(iam_client(form, fake.port, pki.ca_path, rds, monkeypatch), fake, leaks)
    assert error.errno == 1045 and fake.logins == 1 and len(rds.tokens) == 1
    assert rds.tokens[0].encode() in fake.received


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("certificate", ["another CA", "another host name"])
def test_iam_token_never_reaches_a_server_that_fails_verification(
    form: str,
    certificate: str,
    pki: TestPKI,
    other_pki: TestPKI,
    wrong_name_cert: CertPair,
    rds: TokenRecorder,
    leaks: LeakSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only ``ssl_ca`` given (docs/credentials.md's shape of SERVERLESS_MYSQL_CONNECT_ARGS): PyMySQL alone would not
    check the certificate at all; the client must refuse the server before the login packet, let alone the token."""
    cert = other_pki.server if certificate == "another CA" else wrong_name_cert
    with FakeMySQLServer(cert=cert) as fake:
        error = connect_to_fake(iam_client(form, fake.port, pki.ca_path, rds, monkeypatch), fake, leaks)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error), str(error)
    assert ("mismatch" in str(error)) == (certificate == "another host name"), str(error)
    assert fake.tls_failures == 1 and fake.tls_handshakes == 0 and fake.logins == 0
    assert all(token.encode() not in fake.received for token in rds.tokens)


@pytest.mark.parametrize("form", FORMS)
def test_iam_token_never_reaches_a_server_without_tls(
    form: str, pki: TestPKI, rds: TokenRecorder, leaks: LeakSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeMySQLServer(cert=None) as fake:
        error = connect_to_fake(iam_client(form, fake.port, pki.ca_path, rds, monkeypatch), fake, leaks)
    assert "SSL is required" in str(error) and "nothing was sent" in str(error), str(error)
    assert fake.connections == 1 and fake.received == b"", "the client sent something to a server without TLS"


@pytest.mark.parametrize("certificate", ["trusted", "another CA", "another host name"])
def test_iam_without_ssl_ca_verifies_against_the_system_ca_store(
    certificate: str,
    pki: TestPKI,
    other_pki: TestPKI,
    wrong_name_cert: CertPair,
    rds: TokenRecorder,
    leaks: LeakSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No ssl_ca: the system CA store (here OpenSSL's SSL_CERT_FILE, the test CA) and the host name are checked
    (PyMySQL alone skips the host name without ssl_ca)."""
    monkeypatch.setenv("SSL_CERT_FILE", pki.ca_path)
    cert = {"trusted": pki.server, "another CA": other_pki.server, "another host name": wrong_name_cert}[certificate]
    with FakeMySQLServer(cert=cert) as fake:
        error = connect_to_fake(iam_client("decorator", fake.port, None, rds, monkeypatch), fake, leaks)
    if certificate == "trusted":
        assert error.errno == 1045 and fake.logins == 1
    else:
        assert "CERTIFICATE_VERIFY_FAILED" in str(error) and fake.logins == 0, str(error)
        assert all(token.encode() not in fake.received for token in rds.tokens)


def test_iam_with_only_ssl_ca_makes_no_login_attempt_on_a_server_signed_by_another_ca(
    tls_server: MariaDBServer, other_pki: TestPKI, rds: TokenRecorder, leaks: LeakSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same against the real MariaDB: the server's certificate is not from the CA given; the server sees no
    login attempt (its count of refused logins does not move)."""
    before = int(tls_server.status("Access_denied_errors") or 0)
    db = iam_client("decorator", tls_server.port, other_pki.ca_path, rds, monkeypatch)
    db.set_deadline(2.0)
    with pytest.raises(ConnectError) as info:
        db.connect()
    leaks.observe(info.value, db)
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value), str(info.value)
    assert int(tls_server.status("Access_denied_errors") or 0) == before


# ================================================================================================ deadline over TLS
def test_tls_handshake_is_bounded_by_the_deadline(tls_user: AppUser, pki: TestPKI, tls_server: MariaDBServer) -> None:
    """Every step of greeting, TLS handshake and login takes 0.8 s (well under connect_timeout): the deadline
    bounds them together, including the reads inside the TLS handshake and after the upgrade."""
    with FaultProxy(tls_server.host, tls_server.port) as proxy:
        db = ServerlessMySQL(**{**tls_user.connect_kwargs(), "port": proxy.port}, **verified(pki), connect_timeout=1.0)
        proxy.delay(0.4)
        db.set_deadline(1.5)
        t0 = time.monotonic()
        with pytest.raises(ServerlessMySQLError) as info:
            db.connect()
        elapsed = time.monotonic() - t0
        assert elapsed < 1.5 + 0.25, (elapsed, info.value)
        assert type(info.value).__name__ == "DeadlineExceededError", repr(info.value)
        proxy.heal()
        db.set_deadline(5.0)
        db.connect()
        conn = db.get_client()
        assert isinstance(conn, DriverConnection) and conn._rfile is not None  # the reader made after the TLS upgrade
        assert isinstance(conn._rfile.raw, DeadlineSocketIO)
        assert tls_version(db).startswith("TLS")
        db.set_deadline(None)
        db.quit()


# ================================================================================================ ssl_ca alone verifies
def only_ca(tls_user: AppUser, pki: TestPKI, form: str, **where: Any) -> ServerlessMySQL:
    """A client given nothing but ``ssl_ca`` (in connect_args or the URL), as docs/deploying.md tells users."""
    target = {**tls_user.connect_kwargs(), **where}
    if form == "url":
        url = (
            f"mysql://{tls_user.name}:{quote(tls_user.password)}@{target['host']}:{target['port']}/{tls_user.database}"
        )
        return ServerlessMySQL(url=f"{url}?ssl_ca={quote(pki.ca_path)}", connect_timeout=1.0)
    return ServerlessMySQL(**target, connect_args={"ssl_ca": pki.ca_path}, connect_timeout=1.0)


@pytest.mark.parametrize("form", ["connect_args", "url"])
def test_ssl_ca_alone_refuses_a_certificate_from_another_ca(
    form: str, tls_user: AppUser, other_pki: TestPKI, tls_server: MariaDBServer, leaks: LeakSink
) -> None:
    """With ``ssl_ca`` the certificate must chain to it: otherwise the password goes to whoever answers."""
    leaks.secret(tls_user.password)
    db = only_ca(tls_user, other_pki, form)
    with pytest.raises(ConnectError) as info:
        db.connect()
    leaks.observe(info.value, db)
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
    assert tls_server.wait_for_connection_count(0, tls_user.name) == 0


@pytest.mark.parametrize("form", ["connect_args", "url"])
def test_ssl_ca_alone_checks_the_host_name(
    form: str, tls_user: AppUser, pki: TestPKI, wrong_name_proxy: FaultProxy, leaks: LeakSink
) -> None:
    """The right CA but a name not in the certificate: refused unless ``ssl_verify_identity=False`` says so."""
    leaks.secret(tls_user.password)
    db = only_ca(tls_user, pki, form, host=wrong_name_proxy.host, port=wrong_name_proxy.port)
    with pytest.raises(ConnectError, match="mismatch"):
        db.connect()
    chain_only = ServerlessMySQL(
        **{**tls_user.connect_kwargs(), "host": wrong_name_proxy.host, "port": wrong_name_proxy.port},
        connect_args={"ssl_ca": pki.ca_path, "ssl_verify_identity": False},
    )
    try:
        assert tls_version(chain_only).startswith("TLS")
    finally:
        chain_only.quit()


@pytest.mark.parametrize("form", ["connect_args", "url"])
def test_ssl_ca_alone_connects_to_the_right_server(form: str, tls_user: AppUser, pki: TestPKI) -> None:
    db = only_ca(tls_user, pki, form)
    try:
        assert tls_version(db).startswith("TLS")
    finally:
        db.quit()
