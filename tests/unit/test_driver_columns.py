"""``DriverConnection.columns()`` against replies a real server rarely sends, played over a socket pair."""

from __future__ import annotations

import socket

import pytest

from serverless_mysql._driver import DriverConnection


def packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def test_a_local_infile_request_closes_the_connection_instead_of_leaving_the_server_waiting() -> None:
    ours, server = socket.socketpair()
    conn = DriverConnection(host="127.0.0.1", defer_connect=True)
    conn._sock = ours
    conn._rfile = ours.makefile("rb")
    conn._current_timeout = None  # what PyMySQL sets while connecting
    server.sendall(packet(1, b"\xfb/etc/passwd"))  # the reply to the query: "send me this file"
    try:
        with pytest.raises(ValueError, match="LOCAL INFILE; columns\\(\\) reads rows only"):
            conn.columns("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t", ("Id",))
        assert conn._sock is None and not conn.open
        assert server.recv(100)[4:5] == b"\x03"  # the query went out (COM_QUERY); nothing else was sent
    finally:
        server.close()
        ours.close()
