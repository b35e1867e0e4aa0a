"""Throwaway TLS material for tests: a private CA and certificates signed by it (with ``cryptography``).

::

    pki = TestPKI.create(tmp_path)                      # CA + server cert for 127.0.0.1 and localhost
    server = MariaDBServer(extra_args=pki.server_args())  # --ssl-ca/--ssl-cert/--ssl-key
    other = TestPKI.create(tmp_path / "other")          # an unrelated CA, for "wrong CA" tests

Keys are EC P-256 (fast to generate). Nothing here touches the system trust store; files are written with mode
0600 into the directory you give. The module imports neither pytest nor the library under test.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertPair", "TestPKI", "make_ca", "make_leaf"]

DEFAULT_SERVER_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class CertPair:
    """A certificate and its private key, as PEM files."""

    cert_path: Path
    key_path: Path
    subject_names: tuple[str, ...]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Traditional (SEC1) PEM: every MariaDB TLS library reads it.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName([_general_name(name) for name in names])


def make_ca(
    directory: Path, common_name: str = "serverless-mysql test CA"
) -> tuple[CertPair, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Create a self-signed CA valid for one day; write ``ca.pem`` / ``ca-key.pem`` into ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pair = CertPair(directory / "ca.pem", directory / "ca-key.pem", (common_name,))
    _write(pair.cert_path, cert.public_bytes(serialization.Encoding.PEM))
    _write(pair.key_path, _key_pem(key))
    return pair, cert, key


def make_leaf(
    directory: Path,
    stem: str,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: Sequence[str] = DEFAULT_SERVER_NAMES,
    *,
    server: bool = True,
) -> CertPair:
    """Create a certificate for ``names`` (IP addresses and DNS names, all in the SAN) signed by the CA."""
    if not names:
        raise ValueError("a certificate needs at least one subject name")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pair = CertPair(directory / f"{stem}.pem", directory / f"{stem}-key.pem", tuple(names))
    _write(pair.cert_path, cert.public_bytes(serialization.Encoding.PEM))
    _write(pair.key_path, _key_pem(key))
    return pair


@dataclass(frozen=True)
class TestPKI:
    """A CA and one server certificate signed by it, as files in ``directory``."""

    __test__ = False  # not a pytest test class, despite the name

    directory: Path
    ca: CertPair
    server: CertPair

    @classmethod
    def create(cls, directory: Path, server_names: Sequence[str] = DEFAULT_SERVER_NAMES) -> TestPKI:
        """A new CA and a server certificate for ``server_names``, written into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        ca, ca_cert, ca_key = make_ca(directory)
        server = make_leaf(directory, "server", ca_cert, ca_key, server_names)
        return cls(directory=directory, ca=ca, server=server)

    @property
    def ca_path(self) -> str:
        """The CA bundle to pass as ``ssl_ca``."""
        return str(self.ca.cert_path)

    def issue(self, stem: str, names: Sequence[str]) -> CertPair:
        """Another server certificate, for ``names``, signed by this PKI's CA (e.g. for a wrong host name)."""
        ca_cert = x509.load_pem_x509_certificate(self.ca.cert_path.read_bytes())
        ca_key = serialization.load_pem_private_key(self.ca.key_path.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        return make_leaf(self.directory, stem, ca_cert, ca_key, names)

    def server_args(self) -> list[str]:
        """Mariadbd arguments that enable TLS with this PKI's server certificate."""
        return [
            f"--ssl-ca={self.ca.cert_path}",
            f"--ssl-cert={self.server.cert_path}",
            f"--ssl-key={self.server.key_path}",
        ]
