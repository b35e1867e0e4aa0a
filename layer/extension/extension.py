"""serverless-mysql-shutdown: a Lambda external extension that registers for SHUTDOWN and does nothing else.

Why: Lambda sends SIGTERM to the runtime before destroying an execution environment only when at least one
external extension is registered. On python3.12+ the runtime then runs Python signal handlers, so
``@with_mysql`` can close its connection with COM_QUIT instead of leaving a sleeping connection on the server
until ``wait_timeout``. This extension exists to be that registered extension.

It registers for SHUTDOWN only (never INVOKE), so Lambda does not wait for it on any invocation: its ``next``
call simply blocks until the environment is shut down. Then it exits at once, so the shutdown is not held up.

Built for a small footprint, because Lambda's Init waits for extensions to register: standard library only,
raw HTTP/1.1 over ``_socket`` (importing ``http.client`` took 50 ms and 18 MB, ``socket`` + ``json`` 40 ms and 11 MB,
``_socket`` alone 10 ms and 9 MB, measured with python3.12 -I -S), and it never imports the serverless_mysql
package or anything from the function's layers (it is started with ``python -I -S``).

    python3 -I -S extension.py EXTENSION_NAME

Environment: ``AWS_LAMBDA_RUNTIME_API`` (``host:port``, set by Lambda); ``SERVERLESS_MYSQL_EXTENSION_DEBUG=1``
prints one line per step to stderr (CloudWatch Logs).
"""

from __future__ import annotations

import _socket  # the C module: ``socket`` (enum, selectors) and ``json`` (re) would triple startup time
import os
import sys

API_VERSION = "2020-01-01"
REGISTER_TIMEOUT = 5.0  # seconds; Init as a whole has 10 s


class ExtensionError(Exception):
    """The Extensions API answered something unexpected."""


def _debug(message: str) -> None:
    if os.environ.get("SERVERLESS_MYSQL_EXTENSION_DEBUG", "") not in ("", "0", "false"):
        print(f"[serverless-mysql-shutdown] {message}", file=sys.stderr, flush=True)


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


def _connect(host: str, port: int, timeout: float | None) -> _socket.socket:
    last: OSError | None = None
    for family, kind, proto, _, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            last = exc
        else:
            return sock
    raise last or OSError(f"cannot resolve {host}:{port}")


def request(
    api: str, method: str, path: str, headers: dict[str, str], *, body: bytes = b"", timeout: float | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request with ``Connection: close``; returns (status, lower-cased headers, body).

    ``timeout=None`` blocks for as long as it takes: the ``next`` call waits for the whole life of the
    environment (frozen in between, which costs nothing).
    """
    host, _, port = api.rpartition(":")
    lines = [f"{method} /{API_VERSION}/{path} HTTP/1.1", f"Host: {api}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    sock = _connect(host.strip("[]"), int(port), timeout)
    try:
        sock.sendall(raw)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    finally:
        sock.close()
    response = b"".join(chunks)
    head, sep, payload = response.partition(b"\r\n\r\n")
    if not sep:
        raise ExtensionError(f"{method} {path}: incomplete HTTP response ({len(response)} bytes)")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ExtensionError(f"{method} {path}: bad status line {status_line!r}")
    found: dict[str, str] = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        found[key.strip().lower()] = value.strip()
    if found.get("transfer-encoding", "").lower() == "chunked":
        payload = _dechunk(payload)
    elif "content-length" in found:
        payload = payload[: int(found["content-length"])]
    return int(parts[1]), found, payload


def _json_string(payload: bytes, key: str) -> str | None:
    """The string value of ``"key": "value"`` in a flat JSON object (enough for Lambda's event fields)."""
    marker = f'"{key}"'.encode()
    start = payload.find(marker)
    if start < 0:
        return None
    rest = payload[start + len(marker) :].lstrip(b" \t\r\n")
    if not rest.startswith(b":"):
        return None
    rest = rest[1:].lstrip(b" \t\r\n")
    if not rest.startswith(b'"'):
        return None
    end = rest.find(b'"', 1)
    return rest[1:end].decode("utf-8", "replace") if end > 0 else None


def register(api: str, name: str) -> str:
    """Register for SHUTDOWN only; returns the extension identifier."""
    body = b'{"events": ["SHUTDOWN"]}'
    status, headers, payload = request(
        api, "POST", "extension/register", {"Lambda-Extension-Name": name}, body=body, timeout=REGISTER_TIMEOUT
    )
    ident = headers.get("lambda-extension-identifier", "")
    if status != 200 or not ident:
        raise ExtensionError(f"register failed: HTTP {status} {payload[:200]!r}")
    return ident


def wait_for_shutdown(api: str, ident: str) -> str:
    """Block on ``event/next`` until the SHUTDOWN event arrives; returns its ``shutdownReason``."""
    while True:
        status, _, payload = request(api, "GET", "extension/event/next", {"Lambda-Extension-Identifier": ident})
        if status != 200:
            raise ExtensionError(f"event/next failed: HTTP {status} {payload[:200]!r}")
        event_type = _json_string(payload, "eventType")
        if event_type == "SHUTDOWN":
            return _json_string(payload, "shutdownReason") or "?"
        _debug(f"ignoring event {event_type!r}")  # not registered for it; never expected


def main(argv: list[str]) -> int:
    name = argv[0] if argv else "serverless-mysql-shutdown"
    api = os.environ.get("AWS_LAMBDA_RUNTIME_API", "")
    if not api:
        print("[serverless-mysql-shutdown] AWS_LAMBDA_RUNTIME_API is not set", file=sys.stderr)
        return 1
    try:
        ident = register(api, name)
        _debug("registered for SHUTDOWN")
        reason = wait_for_shutdown(api, ident)
    except (OSError, ValueError, ExtensionError) as exc:
        print(f"[serverless-mysql-shutdown] {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    _debug(f"SHUTDOWN ({reason}): exiting")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
