"""Opening the TCP socket of a connection, the host name's resolution included in the bound.

``socket.create_connection`` (what PyMySQL calls) resolves the name with ``getaddrinfo``, which no timeout
bounds: a stalled DNS server holds the connect for as long as the resolver retries (seconds to minutes), whatever
``connect_timeout`` and the deadline say. Here the resolution runs in a daemon thread that the connect waits for
at most the time it has; an address literal needs no lookup.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

__all__ = ["open_tcp"]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (loaded in Lambda's init phase)
if TYPE_CHECKING:
    from typing import Any

    _AddrInfo = list[tuple[Any, Any, int, str, Any]]


def open_tcp(
    host: str, port: int, *, left: Callable[[], float | None], source_address: tuple[str, int] | None = None
) -> tuple[socket.socket, str]:
    """A connected TCP socket to ``host:port`` (``TCP_NODELAY``, keepalive) and its peer's ``"address:port"``.

    ``left()`` is the time the connect may still take (None: no bound). Raises ``OSError`` (``TimeoutError`` when
    the resolution or the connect ran out of time).
    """
    infos = _resolve(host, port, left())
    last: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            timeout = left()
            if timeout is not None and timeout <= 0:
                raise TimeoutError("timed out connecting")
            sock.settimeout(timeout)
            if source_address is not None:
                sock.bind(source_address)
            sock.connect(address)
            # A peer that drops the connection just after accepting it (a forwarder whose target died) fails these
            # with ENOTCONN: a connect that failed like any other (a bare OSError reached a failover drill's handler).
            peer = "{}:{}".format(*sock.getpeername()[:2])
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return sock, peer
    if last is None:
        raise OSError(f"no address for {host!r}")
    try:
        raise last
    finally:
        last = None  # the error's traceback holds this frame: no cycle left for the collector (a wait makes many)


def _resolve(host: str, port: int, timeout: float | None) -> _AddrInfo:
    if _is_address(host):
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    if timeout is None:  # nothing to bound: no thread
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    answer: list[_AddrInfo | OSError] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except OSError as exc:
            answer.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name="serverless-mysql-resolve", daemon=True).start()
    if not done.wait(None if timeout is None else max(0.0, timeout)):
        raise TimeoutError(f"timed out resolving the host name {host!r}")  # the thread ends with the resolver
    result = answer[0]
    if isinstance(result, OSError):
        raise result
    return result


def _is_address(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return True
    return False
