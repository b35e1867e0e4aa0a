"""TLS: a private MariaDB with a certificate from a CA generated here.

Verifying the CA and the host name succeeds; a wrong CA or a wrong host name fails closed with a clear error.
The host-name mismatch is produced without a second server: the fault proxy listens on ``127.0.0.2`` (loopback,
not in the certificate's SAN) and forwards to the server.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

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
