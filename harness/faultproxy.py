"""A loopback TCP proxy that injects network faults between a MySQL client and a server.

::

    with FaultProxy(server.host, server.port) as proxy:
        db = ServerlessMySQL(host=proxy.host, port=proxy.port, ...)
        db.query("SELECT 1")
        proxy.blackhole()        # nothing passes any more, in either direction; no RST, sockets stay open
        ...
        proxy.heal()             # forwarding resumes (buffered bytes included)

Faults, at proxy level:

* :meth:`FaultProxy.blackhole` - *sticky*: current **and new** connections stop forwarding in both directions. Bytes
  stay unread in the kernel buffers (the peers see nothing: no FIN, no RST). New connections are accepted by the
  kernel but get no server greeting (what a client sees when a firewall drops the server's packets after the SYN).
* :meth:`FaultProxy.delay` - *sticky*: every chunk is held for ``seconds`` before it is forwarded (both directions).
* :meth:`FaultProxy.refuse_new` - *sticky*: the listening socket stops listening, so new connects get
  ``ECONNREFUSED`` (PyMySQL: 2003); existing connections are untouched.
* :meth:`FaultProxy.reset` - *one shot*: every current connection is aborted with a TCP RST on both sides
  (``SO_LINGER`` 0, then close). The server sees an aborted connection, the client ``ECONNRESET``.
* :meth:`FaultProxy.cut_after` - *one shot*: every current connection forwards ``n`` more bytes from the server,
  then is aborted with RST on both sides. ``cut_after(0)`` lets a statement reach the server but never delivers
  its answer - the "did my write happen?" fault.
* :meth:`FaultProxy.cut_new_after` - arms the next new connection(s) the same way (e.g. a cut mid-handshake).
* :meth:`FaultProxy.heal` - clears every sticky fault, disarms pending cuts and resumes blackholed connections.

Each live connection is also a :class:`ProxiedConnection` (``proxy.connections()``) with its own ``blackhole()``,
``delay()``, ``cut_after()``, ``reset()`` and ``heal()``, for faults aimed at one connection only.

Design: one accept thread plus one thread per proxied connection (``selectors`` over both sockets), with a hard
cap on the number of connections (``max_connections``; extra ones are reset at once) so the thread count is
bounded. Every blocking call has a short timeout, so :meth:`FaultProxy.stop` always returns promptly. Only
loopback addresses are accepted. The module imports neither pytest nor the library under test.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import selectors
import socket
import struct
import threading
import time
from types import TracebackType
from typing import Final

__all__ = ["FaultProxy", "FaultProxyError", "ProxiedConnection"]

_CHUNK: Final = 65536
_POLL: Final = 0.02  # seconds between checks of the control state while idle or blackholed
_SEND_TIMEOUT: Final = 0.2  # a send blocks at most this long before the control state is checked again
_conn_ids = itertools.count(1)


class FaultProxyError(RuntimeError):
    """Misuse of the proxy (non-loopback address, not started, ...)."""


def _require_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise FaultProxyError(f"FaultProxy only uses loopback addresses, not {host!r}")


def _abort(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP RST (SO_LINGER on, timeout 0) instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class ProxiedConnection:
    """One client connection and its upstream connection to the server, pumped by one thread."""

    def __init__(
        self, proxy: FaultProxy, client: socket.socket, client_addr: tuple[str, int], target: tuple[str, int]
    ) -> None:
        self.id: int = next(_conn_ids)
        self.client_addr = client_addr
        self.target = target
        """The server this connection goes to, chosen when it was accepted (a later switch does not move it)."""
        self._proxy = proxy
        self._client = client
        self._server: socket.socket | None = None
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._blackholed = False
        self._delay = 0.0
        self._cut_remaining: int | None = None
        self._reset_requested = False
        self._closed = threading.Event()
        self._paused = threading.Event()  # set by the pump thread while it honours a blackhole
        self.bytes_from_client = 0
        self.bytes_from_server = 0
        self.recorded = bytearray()  # the first bytes from the client, when the proxy records (record > 0)
        self.close_reason: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"faultproxy-conn-{self.id}", daemon=True)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<ProxiedConnection #{self.id} {state} from={self.client_addr[1]} "
            f"up={self.bytes_from_client} down={self.bytes_from_server}>"
        )

    # ---- control (any thread) ------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once both sockets of this connection are closed."""
        return self._closed.is_set()

    def blackhole(self, wait: float = 2.0) -> None:
        """Stop forwarding in both directions (no RST, sockets stay open) until :meth:`heal`.

        Returns once the pump thread has stopped forwarding (at most ``wait`` seconds), so nothing sent after
        this call can slip through.
        """
        with self._lock:
            self._blackholed = True
        self._wakeup.set()
        deadline = time.monotonic() + wait
        while not (self._paused.is_set() or self._closed.is_set() or not self._thread.is_alive()):
            if time.monotonic() >= deadline:
                raise FaultProxyError(f"connection #{self.id} did not pause within {wait}s")
            time.sleep(0.001)

    def delay(self, seconds: float) -> None:
        """Hold every chunk ``seconds`` before forwarding it (0 turns the delay off)."""
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        with self._lock:
            self._delay = float(seconds)
        self._wakeup.set()

    def cut_after(self, bytes_from_server: int) -> None:
        """Forward ``bytes_from_server`` more bytes from the server, then abort both sides with RST."""
        if bytes_from_server < 0:
            raise ValueError("bytes_from_server must be >= 0")
        with self._lock:
            self._cut_remaining = int(bytes_from_server)
        self._wakeup.set()

    def reset(self) -> None:
        """Abort both sides with a TCP RST now (asynchronous; use :meth:`wait_closed` to wait)."""
        with self._lock:
            self._reset_requested = True
        self._wakeup.set()

    def heal(self) -> None:
        """Undo :meth:`blackhole`, :meth:`delay` and a pending :meth:`cut_after`."""
        with self._lock:
            self._blackholed = False
            self._delay = 0.0
            self._cut_remaining = None
        self._wakeup.set()

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """Wait until the connection is closed (at most ``timeout`` s); True if it is."""
        return self._closed.wait(timeout)

    # ---- pump (own thread) ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the pump thread of this connection."""
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the pump thread (not from inside it)."""
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _finish(self, reason: str, *, rst: bool) -> None:
        if self._closed.is_set():
            return
        self.close_reason = reason
        for sock in (self._client, self._server):
            if sock is None:
                continue
            if rst:
                _abort(sock)
            else:
                _close(sock)
        self._closed.set()
        self._proxy._forget(self)

    def _run(self) -> None:
        try:
            self._pump()
        except OSError as exc:
            self._finish(f"socket error: {exc}", rst=True)
        finally:
            self._finish("stopped", rst=False)

    def _connect_upstream(self) -> socket.socket | None:
        # A blackholed (or reset) connection must not even reach the server.
        while True:
            with self._lock:
                if self._reset_requested:
                    return None
                blackholed = self._blackholed
            if self._proxy._stopping.is_set():
                return None
            if not blackholed:
                self._paused.clear()
                break
            self._paused.set()
            self._wakeup.wait(_POLL)
            self._wakeup.clear()
        try:
            server = socket.create_connection(self.target, timeout=5.0)
        except OSError:
            return None
        server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return server

    def _pump(self) -> None:
        server = self._connect_upstream()
        if server is None:
            self._finish("upstream unavailable", rst=True)
            return
        self._server = server
        client = self._client
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for sock in (client, server):
            sock.settimeout(_SEND_TIMEOUT)
        peer = {client: server, server: client}
        eof: set[socket.socket] = set()
        with selectors.DefaultSelector() as sel:
            sel.register(client, selectors.EVENT_READ)
            sel.register(server, selectors.EVENT_READ)
            while not self._proxy._stopping.is_set():
                with self._lock:
                    reset, blackholed = self._reset_requested, self._blackholed
                if reset:
                    self._finish("reset", rst=True)
                    return
                if blackholed:
                    self._paused.set()
                    self._wakeup.wait(_POLL)
                    self._wakeup.clear()
                    continue
                self._paused.clear()
                for key, _ in sel.select(_POLL):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    if not self._forward(src, peer[src], from_server=src is server):
                        eof.add(src)
                        sel.unregister(src)
                        with contextlib.suppress(OSError):
                            peer[src].shutdown(socket.SHUT_WR)
                    if self._closed.is_set():
                        return
                if len(eof) == 2:
                    self._finish("closed by peers", rst=False)
                    return

    def _forward(self, src: socket.socket, dst: socket.socket, *, from_server: bool) -> bool:
        """Move one chunk from ``src`` to ``dst``; False at EOF. May finish the connection (cut, reset)."""
        try:
            data = src.recv(_CHUNK)
        except TimeoutError:
            return True
        except ConnectionResetError:
            # One side aborted: abort the other one too, as a router that saw the RST would.
            self._finish("reset by " + ("server" if from_server else "client"), rst=True)
            return True
        if not data:
            return False
        with self._lock:
            delay = self._delay
        if delay:
            self._sleep_interruptibly(delay)
        cut = False
        if from_server:
            with self._lock:
                if self._cut_remaining is not None:
                    if len(data) >= self._cut_remaining:
                        data, cut = data[: self._cut_remaining], True
                        self._cut_remaining = None
                    else:
                        self._cut_remaining -= len(data)
        # Count before sending: once the peer has the bytes, the counters must already include them.
        if from_server:
            self.bytes_from_server += len(data)
        else:
            self.bytes_from_client += len(data)
            room = self._proxy.record - len(self.recorded)
            if room > 0:
                self.recorded += data[:room]
        self._send_all(dst, data)
        if cut:
            self._finish("cut", rst=True)
        return True

    def _sleep_interruptibly(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._proxy._stopping.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, _POLL))

    def _send_all(self, dst: socket.socket, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._proxy._stopping.is_set():
                return
            with self._lock:
                if self._reset_requested:
                    return
            try:
                sent = dst.send(view)
            except TimeoutError:
                continue
            view = view[sent:]


class FaultProxy:
    """A loopback TCP proxy to ``target_host:target_port`` with fault commands. See the module docstring."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        max_connections: int = 64,
        record: int = 0,
    ) -> None:
        _require_loopback(target_host)
        _require_loopback(listen_host)
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        self.target_host = target_host
        self.target_port = target_port
        self.host = listen_host
        self.port = 0
        self.max_connections = max_connections
        self.record = record
        """Keep the first ``record`` bytes each client sends (``ProxiedConnection.recorded``), e.g. to prove that
        a secret never crossed the wire in clear text."""
        self.finished: list[ProxiedConnection] = []
        """Closed connections, oldest first (for ``recorded`` after the fact); only kept when recording."""
        self._listener: socket.socket | None = None
        self._reservation: socket.socket | None = None
        self._lock = threading.Lock()
        self._accept_lock = threading.Lock()
        self._conns: dict[int, ProxiedConnection] = {}
        self._stopping = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self._blackholed = False
        self._delay = 0.0
        self._refusing = False  # guarded by _accept_lock
        self._cut_new = 0
        self._cut_new_bytes = 0
        self.accepted = 0
        self.rejected = 0

    def __repr__(self) -> str:
        return f"<FaultProxy {self.host}:{self.port} -> {self.target_host}:{self.target_port}>"

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        """Listen and start accepting (idempotent); returns the proxy."""
        if self._accept_thread is not None:
            return self
        # The reservation socket keeps the port bound (not listening) for the proxy's whole life, so refuse_new()
        # can close the listener (new SYNs get a RST: ECONNREFUSED) and heal() can listen on the same port again
        # without racing other processes for it. Both use SO_REUSEPORT; a third party cannot bind the port.
        reservation = self._new_socket()
        reservation.bind((self.host, 0))
        self.port = int(reservation.getsockname()[1])
        self._reservation = reservation
        self._listener = self._listen()
        self._stopping.clear()
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"faultproxy-{self.port}", daemon=True)
        self._accept_thread.start()
        return self

    def _new_socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        return sock

    def _listen(self) -> socket.socket:
        listener = self._new_socket()
        try:
            listener.bind((self.host, self.port))
            listener.listen(128)
        except OSError:
            listener.close()
            raise
        listener.settimeout(_POLL)
        return listener

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection (FIN) and join every thread. Idempotent."""
        self._stopping.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
            self._accept_thread = None
        with self._accept_lock:
            listener, self._listener = self._listener, None
            reservation, self._reservation = self._reservation, None
        for sock in (listener, reservation):
            if sock is not None:
                _close(sock)
        for conn in self.connections():
            conn.join(timeout)
            conn._finish("proxy stopped", rst=False)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the accept thread runs."""
        return self._accept_thread is not None and self._accept_thread.is_alive()

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` that clients connect to."""
        return self.host, self.port

    # ---- accepting -------------------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            # The listener is only closed or replaced under _accept_lock, never while accept() runs on it.
            with self._accept_lock:
                listener = self._listener
                accepted: tuple[socket.socket, tuple[str, int]] | None = None
                if listener is not None:
                    try:
                        client, addr = listener.accept()
                        accepted = client, (str(addr[0]), int(addr[1]))
                    except (TimeoutError, OSError):
                        pass
            if accepted is not None:
                self._admit(*accepted)
            elif listener is None:
                time.sleep(_POLL)

    def _admit(self, client: socket.socket, addr: tuple[str, int]) -> None:
        with self._lock:
            if len(self._conns) >= self.max_connections:
                self.rejected += 1
                _abort(client)
                return
            conn = ProxiedConnection(self, client, addr, self._pick_target())
            if self._blackholed:
                conn._blackholed = True
            conn._delay = self._delay
            if self._cut_new:
                conn._cut_remaining = self._cut_new_bytes
                self._cut_new -= 1
            self._conns[conn.id] = conn
            self.accepted += 1
        conn.start()

    def _pick_target(self) -> tuple[str, int]:
        """The server a newly accepted connection goes to (called under the lock; subclasses may switch it)."""
        return self.target_host, self.target_port

    def _forget(self, conn: ProxiedConnection) -> None:
        with self._lock:
            if self._conns.pop(conn.id, None) is not None and self.record:
                self.finished.append(conn)

    # ---- inspection ------------------------------------------------------------------------------------------

    def connections(self) -> list[ProxiedConnection]:
        """The live proxied connections, oldest first."""
        with self._lock:
            return sorted(self._conns.values(), key=lambda c: c.id)

    @property
    def connection_count(self) -> int:
        """Live proxied connections."""
        with self._lock:
            return len(self._conns)

    def wait_for_connections(self, n: int, timeout: float = 5.0) -> int:
        """Poll until exactly ``n`` connections are live; return the last count."""
        deadline = time.monotonic() + timeout
        while True:
            count = self.connection_count
            if count == n or time.monotonic() >= deadline:
                return count
            time.sleep(0.005)

    # ---- faults ----------------------------------------------------------------------------------------------

    def blackhole(self) -> None:
        """Sticky: current and new connections forward nothing, in either direction, until :meth:`heal`."""
        with self._lock:
            self._blackholed = True
            conns = list(self._conns.values())
        for conn in conns:
            conn.blackhole()

    def delay(self, seconds: float) -> None:
        """Sticky: hold every chunk of current and new connections ``seconds`` before forwarding it."""
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        with self._lock:
            self._delay = float(seconds)
            conns = list(self._conns.values())
        for conn in conns:
            conn.delay(seconds)

    def reset(self, wait: float = 5.0) -> int:
        """One shot: abort every current connection with a TCP RST on both sides; return how many.

        Waits (up to ``wait`` seconds) until they are all closed, so the client's next read or write fails.
        """
        conns = self.connections()
        for conn in conns:
            conn.reset()
        for conn in conns:
            conn.wait_closed(wait)
        return len(conns)

    def cut_after(self, bytes_from_server: int) -> int:
        """One shot: each current connection forwards ``bytes_from_server`` more server bytes, then is aborted (RST).

        New connections are not affected. Returns how many connections were armed.
        """
        conns = self.connections()
        for conn in conns:
            conn.cut_after(bytes_from_server)
        return len(conns)

    def cut_new_after(self, bytes_from_server: int, connections: int = 1) -> None:
        """Arm the next ``connections`` new connections: each is aborted (RST) after ``bytes_from_server`` bytes.

        With a small count this cuts connects in the middle of the handshake (the greeting is ~100 bytes).
        """
        if bytes_from_server < 0 or connections < 0:
            raise ValueError("bytes_from_server and connections must be >= 0")
        with self._lock:
            self._cut_new, self._cut_new_bytes = connections, int(bytes_from_server)

    def refuse_new(self) -> None:
        """Sticky: new connects are refused (ECONNREFUSED) until :meth:`heal`; existing connections go on."""
        with self._accept_lock:
            self._refusing = True
            listener, self._listener = self._listener, None
            if listener is not None:
                _close(listener)  # queued, not yet accepted connects are reset too

    def heal(self) -> None:
        """Clear every fault: stop blackholing and delaying, disarm cuts, accept new connections again."""
        with self._accept_lock:
            if self._refusing and self._reservation is not None and not self._stopping.is_set():
                self._listener = self._listen()
            self._refusing = False
        with self._lock:
            self._blackholed = False
            self._delay = 0.0
            self._cut_new = 0
            conns = list(self._conns.values())
        for conn in conns:
            conn.heal()
