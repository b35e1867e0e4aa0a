"""The PyMySQL boundary: the one module that knows PyMySQL's private internals.

The client talks to a connection only through :class:`DriverConnection`'s small interface (plus PyMySQL's public
API: ``cursor``, ``query``, ``commit``, ``rollback``, ``ping``, ``open``, ``escape``):

- :func:`connect` opens one connection, every handshake read and write bounded by a timeout and the deadline;
- :meth:`DriverConnection.set_io_limits` / :meth:`~DriverConnection.set_deadline` bound the next statements;
- :meth:`DriverConnection.alive` is the liveness poll, :meth:`~DriverConnection.run` runs one statement,
  :attr:`~DriverConnection.in_transaction`, :attr:`~DriverConnection.connection_id`, ``server_address`` and
  :attr:`~DriverConnection.version` read the handshake's and the last reply's state, and ``close_quietly`` closes;
- :func:`escape_any_mode` escapes without a connection.

Liveness. Between statements the MySQL protocol is silent: the server never sends anything unless asked. So when
the socket of an idle connection is readable, the server has spoken out of turn: it closed the connection (KILL,
``wait_timeout``, shutdown) or sent its farewell error packet. :meth:`DriverConnection.alive` polls the socket
with a zero timeout (one ``poll()`` system call, no round trip).
"""

from __future__ import annotations

import contextlib
import io
import math
import select
import socket
import ssl
import weakref
from collections.abc import Callable

import pymysql
import pymysql.connections
import pymysql.cursors
from pymysql.constants import CLIENT, COMMAND, CR, SERVER_STATUS
from pymysql.protocol import EOFPacketWrapper, OKPacketWrapper

from ._deadline_io import IO_SLACK, DeadlineReached, DeadlineSocketIO, IoLimits
from ._escape import bind, escape_any_mode
from ._tcp import open_tcp
from ._wire import column_name, pick
from .results import Rows

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any, ClassVar

    from pymysql.connections import Connection

    _BaseConnection = Connection[Any]
else:
    _BaseConnection = pymysql.connections.Connection

__all__ = ["DriverConnection", "connect", "escape_any_mode"]

_QUIT_WAIT = 0.05
"""Seconds ``close()`` may wait to send COM_QUIT when the deadline has (nearly) passed."""
_IN_TRANS = SERVER_STATUS.SERVER_STATUS_IN_TRANS


# Base methods the per-I/O and per-statement overrides call, looked up once (a zero-argument super() costs a lookup).
_pymysql_write_bytes = pymysql.connections.Connection._write_bytes  # type: ignore[attr-defined]
_pymysql_execute_command = pymysql.connections.Connection._execute_command  # type: ignore[attr-defined]


class DriverConnection(_BaseConnection):
    """PyMySQL's connection, with every socket operation bounded by the deadline, and one shared TLS context.

    Deadline. PyMySQL's ``read_timeout``/``write_timeout`` bound each socket operation, however many a statement
    or a handshake takes. Here every ``recv`` and every write also waits at most until the deadline (see
    :meth:`set_io_limits`): the socket timeout is lowered to the time left whenever it could carry the operation
    past the deadline, and an operation that would start after it fails at once, as a socket timeout
    (``OperationalError`` 2013 or 2006 with the ``TimeoutError`` as its context).

    TLS context. Without TLS options PyMySQL builds ``ssl.create_default_context()`` (it loads the system CA store)
    in every ``Connection()``, even when the server offers no TLS: tens of milliseconds of CPU on each connect
    attempt, retries included. That context is always configured the same way, so it is built once per process.
    Explicit TLS options (``ssl``, ``ssl_ca``, ...) still get a context of their own, and ``ssl_verify_identity``
    checks the host name also without ``ssl_ca`` (against the system CA store), where PyMySQL alone skips it.
    ``ssl_ca`` alone verifies the certificate chain and the host name (PyMySQL alone checks neither); an explicit
    ``ssl_verify_cert=False`` / ``ssl_verify_identity=False`` still turns a check off.
    When TLS options are given and the server offers no TLS, nothing is sent (PyMySQL < 1.2 sent the login in
    clear text).
    """

    _shared_tls: ClassVar[ssl.SSLContext | None] = None
    # PyMySQL internals used below (not in its type stubs); declared only, PyMySQL sets them
    _sock: socket.socket | None
    _rfile: io.BufferedReader | None
    _read_timeout: float | None
    _write_timeout: float | None
    _current_timeout: float | None
    _result: Any
    server_capabilities: int
    server_status: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._io = IoLimits(kwargs.get("read_timeout"), kwargs.get("write_timeout"))
        self._io_handshaking = False
        self._reader_sock: object = None
        self._poller: select.poll | None = None
        self._polled_sock: object = None
        self._command_sent = False  # the last command was written completely (only LOCAL INFILE data follows it)
        if kwargs.get("ssl_ca"):
            # PyMySQL verifies nothing when only ssl_ca is given (CERT_NONE, no host name): a CA given is a CA to check.
            for option in ("ssl_verify_cert", "ssl_verify_identity"):
                if kwargs.get(option) is None:
                    kwargs[option] = True
        super().__init__(*args, **kwargs)

    # ---- the client's interface -------------------------------------------------------------------------------
    def set_io_limits(self, read_timeout: float | None, write_timeout: float | None, deadline: float | None) -> None:
        """Bound each read/write by its timeout (``None``: no bound) and all of them by ``deadline`` (client clock).

        Costs three compares when nothing changed (the common case: once per statement).
        """
        lim = self._io
        if lim.deadline == deadline and lim.read_cap == read_timeout and lim.write_cap == write_timeout:
            return
        lim.read_cap, lim.write_cap, lim.deadline = read_timeout, write_timeout, deadline
        if deadline is None and not self._io_handshaking:
            lim.recheck_at = math.inf
            self._read_timeout = read_timeout  # PyMySQL applies them before its next read/write
            self._write_timeout = write_timeout
        else:
            lim.recheck_at = -math.inf

    def set_deadline(self, deadline: float | None) -> None:
        """Move the deadline, keeping the per-operation timeouts (a read in progress keeps its bound)."""
        lim = self._io
        self.set_io_limits(lim.read_cap, lim.write_cap, deadline)

    def alive(self) -> bool:
        """False when the socket is gone or the server has spoken out of turn (EOF or a farewell packet)."""
        sock = self._sock
        if sock is None:
            return False
        try:
            if self._polled_sock is not sock:
                poller = self._poller = select.poll()
                poller.register(sock, select.POLLIN | select.POLLPRI)
                self._polled_sock = sock
            return not self._poller.poll(0)  # type: ignore[union-attr]
        except (OSError, ValueError):
            return False

    @property
    def in_transaction(self) -> bool:
        """The last status the server reported (no round trip); stays set after the socket is gone."""
        return bool((getattr(self, "server_status", 0) or 0) & _IN_TRANS)

    @property
    def connection_id(self) -> int:
        """The server's id of this connection (``CONNECTION_ID()``), from the handshake; 0 before it."""
        return int(getattr(self, "server_thread_id", (0,))[0])

    @property
    def version(self) -> str:
        """The server's version string from the handshake (``8.0.35``, ``5.5.5-10.11.6-MariaDB``); "" before it."""
        return str(getattr(self, "server_version", "") or "")

    def run(self, sql: str, args: Any = None) -> Rows:
        """Run one statement and return its rows as dicts (a :class:`~serverless_mysql.Rows`).

        What PyMySQL's ``DictCursor`` gives (the same placeholders, escaping, errors, row dicts and key names),
        without building and closing a cursor object per statement: this is the path of every ``db.query()``.
        """
        if args is not None:
            sql = bind(self, sql, args)
        self.query(sql)
        result = self._result
        fields = result.fields if result.description else None
        if fields:
            names: list[str] = []
            for field in fields:
                name = field.name
                names.append(field.table_name + "." + name if name in names else name)
            rows = Rows([dict(zip(names, row, strict=False)) for row in result.rows or ()])
            rows.columns = tuple([field.name for field in fields])
        else:
            rows = Rows()
        rows.affected_rows = max(result.affected_rows or 0, 0)
        rows.insert_id = result.insert_id or 0
        while result.has_next:  # a CALL's further result sets: read them, as a cursor's close() does
            self.next_result()
            result = self._result
        return rows

    def columns(self, sql: str, names: tuple[str, ...]) -> list[tuple[bytes | None, ...]]:
        """Run ``sql`` (no parameters) and return only the columns ``names`` of its rows, undecoded (NULL: ``None``).

        For a statement whose rows are read in bulk and mostly thrown away (housekeeping's ``SHOW PROCESSLIST``):
        :meth:`run` decodes every column of every row, two and a half times the client's CPU (:mod:`._wire`).
        A statement without rows gives ``[]``; further result sets are read and dropped, as :meth:`run` does.
        Raises as :meth:`run` does, and ``ValueError`` when a column is missing (the whole reply read: the
        connection goes on) or the server asks for a LOCAL INFILE (the connection is closed).
        """
        self._execute_command(COMMAND.COM_QUERY, sql)
        read: Callable[[], Any] = self._read_packet  # PyMySQL's, untyped in its stubs
        first = read()
        rows: list[tuple[bytes | None, ...]] = []
        problem = ""
        if first.is_ok_packet():
            ok = OKPacketWrapper(first)
            self.server_status, more = ok.server_status, ok.has_next
        elif first.is_load_local_packet():
            self._force_close()  # type: ignore[attr-defined]  # the server waits for the file's contents
            raise ValueError(f"{sql!r} asked for a LOCAL INFILE; columns() reads rows only (connection closed)")
        else:
            fields = [column_name(read().get_all_data()) for _ in range(first.read_length_encoded_integer())]
            read()  # the EOF after the column definitions (PyMySQL never asks for CLIENT_DEPRECATE_EOF)
            packets: list[bytes] = []
            while not (packet := read()).is_eof_packet():
                packets.append(packet.get_all_data())
            more = EOFPacketWrapper(packet).has_next
            if missing := [name for name in names if name not in fields]:
                problem = f"{sql!r} returned no column {missing[0]!r} (its columns: {', '.join(fields)})"
            else:
                wanted = [fields.index(name) for name in names]
                rows = [pick(data, wanted) for data in packets]
        while more:  # a CALL's further result sets: read to the end, as run() does
            self.next_result()
            more = self._result.has_next
        if problem:
            raise ValueError(problem)
        return rows

    def close_quietly(self) -> None:
        """COM_QUIT if the socket still takes it (the server frees the slot at once), then drop the socket."""
        try:
            if self.open:
                self.close()
        except Exception:  # noqa: S110 - closing a broken socket may fail; it is gone either way
            pass
        with contextlib.suppress(Exception):
            self._force_close()  # type: ignore[attr-defined]

    # ---- deadline ---------------------------------------------------------------------------------------------
    def _bound_io(self, *, write: bool) -> None:
        """Set the socket timeout for the next operation so that it ends by the deadline; raise if it has passed."""
        lim = self._io
        if self._io_handshaking:
            self._install_reader()  # after the TLS upgrade PyMySQL made a new reader: bound it too
        read_cap, write_cap, deadline = lim.read_cap, lim.write_cap, lim.deadline
        if deadline is None:
            read, written, recheck = read_cap, write_cap, math.inf
        else:
            left = deadline - lim.clock()
            if left <= 0:
                raise DeadlineReached("timed out: the deadline was reached")
            read = left if read_cap is None else min(read_cap, left)
            written = left if write_cap is None else min(write_cap, left)
            recheck = deadline + IO_SLACK - max(read, written)
        # PyMySQL switches the socket between these two before its reads and writes: both are within the bound.
        self._read_timeout, self._write_timeout = read, written
        lim.recheck_at = -math.inf if self._io_handshaking else recheck
        timeout = written if write else read
        sock = self._sock
        if sock is not None and self._current_timeout != timeout:
            sock.settimeout(timeout)
            self._current_timeout = timeout

    def _install_reader(self) -> None:
        sock = self._sock
        if sock is None or sock is self._reader_sock:
            return
        old = self._rfile
        self._rfile = io.BufferedReader(DeadlineSocketIO(sock, self._io, weakref.ref(self)))
        self._reader_sock = sock
        if old is not None:
            old.close()  # PyMySQL's reader: nothing was read through it yet

    # ---- PyMySQL hooks ----------------------------------------------------------------------------------------
    def _create_ssl_ctx(self, sslp: object) -> ssl.SSLContext:
        if isinstance(sslp, dict) and not sslp:
            ctx = DriverConnection._shared_tls
            if ctx is None:  # two threads may both build it: harmless, one wins
                ctx = DriverConnection._shared_tls = super()._create_ssl_ctx(sslp)  # type: ignore[misc]
            return ctx
        ctx = super()._create_ssl_ctx(sslp)  # type: ignore[misc]
        if isinstance(sslp, dict) and sslp.get("check_hostname") and not ctx.check_hostname:
            # PyMySQL turns the host-name check off when no CA file is given (system CA store).
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.check_hostname = True
        return ctx  # type: ignore[no-any-return]

    def connect(self, sock: Any = None) -> None:
        """Open the socket and do the handshake (PyMySQL's), every operation bounded by the deadline."""
        self._io_handshaking = True  # every handshake operation goes through _bound_io
        self._io.recheck_at = -math.inf
        try:
            super().connect(sock if sock is not None or self.unix_socket else self._open_tcp())
        finally:
            self._io_handshaking = False
            self._io.recheck_at = -math.inf

    def _open_tcp(self) -> socket.socket:
        """PyMySQL's socket, with the host name's resolution bounded by ``connect_timeout`` and the deadline too."""
        lim, timeout = self._io, self.connect_timeout

        def left() -> float | None:
            return timeout if lim.deadline is None else min(timeout or math.inf, lim.deadline - lim.clock())

        source = None if self.bind_address is None else (self.bind_address, 0)
        try:
            # server_address: the server itself, whatever name led there (a failover changes it).
            sock, self.server_address = open_tcp(self.host, self.port, left=left, source_address=source)
        except OSError as exc:
            raise pymysql.err.OperationalError(
                CR.CR_CONN_HOST_ERROR, f"Can't connect to MySQL server on {self.host!r} ({exc})"
            ) from exc
        self.host_info = f"socket {self.host}:{self.port}"
        return sock

    def _get_server_information(self) -> None:
        self._install_reader()  # before the first read: the greeting
        super()._get_server_information()  # type: ignore[misc]

    def _request_authentication(self) -> None:
        if getattr(self, "_ssl_required", self.ssl) and not self.server_capabilities & CLIENT.SSL:
            # PyMySQL 1.2 refuses this too; older versions sent the login (a password, an IAM token) in clear text.
            raise pymysql.err.OperationalError(
                CR.CR_SSL_CONNECTION_ERROR, "SSL is required but the server doesn't support it; nothing was sent"
            )
        super()._request_authentication()  # type: ignore[misc]
        self._install_reader()  # normally done at the first write after the TLS upgrade already

    def close(self) -> None:
        """COM_QUIT and close; at the deadline, COM_QUIT still gets a moment."""
        lim = self._io
        if lim.deadline is not None and lim.clock() + _QUIT_WAIT > lim.deadline:
            # COM_QUIT (5 bytes an idle socket takes at once) lets the server free the slot without logging an
            # aborted connection: worth a moment even at the deadline.
            self.set_io_limits(_QUIT_WAIT, _QUIT_WAIT, None)
        super().close()

    def _write_bytes(self, data: bytes) -> None:
        lim = self._io
        recheck_at = lim.recheck_at
        if recheck_at != math.inf and lim.clock() > recheck_at:
            try:
                self._bound_io(write=True)
            except OSError as exc:
                self._force_close()  # type: ignore[attr-defined]
                if self._command_sent:  # the deadline, in the middle of a LOCAL INFILE stream
                    raise pymysql.err.OperationalError(CR.CR_SERVER_LOST, f"Lost connection ({exc})") from exc
                raise pymysql.err.OperationalError(
                    CR.CR_SERVER_GONE_ERROR, f"MySQL server has gone away ({exc}; nothing was sent)"
                ) from exc
        if self._command_sent:  # streaming a LOCAL INFILE: the server runs the statement already
            self._write_file_data(data)
            return
        _pymysql_write_bytes(self, data)

    def _write_file_data(self, data: bytes) -> None:
        """A write after the statement was sent: a failure is a lost connection (2013), never "not sent" (2006)."""
        if self._sock is None:  # PyMySQL's clean-up writes the end packet after a failed write
            raise pymysql.err.OperationalError(CR.CR_SERVER_LOST, "Lost connection while sending LOCAL INFILE data")
        try:
            _pymysql_write_bytes(self, data)
        except pymysql.err.OperationalError as exc:
            raise pymysql.err.OperationalError(
                CR.CR_SERVER_LOST, f"Lost connection while sending LOCAL INFILE data ({exc.args[-1]})"
            ) from exc

    def _execute_command(self, command: int, sql: Any) -> None:
        self._command_sent = False  # a write failing until the command is out: the server never got it (2006)
        _pymysql_execute_command(self, command, sql)
        self._command_sent = True


def connect(
    kwargs: dict[str, Any],
    *,
    timeout: float | None,
    deadline: float | None,
    clock: Callable[[], float],
) -> DriverConnection:
    """One connect attempt: each handshake read and write waits at most ``timeout``, all of them end by ``deadline``.

    Raises ``pymysql.MySQLError`` as PyMySQL does (a deadline reached mid-handshake is a socket timeout).
    """
    conn = DriverConnection(
        **{
            **kwargs,
            "cursorclass": pymysql.cursors.DictCursor,
            "connect_timeout": timeout,
            "read_timeout": timeout,
            "write_timeout": timeout,
            "defer_connect": True,
        }
    )
    conn._io.clock = clock
    conn.set_io_limits(timeout, timeout, deadline)
    conn.connect()
    return conn
