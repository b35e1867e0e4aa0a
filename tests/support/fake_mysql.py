"""A fake MySQL server on loopback that plays a man in the middle and records what a client would tell it.

::

    with FakeMySQLServer(cert=other_pki.server) as fake:   # offers TLS with a certificate of its own
        connect the client to fake.host:fake.port ...
        assert token.encode() not in fake.received    # what the client sent, decrypted

Per connection it sends a MySQL greeting (``mysql_native_password``; the ``CLIENT_SSL`` capability only when it
has a certificate), upgrades to TLS if the client asks for it, then answers the login with an auth switch to
``mysql_clear_password``, as an RDS endpoint does for IAM authentication: a client that goes on sends its password
(the IAM token) in the next packet. Finally it refuses the login (1045). Every byte the client sends is kept,
after decryption, in :attr:`FakeMySQLServer.received`, so a test can prove a secret never reached it.

The module imports neither pytest nor the library under test.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
import threading
from types import TracebackType

from pymysql.constants import CLIENT

from harness.tls import CertPair

__all__ = ["FakeMySQLServer"]

_CAPABILITIES = (
    CLIENT.LONG_PASSWORD
    | CLIENT.FOUND_ROWS
    | CLIENT.LONG_FLAG
    | CLIENT.CONNECT_WITH_DB
    | CLIENT.PROTOCOL_41
    | CLIENT.TRANSACTIONS
    | CLIENT.SECURE_CONNECTION
    | CLIENT.MULTI_RESULTS
    | CLIENT.PLUGIN_AUTH
    | CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA
)
_SSL_REQUEST_LEN = 32  # the payload of the client's "switch to TLS" packet


def _greeting(capabilities: int) -> bytes:
    salt = os.urandom(20).replace(b"\0", b"\1")
    return (
        b"\x0a"
        + b"5.5.5-10.11.0-MariaDB-fake\0"
        + struct.pack("<I", 7)
        + salt[:8]
        + b"\0"
        + struct.pack("<H", capabilities & 0xFFFF)
        + bytes([45])  # utf8mb4_general_ci
        + struct.pack("<H", 2)  # SERVER_STATUS_AUTOCOMMIT
        + struct.pack("<H", capabilities >> 16)
        + bytes([21])
        + b"\0" * 10
        + salt[8:]
        + b"\0"
        + b"mysql_native_password\0"
    )


class FakeMySQLServer:
    """A loopback fake MySQL server; offers TLS with ``cert`` (a certificate and key) when one is given."""

    def __init__(self, *, cert: CertPair | None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.cert = cert
        self.received = bytearray()
        """Every byte the clients sent, after TLS decryption, all connections together."""
        self.connections = 0
        self.tls_handshakes = 0  # TLS sessions the client accepted
        self.tls_failures = 0  # TLS handshakes the client broke off (e.g. it refused the certificate)
        self.logins = 0  # login packets received (the handshake response, inside TLS or not)
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<FakeMySQLServer {self.host}:{self.port} tls={self.cert is not None}>"

    def start(self) -> FakeMySQLServer:
        listener = socket.create_server((self.host, 0))
        listener.settimeout(0.05)
        self.port = int(listener.getsockname()[1])
        self._listener = listener
        self._thread = threading.Thread(target=self._accept_loop, name=f"fake-mysql-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> FakeMySQLServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            with contextlib.closing(client), contextlib.suppress(OSError, ConnectionError, EOFError):
                self._serve(client)

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(5.0)
        capabilities = _CAPABILITIES | (CLIENT.SSL if self.cert is not None else 0)
        self._send(sock, 0, _greeting(capabilities))
        seq, payload = self._read(sock)
        flags = struct.unpack("<I", payload[:4])[0] if len(payload) >= 4 else 0
        if len(payload) == _SSL_REQUEST_LEN and flags & CLIENT.SSL:
            if self.cert is None:
                return  # a client asking for TLS that was not offered: nothing more to learn
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cert.cert_path, self.cert.key_path)
            try:
                tls = ctx.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError):
                self.tls_failures += 1
                return
            self.tls_handshakes += 1
            sock = tls
            seq, payload = self._read(sock)
        self.logins += 1
        # Like RDS for an IAM user: switch to mysql_clear_password; the client's next packet is the password.
        self._send(sock, seq + 1, b"\xfe" + b"mysql_clear_password\0")
        seq, _ = self._read(sock)
        self._send(sock, seq + 1, b"\xff" + struct.pack("<H", 1045) + b"#28000Access denied (fake server)")

    def _read(self, sock: socket.socket) -> tuple[int, bytes]:
        header = self._read_exactly(sock, 4)
        length = header[0] | header[1] << 8 | header[2] << 16
        return header[3], self._read_exactly(sock, length)

    def _read_exactly(self, sock: socket.socket, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError("client closed the connection")
            data += chunk
            with self._lock:
                self.received += chunk
        return bytes(data)

    @staticmethod
    def _send(sock: socket.socket, seq: int, payload: bytes) -> None:
        sock.sendall(struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload)
