"""Private, throwaway MariaDB servers for the test-suite and the benchmark.

Every :class:`MariaDBServer` is a real ``mariadbd`` process listening on a free loopback port (``127.0.0.1``)
with its own temporary data directory, started with ``--no-defaults`` so the machine's ``my.cnf`` is never read
and the system server (usually on port 3306) is never touched.

Speed: ``mariadb-install-db`` runs at most once per mariadbd build. The resulting template datadir is cached in
``$SMYSQL_TEST_CACHE_DIR`` (default: ``<tempdir>/smysql-mariadb-<uid>``), keyed by the mariadbd binary and version,
and copied for every new server, so a server start is a copy plus a boot (a few hundred milliseconds).

Connections:

* ``server.port`` is the application port. Its ``max_connections`` limit is exactly the one you asked for.
* Root helpers (:meth:`MariaDBServer.root`, :meth:`~MariaDBServer.execute`, :meth:`~MariaDBServer.processlist`,
  ...) use a second loopback port, MariaDB's ``extra_port`` (``server.admin_port``). Connections there are counted
  against ``extra_max_connections`` instead of ``max_connections``, so inspecting a server never takes a slot
  from the application, and never shows up in ``Threads_connected``. They do show up in the processlist as
  ``root``; pass ``user=...`` to filter them out.

Environment variables:

``SMYSQL_TEST_URL``
    Use your own, already running server instead of private ones, e.g. ``mysql://root:pw@127.0.0.1:3306/smysql_test``.
    The account must be able to create users and databases and to kill threads; the host must be a loopback
    address. The database (URL path, default ``smysql_test``) is created if missing; users created by the tests are
    dropped at the end. Starting, stopping, crashing or restarting that server, or starting extra servers, is
    impossible: those calls raise :class:`PrivateServerRequired` (the test-suite turns that into a skip).
``SMYSQL_TEST_CACHE_DIR``
    Where the template datadir is cached.
``SMYSQL_MARIADBD`` / ``SMYSQL_MARIADB_INSTALL_DB``
    Paths of the ``mariadbd`` and ``mariadb-install-db`` binaries, when they are not in the usual places.

What is borrowed and what is written here:

* **mirakuru** runs each mariadbd: spawns it in a session of its own, polls readiness until a deadline (here: root
  can log in on the admin port), stops it with SIGTERM then SIGKILL, kills it with SIGKILL, and reports an early
  exit or a timeout (turned into :class:`MariaDBStartError` with the error log's tail).
* **port-for** chooses the ports: free ones outside the kernel's ephemeral range, so no client socket takes a
  server's port while it is down between :meth:`~MariaDBServer.crash` and the restart on the same port.
* **pytest-mysql** (built on the two) is not used, and its auto-loading plugin is switched off (``-p
  no:pytest_mysql`` in pyproject.toml): its executor starts the server through ``mysqld_safe``, which restarts a
  SIGKILLed server by itself (``crash()`` must leave it down); it runs ``mysql_install_db`` for every server (the
  cached template below makes a start a copy plus a boot: ~0.4 s instead of ~1.1 s here); it shuts down with
  ``mysqladmin`` as a password-less root; it has no admin port; and its fixtures are pytest-only, while ``bench/``
  starts servers without pytest. It also needs Python >= 3.11 (this project supports 3.10).
* Written here, because none of them does it: the template datadir cache and the secure first start (root's
  password set by ``--init-file`` before the first connection), ``--no-defaults`` and the server options, the admin
  port (``extra_port``) and the root helpers, crash/restart on the same port and datadir, the error log and its
  tail in errors, application users and zombie connections, and the external server (``SMYSQL_TEST_URL``).

The module imports neither pytest nor the library under test; ``bench/`` uses it too::

    from harness.mariadb import MariaDBServer

    with MariaDBServer(max_connections=20) as server:
        user = server.create_user()
        ...
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import ipaddress
import itertools
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final
from urllib.parse import quote, unquote, urlsplit

import mirakuru.base
import port_for
import pymysql
import pymysql.cursors
from mirakuru import TCPExecutor
from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, ProcessFinishedWithError, TimeoutExpired
from pymysql.connections import Connection

__all__ = [
    "ENV_URL",
    "AppUser",
    "ExternalServer",
    "MariaDBError",
    "MariaDBNotInstalled",
    "MariaDBServer",
    "MariaDBStartError",
    "PrivateServerRequired",
    "external_url",
    "free_ports",
    "memory_tmp_root",
    "session_server",
    "template_datadir",
    "thread_id",
]

ENV_URL: Final = "SMYSQL_TEST_URL"
ENV_CACHE_DIR: Final = "SMYSQL_TEST_CACHE_DIR"
ENV_MARIADBD: Final = "SMYSQL_MARIADBD"
ENV_INSTALL_DB: Final = "SMYSQL_MARIADB_INSTALL_DB"

LOOPBACK: Final = "127.0.0.1"
DEFAULT_DATABASE: Final = "app"
EXTERNAL_DEFAULT_DATABASE: Final = "smysql_test"
MIN_MAX_CONNECTIONS: Final = 10  # MariaDB silently clamps smaller values to 10
ADMIN_MAX_CONNECTIONS: Final = 100
ER_ACCESS_DENIED: Final = 1045

# Bump when the template-building recipe changes, so stale caches are not reused.
_TEMPLATE_FORMAT: Final = 1
# InnoDB options that must be identical for mariadb-install-db and mariadbd.
_INNODB_ARGS: Final = (
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=4M",
    "--innodb-use-native-aio=0",  # many servers at once would exhaust the kernel's aio-max-nr
)
_SERVER_ARGS: Final = (
    *_INNODB_ARGS,
    "--innodb-temp-data-file-path=ibtmp1:4M:autoextend",
    "--innodb-flush-log-at-trx-commit=2",  # survives SIGKILL (crash()); only an OS crash could lose data
    "--innodb-doublewrite=0",
    "--skip-name-resolve",
    "--skip-log-bin",
    "--performance-schema=OFF",
    "--event-scheduler=OFF",
    "--userstat=1",
    "--max-connect-errors=1000000000",  # aborted handshakes must never block 127.0.0.1
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
    "--skip-external-locking",
)
# install-db creates root@<hostname> (unusable with --skip-name-resolve, and it spams the error log) and, on some
# versions, anonymous users. Keep only the loopback root accounts.
_TEMPLATE_SQL: Final = """\
DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host NOT IN ('localhost', '127.0.0.1', '::1'));
DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1');
"""
_ROOT_HOSTS: Final = ("localhost", "127.0.0.1", "::1")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_USER_NAME = re.compile(r"[A-Za-z0-9_]{1,32}")
_user_counter = itertools.count(1)
_PORT_IN_USE = ("Address already in use", "Do you already have another server running")
_POLL_S: Final = 0.02  # how often mirakuru checks whether a starting server is ready / a stopping one is gone

# mirakuru's exit hook SIGKILLs every process whose mirakuru_uuid merely *contains* this process's pid as a
# substring, i.e. servers that other processes on this machine started (pid 412 matches "4123:..."). Ours are
# killed by pid through their weakref finalizers, so that hook is not needed and must not run.
atexit.unregister(mirakuru.base.cleanup_subprocesses)


class MariaDBError(RuntimeError):
    """Base class of this module's errors."""


class MariaDBNotInstalled(MariaDBError):
    """mariadbd / mariadb-install-db cannot be found."""


class MariaDBStartError(MariaDBError):
    """The server died or did not accept connections in time; the message ends with the error log's tail."""


class _PortTaken(MariaDBStartError):
    """Something already accepts connections on the port chosen for a new server."""


class PrivateServerRequired(MariaDBError):
    """The operation needs a private server, but the tests run against ``SMYSQL_TEST_URL``."""


# --------------------------------------------------------------------------------------------------------------
# Binaries and the cached template datadir
# --------------------------------------------------------------------------------------------------------------


def _find_binary(env: str, names: Sequence[str], extra_dirs: Sequence[str]) -> Path:
    configured = os.environ.get(env)
    if configured:
        path = Path(configured)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise MariaDBNotInstalled(f"${env}={configured!r} is not an executable file")
    search_path = os.pathsep.join([os.environ.get("PATH", ""), *extra_dirs])
    for name in names:
        found = shutil.which(name, path=search_path)
        if found:
            return Path(found)
    raise MariaDBNotInstalled(
        f"{names[0]} not found (looked in $PATH and {', '.join(extra_dirs)}). The integration tests need a local "
        f"MariaDB server binary: install the 'mariadb-server' package (e.g. `apt-get install mariadb-server`; "
        f"`make` does it for you), set ${env}, or point ${ENV_URL} at a running server."
    )


def mariadbd_path() -> Path:
    return _find_binary(ENV_MARIADBD, ("mariadbd", "mysqld"), ("/usr/sbin", "/usr/local/sbin", "/usr/libexec"))


def install_db_path() -> Path:
    return _find_binary(
        ENV_INSTALL_DB, ("mariadb-install-db", "mysql_install_db"), ("/usr/bin", "/usr/local/bin", "/usr/scripts")
    )


def _user_args() -> list[str]:
    # mariadbd refuses to run as root unless told so explicitly.
    return ["--user=root"] if os.geteuid() == 0 else []


def _cache_root() -> Path:
    configured = os.environ.get(ENV_CACHE_DIR)
    root = Path(configured) if configured else Path(tempfile.gettempdir()) / f"smysql-mariadb-{os.geteuid()}"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if root.stat().st_uid != os.geteuid():
        raise MariaDBError(f"template cache {root} belongs to another user; set ${ENV_CACHE_DIR}")
    return root


_template_lock = threading.Lock()
_template_cache: dict[str, Path] = {}
_version_cache: dict[tuple[str, int, int], str] = {}


def template_datadir() -> Path:
    """Return a pristine, freshly installed datadir (cached on disk; built once per mariadbd build). Never modify it."""
    mariadbd = mariadbd_path()
    with _template_lock:
        st = mariadbd.stat()
        binary_id = (str(mariadbd), st.st_size, st.st_mtime_ns)
        version = _version_cache.get(binary_id)
        if version is None:
            version = subprocess.run(
                [str(mariadbd), "--no-defaults", "--version"], capture_output=True, text=True, check=False
            ).stdout.strip()
            _version_cache[binary_id] = version
        key_material = repr((_TEMPLATE_FORMAT, *binary_id, version, _INNODB_ARGS))
        key = hashlib.sha256(key_material.encode()).hexdigest()[:16]
        cached = _template_cache.get(key)
        if cached is not None and (cached / "ok").exists():
            return cached / "data"
        root = _cache_root()
        final = root / f"template-{key}"
        with open(root / f"template-{key}.lock", "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)  # other processes (xdist workers, bench) wait for one build
            if not (final / "ok").exists():
                shutil.rmtree(final, ignore_errors=True)
                _build_template(final, root)
        _template_cache[key] = final
        return final / "data"


def _build_template(final: Path, root: Path) -> None:
    install_db = install_db_path()
    build = Path(tempfile.mkdtemp(prefix="build-", dir=root))
    try:
        sql = build / "template.sql"
        sql.write_text(_TEMPLATE_SQL)
        cmd = [
            str(install_db),
            "--no-defaults",
            f"--datadir={build / 'data'}",
            *_user_args(),
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
            f"--extra-file={sql}",
            *_INNODB_ARGS,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, cwd=build)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
            raise MariaDBError(f"mariadb-install-db failed with exit code {proc.returncode}:\n{tail}")
        sql.unlink()
        (build / "ok").write_text("ok\n")
        os.rename(build, final)
    finally:
        shutil.rmtree(build, ignore_errors=True)


# --------------------------------------------------------------------------------------------------------------
# Users
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppUser:
    """An application account: ``GRANT ALL`` on one database, nothing global (except PROCESS when asked)."""

    name: str
    password: str = field(repr=False)
    host: str
    port: int
    database: str

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments (host/port/user/password/database) for ``pymysql.connect`` or ``ServerlessMySQL``.

        Typed ``dict[str, Any]`` (not ``object``) so that ``pymysql.connect(**kw)`` type-checks.
        """
        return {
            "host": self.host,
            "port": self.port,
            "user": self.name,
            "password": self.password,
            "database": self.database,
        }

    def connect(self, **kw: Any) -> Connection[pymysql.cursors.DictCursor]:
        """A new PyMySQL connection as this user (DictCursor); ``kw`` overrides the defaults."""
        params: dict[str, Any] = {**self.connect_kwargs(), "cursorclass": pymysql.cursors.DictCursor, **kw}
        return pymysql.connect(**params)

    def url(self) -> str:
        """``mysql://user:password@host:port/database``, percent-encoded."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (
            f"mysql://{quote(self.name, safe='')}:{quote(self.password, safe='')}@{host}:{self.port}"
            f"/{quote(self.database, safe='')}"
        )


# --------------------------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------------------------


_good_ports: set[int] | None = None


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports that nothing listens on and nothing has bound (port-for).

    Chosen outside the kernel's ephemeral range (``ip_local_port_range``), so no client socket of this or another
    process is handed one of them between choosing it and binding it - nor while a crashed server is down and its
    port must stay free for the restart.
    """
    global _good_ports
    if _good_ports is None:
        _good_ports = port_for.available_good_ports()  # ~20 ms: computed once per process
    chosen: list[int] = []
    for _ in range(n):
        chosen.append(port_for.select_random(set(_good_ports), exclude_ports=chosen))
    return chosen


def _sql_string(value: str) -> str:
    return "'" + pymysql.converters.escape_string(value) + "'"


def thread_id(conn: Connection[Any]) -> int:
    """The server's thread id (``CONNECTION_ID()``) of ``conn``, from the handshake: no round trip."""
    method: Callable[[], int] = conn.thread_id  # untyped in types-PyMySQL
    return int(method())


def _quietly_close(conn: Connection[Any]) -> None:
    with contextlib.suppress(Exception):
        if conn.open:
            conn.close()


class _MariaDBProcess(TCPExecutor):
    """One run of mariadbd under mirakuru.

    Its own session (signals reach it alone), output into the error log, ready when ``ready()`` says so (root can
    log in), SIGTERM then SIGKILL on stop, SIGKILL on kill.
    """

    def __init__(
        self, command: list[str], port: int, *, ready: Callable[[], bool], log: BinaryIO, cwd: Path, timeout: float
    ) -> None:
        super().__init__(
            command,
            host=LOOPBACK,
            port=port,
            timeout=timeout,
            sleep=_POLL_S,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=str(cwd),
        )
        self._ready = ready

    def after_start_check(self) -> bool:
        return self._ready()

    @property
    def pid(self) -> int | None:
        process = self.process
        return process.pid if process is not None and process.poll() is None else None


class _Resources:
    """What must be released even if a server object is leaked (used by ``weakref.finalize``; no ref to the server)."""

    def __init__(self) -> None:
        self.proc: _MariaDBProcess | None = None
        self.tmpdir: Path | None = None

    def release(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(Exception):
                proc.kill()  # SIGKILL to its process group (mariadbd alone), by pid
        tmpdir, self.tmpdir = self.tmpdir, None
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)


class MariaDBServer:
    """A private ``mariadbd`` on loopback with a throwaway datadir. Use as a context manager, or start()/cleanup().

    ``basedir`` is the directory that holds this server's files (``data/``, socket, pid file, error log); by default a
    fresh temporary directory, deleted by :meth:`cleanup`. A given ``basedir`` is never deleted.
    """

    private: bool = True

    def __init__(
        self,
        *,
        max_connections: int = 100,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        basedir: Path | None = None,
        tmp_root: Path | None = None,
    ) -> None:
        """``basedir``: the caller's (kept); otherwise a new temporary one under ``tmp_root`` (default: $TMPDIR)."""
        if max_connections < MIN_MAX_CONNECTIONS:
            raise ValueError(f"MariaDB's minimum max_connections is {MIN_MAX_CONNECTIONS} (got {max_connections})")
        if isinstance(extra_args, str):
            raise TypeError("extra_args must be a sequence of arguments, not a string")
        self.max_connections = max_connections
        self.extra_args: tuple[str, ...] = tuple(extra_args)
        self.host: str = LOOPBACK
        self.database: str = DEFAULT_DATABASE
        self.root_user: str = "root"
        self._root_password = secrets.token_hex(16)
        self._fixed_port = port is not None
        ports = free_ports(2)
        self.port: int = port if port is not None else ports[0]
        self.admin_port: int = ports[1] if ports[1] != self.port else free_ports(1)[0]
        self._resources = _Resources()
        self._finalizer = weakref.finalize(self, self._resources.release)
        if basedir is None:
            self._basedir = Path(tempfile.mkdtemp(prefix="smysql-server-", dir=tmp_root))
            self._resources.tmpdir = self._basedir
        else:
            self._basedir = Path(basedir)
            self._basedir.mkdir(parents=True, exist_ok=True)
        self._initialized = (self._basedir / "data").exists()
        # A caller-owned basedir may be reused by a later object: keep root's password next to the datadir (0600).
        self._password_file = None if basedir is None else self._basedir / "root-password"
        if self._initialized and self._password_file is not None:
            try:
                self._root_password = self._password_file.read_text().strip()
            except FileNotFoundError:
                raise MariaDBError(f"{self.datadir} exists but was not created by MariaDBServer") from None
        self._lock = threading.RLock()
        self._monitor: Connection[pymysql.cursors.DictCursor] | None = None
        self._zombies: list[Connection[Any]] = []
        self.last_start_seconds: float | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.host}:{self.port} pid={self.pid}>"

    # ---- paths -----------------------------------------------------------------------------------------------

    @property
    def basedir(self) -> Path:
        """The directory that holds this server's files."""
        return self._basedir

    @property
    def datadir(self) -> Path:
        """The server's data directory (``basedir/data``)."""
        return self._basedir / "data"

    @property
    def socket_path(self) -> Path:
        """The Unix socket (unused by the helpers; they use TCP on loopback)."""
        return self._basedir / "mariadbd.sock"

    @property
    def error_log_path(self) -> Path:
        """The error log of mariadbd (kept across restarts)."""
        return self._basedir / "error.log"

    @property
    def pid(self) -> int | None:
        """The mariadbd process id while it runs, else None."""
        proc = self._resources.proc
        return proc.pid if proc is not None else None

    @property
    def running(self) -> bool:
        """True while the mariadbd process is alive."""
        return self.pid is not None

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def command(self) -> list[str]:
        """The mariadbd command line (without the one-off ``--init-file`` of the first start)."""
        return [
            str(mariadbd_path()),
            "--no-defaults",  # must be first
            *_user_args(),
            f"--datadir={self.datadir}",
            f"--tmpdir={self._basedir / 'tmp'}",
            f"--socket={self.socket_path}",
            f"--pid-file={self._basedir / 'mariadbd.pid'}",
            f"--log-error={self.error_log_path}",
            f"--bind-address={LOOPBACK}",
            f"--port={self.port}",
            f"--extra-port={self.admin_port}",
            f"--extra-max-connections={ADMIN_MAX_CONNECTIONS}",
            f"--max-connections={self.max_connections}",
            *_SERVER_ARGS,
            *self.extra_args,
        ]

    def start(self, timeout: float = 30.0) -> None:
        """Start mariadbd and wait until root can log in; raise :class:`MariaDBStartError` with the log tail if not."""
        with self._lock:
            if self.running:
                return
            t0 = time.monotonic()
            if not self._initialized:
                shutil.copytree(template_datadir(), self.datadir)
            (self._basedir / "tmp").mkdir(exist_ok=True)
            for attempt in itertools.count():
                try:
                    self._spawn_and_wait(timeout)
                    break
                except MariaDBStartError as exc:
                    # Someone grabbed our port between choosing it and binding it: choose again (first start only).
                    port_taken = isinstance(exc, _PortTaken) or any(s in self._log_tail(20) for s in _PORT_IN_USE)
                    if self._initialized or self._fixed_port or not port_taken or attempt >= 4:
                        raise
                    self.port, self.admin_port = free_ports(2)
            self._initialized = True
            self.last_start_seconds = time.monotonic() - t0

    def _spawn_and_wait(self, timeout: float) -> None:
        cmd = self.command()
        init_file: Path | None = None
        if not self._initialized:
            # Runs before the server accepts connections: there is no window with a password-less root.
            init_file = self._basedir / "init.sql"
            fd = os.open(init_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                for host in _ROOT_HOSTS:
                    f.write(f"ALTER USER 'root'@'{host}' IDENTIFIED BY {_sql_string(self._root_password)};\n")
                f.write(f"CREATE DATABASE IF NOT EXISTS `{self.database}` CHARACTER SET utf8mb4;\n")
            cmd.insert(2, f"--init-file={init_file}")
            if self._password_file is not None:
                fd = os.open(self._password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(self._root_password + "\n")
        log_offset = self.error_log_path.stat().st_size if self.error_log_path.exists() else 0
        try:
            with open(self.error_log_path, "ab") as log:
                proc = _MariaDBProcess(
                    cmd, self.port, ready=self._root_ready, log=log, cwd=self._basedir, timeout=timeout
                )
                self._resources.proc = proc
                try:
                    proc.start()  # Popen in a new session, then polls _root_ready() every _POLL_S until timeout
                except AlreadyRunning:
                    self._resources.proc = None
                    raise _PortTaken(f"port {self.port} already accepts connections: another process took it") from None
                except ProcessExitedWithError as exc:
                    self._resources.proc = None
                    raise MariaDBStartError(
                        f"mariadbd exited with code {exc.exit_code} during startup "
                        f"(port {self.port}).\n{self._log_tail(40, log_offset)}"
                    ) from None
                except TimeoutExpired:  # mirakuru has SIGKILLed it
                    self._resources.proc = None
                    raise MariaDBStartError(
                        f"mariadbd did not accept connections within {timeout:.0f}s (port {self.port}).\n"
                        f"{self._log_tail(40, log_offset)}"
                    ) from None
                except BaseException:
                    self._stop_process()  # e.g. root could not log in: not our datadir / password
                    raise
        finally:
            if init_file is not None:
                init_file.unlink(missing_ok=True)

    def _root_ready(self) -> bool:
        """Readiness for mirakuru: root can log in on the admin port (the TCP port alone opens earlier)."""
        try:
            self._connect_root(connect_timeout=2).close()
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] == ER_ACCESS_DENIED:  # up, but not our datadir / password
                raise MariaDBStartError(f"root cannot log in to the new server: {exc}") from None
            return False
        return True

    def _stop_process(self, *, kill: bool = False) -> None:
        """SIGTERM and wait (SIGKILL after the start timeout), or SIGKILL at once; then forget the process."""
        proc, self._resources.proc = self._resources.proc, None
        if proc is None:
            return
        if kill:
            proc.kill()
            return
        with contextlib.suppress(ProcessFinishedWithError):  # gone either way; a non-zero exit is in the log
            proc.stop()

    def _drop_connections(self) -> None:
        if self._monitor is not None:
            _quietly_close(self._monitor)
            self._monitor = None
        self.close_zombies()

    def stop(self) -> None:
        """SIGTERM (graceful shutdown), wait up to the start timeout, then SIGKILL. Idempotent. Keeps the datadir."""
        with self._lock:
            self._drop_connections()
            self._stop_process()

    def crash(self) -> None:
        """SIGKILL the server (no shutdown at all) and wait until it is gone. Zombie connections are dropped."""
        with self._lock:
            if not self.running:
                raise MariaDBError("crash(): the server is not running")
            self._stop_process(kill=True)
            self._drop_connections()

    def restart(self, timeout: float = 30.0) -> None:
        """Stop if running, then start again on the same datadir and ports."""
        with self._lock:
            self.stop()
            self.start(timeout)

    def cleanup(self) -> None:
        """Stop and delete the temporary directory (unless ``basedir`` was given)."""
        self.stop()
        self._finalizer()

    def __enter__(self) -> MariaDBServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()

    # ---- logs --------------------------------------------------------------------------------------------------

    def error_log(self) -> str:
        """The whole error log (``''`` before the first start)."""
        try:
            return self.error_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _log_tail(self, lines: int, offset: int = 0) -> str:
        try:
            with open(self.error_log_path, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return "(no error log)"
        return "--- mariadbd error log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    # ---- root helpers ------------------------------------------------------------------------------------------

    def _root_endpoint(self) -> tuple[str, int]:
        return self.host, self.admin_port

    def _connect_root(self, **kw: Any) -> Connection[pymysql.cursors.DictCursor]:
        host, port = self._root_endpoint()
        params: dict[str, Any] = {
            "host": host,
            "port": port,
            "user": self.root_user,
            "password": self._root_password,
            "autocommit": True,
            "cursorclass": pymysql.cursors.DictCursor,
            "charset": "utf8mb4",
            "connect_timeout": 5,
            **kw,
        }
        return pymysql.connect(**params)

    def root(self, **kw: Any) -> Connection[pymysql.cursors.DictCursor]:
        """A new root connection (autocommit, DictCursor) on the admin port; ``kw`` overrides, e.g. ``port=s.port``."""
        return self._connect_root(**kw)

    def root_url(self, database: str | None = None) -> str:
        """``mysql://root:...@127.0.0.1:<port>/<database>`` for the application port (e.g. for ``SMYSQL_TEST_URL``).

        Contains the root password: never log it.
        """
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (
            f"mysql://{quote(self.root_user, safe='')}:{quote(self._root_password, safe='')}@{host}:{self.port}"
            f"/{quote(database or self.database, safe='')}"
        )

    def execute(self, sql: str, args: Any = None) -> list[dict[str, Any]]:
        """Run one statement as root on a short-lived connection; returns the rows (``[]`` if none).

        Waits until the server has really ended that connection, so it never shows up in later counts.
        """
        conn = self._connect_root()
        helper_id = thread_id(conn)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                rows = list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()
        self._wait_gone([helper_id])
        return rows

    def _monitor_query(self, sql: str, args: Any = None) -> list[dict[str, Any]]:
        """Run a statement on the persistent helper connection (reconnecting once if the server restarted)."""
        with self._lock:
            try:
                return self._monitor_query_once(sql, args)
            except (pymysql.err.OperationalError, pymysql.err.InterfaceError):
                if self._monitor is not None:
                    _quietly_close(self._monitor)
                self._monitor = None
            return self._monitor_query_once(sql, args)

    def _monitor_query_once(self, sql: str, args: Any) -> list[dict[str, Any]]:
        if self._monitor is None or not self._monitor.open:
            self._monitor = self._connect_root()
        with self._monitor.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall()) if cur.description else []

    def _wait_gone(self, thread_ids: Sequence[int], timeout: float = 2.0) -> None:
        if not thread_ids:
            return
        placeholders = ", ".join(["%s"] * len(thread_ids))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self._monitor_query(
                f"SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID IN ({placeholders})",
                list(thread_ids),
            )
            if int(rows[0]["n"]) == 0:
                return
            time.sleep(0.005)

    def processlist(self, user: str | None = None) -> list[dict[str, Any]]:
        """``information_schema.PROCESSLIST`` rows (ID, USER, HOST, DB, COMMAND, TIME, STATE, INFO, ...) ordered by ID.

        Without the helper's own connection; only ``user``'s rows if given.
        """
        sql = "SELECT * FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()"
        if user is None:
            return self._monitor_query(sql + " ORDER BY ID")
        return self._monitor_query(sql + " AND USER = %s ORDER BY ID", [user])

    def connection_count(self, user: str | None = None) -> int:
        """Client connections (no system/daemon threads, not the helper's own); only ``user``'s if given."""
        return sum(
            1
            for row in self.processlist(user)
            if row["COMMAND"] not in ("Daemon", "Binlog Dump") and row["USER"] not in ("system user", "event_scheduler")
        )

    def wait_for_connection_count(self, expected: int, user: str | None = None, timeout: float = 5.0) -> int:
        """Poll until :meth:`connection_count` equals ``expected`` (closing is asynchronous); return the last count."""
        deadline = time.monotonic() + timeout
        while True:
            count = self.connection_count(user)
            if count == expected or time.monotonic() >= deadline:
                return count
            time.sleep(0.01)

    def wait_listed(self, ids: list[int], expected: set[int], timeout: float = 5.0) -> set[int]:
        """Poll until exactly ``expected`` of ``ids`` are listed; return the last listed subset.

        KILL only flags a thread; it leaves the processlist when it notices, which on a loaded machine takes a while.
        """
        deadline = time.monotonic() + timeout
        while True:
            listed = {row["ID"] for row in self.processlist()} & set(ids)
            if listed == expected or time.monotonic() >= deadline:
                return listed
            time.sleep(0.02)

    def set_global(self, name: str, value: object) -> None:
        """``SET GLOBAL name = value`` (``name`` must be a plain identifier)."""
        if not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"not a system variable name: {name!r}")
        self._monitor_query(f"SET GLOBAL {name} = %s", [value])

    def get_global(self, name: str) -> Any:
        """``SELECT @@GLOBAL.name`` (``name`` must be a plain identifier)."""
        if not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"not a system variable name: {name!r}")
        return self._monitor_query(f"SELECT @@GLOBAL.{name} AS v")[0]["v"]

    def status(self, name: str) -> str | None:
        """A ``SHOW GLOBAL STATUS`` value, e.g. ``status('Threads_connected')``."""
        rows = self._monitor_query("SHOW GLOBAL STATUS LIKE %s", [name])
        return str(rows[0]["Value"]) if rows else None

    def kill(self, thread_id: int) -> None:
        """``KILL <thread_id>`` (the connection, not just the query)."""
        self._monitor_query("KILL %s", [int(thread_id)])

    # ---- users and zombies -------------------------------------------------------------------------------------

    def create_user(
        self,
        name: str | None = None,
        password: str | None = None,
        *,
        process: bool = False,
        max_user_connections: int = 0,
    ) -> AppUser:
        """Create ``name@'%'`` with ALL on the database only (no SUPER, nothing global).

        PROCESS if ``process``; ``MAX_USER_CONNECTIONS`` if > 0. Unique name / random password when not given.

        Keep passwords ASCII: PyMySQL sends a ``str`` password as latin-1 bytes, while the server hashed the utf-8 of
        ``IDENTIFIED BY``, so a non-ASCII password is refused with 1045.
        """
        if name is None:
            name = f"u{next(_user_counter)}_{secrets.token_hex(3)}"
        if not _USER_NAME.fullmatch(name):
            raise ValueError(f"user names are 1-32 characters of [A-Za-z0-9_] here (got {name!r})")
        if password is None:
            password = secrets.token_urlsafe(16)
        if max_user_connections < 0:
            raise ValueError("max_user_connections must be >= 0")
        limits = f" WITH MAX_USER_CONNECTIONS {int(max_user_connections)}" if max_user_connections else ""
        self._before_create_user(name)
        conn = self._connect_root()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE USER %s@'%%' IDENTIFIED BY %s{limits}", [name, password])
                cur.execute(f"GRANT ALL PRIVILEGES ON `{self.database}`.* TO %s@'%%'", [name])
                if process:
                    cur.execute("GRANT PROCESS ON *.* TO %s@'%%'", [name])
        finally:
            conn.close()
        return AppUser(name=name, password=password, host=self.host, port=self.port, database=self.database)

    def _before_create_user(self, name: str) -> None:
        pass

    def open_zombies(self, user: AppUser, n: int) -> list[int]:
        """Open ``n`` connections as ``user`` and abandon them (command ``Sleep``); return their thread ids.

        The connections are kept referenced here (PyMySQL closes on garbage collection) until
        :meth:`close_zombies`. Nothing is sent after the handshake, not even ``SET autocommit``.
        """
        ids: list[int] = []
        for _ in range(n):
            params: dict[str, Any] = {**user.connect_kwargs(), "autocommit": None, "connect_timeout": 5}
            conn = pymysql.connect(**params)
            with self._lock:
                self._zombies.append(conn)
            ids.append(thread_id(conn))
        return ids

    @property
    def zombie_count(self) -> int:
        """Connections opened by :meth:`open_zombies` and not closed yet."""
        return len(self._zombies)

    def close_zombies(self) -> None:
        """Close every zombie opened through this object (ignoring connections the server already dropped)."""
        with self._lock:
            zombies, self._zombies = self._zombies, []
        for conn in zombies:
            _quietly_close(conn)


class ExternalServer(MariaDBServer):
    """The user's own server from ``SMYSQL_TEST_URL``: same helpers, but no lifecycle control.

    No start/stop/crash/restart, no error log, no datadir. Call :meth:`prepare` first and :meth:`cleanup` at the end
    (drops the users created through this object).
    """

    private = False

    def __init__(self, url: str) -> None:  # deliberately not calling super().__init__()
        parts = urlsplit(url)
        if parts.scheme not in ("mysql", "mariadb"):
            raise ValueError(f"${ENV_URL} must look like mysql://user:password@127.0.0.1:3306/database")
        hostname = parts.hostname or LOOPBACK
        if hostname != "localhost":
            try:
                loopback = ipaddress.ip_address(hostname).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise ValueError(f"${ENV_URL} must point at a loopback address (127.0.0.1 or ::1), not {hostname!r}")
        self.host = LOOPBACK if hostname == "localhost" else hostname
        self.port = parts.port or 3306
        self.admin_port = self.port
        self.root_user = unquote(parts.username or "root")
        self._root_password = unquote(parts.password or "")
        database = unquote(parts.path.lstrip("/")) or EXTERNAL_DEFAULT_DATABASE
        if not _IDENTIFIER.fullmatch(database):
            raise ValueError(f"database name in ${ENV_URL} must be a plain identifier, not {database!r}")
        self.database = database
        self.max_connections = 0
        self.extra_args = ()
        self._lock = threading.RLock()
        self._monitor = None
        self._zombies = []
        self._created_users: list[str] = []
        self.last_start_seconds = None

    def __repr__(self) -> str:
        return f"<ExternalServer {self.root_user}@{self.host}:{self.port}/{self.database}>"

    def _impossible(self, what: str) -> PrivateServerRequired:
        return PrivateServerRequired(f"{what} needs a private MariaDB server, but ${ENV_URL} is set")

    @property
    def basedir(self) -> Path:
        """The directory that holds this server's files."""
        raise self._impossible("basedir")

    @property
    def datadir(self) -> Path:
        """The server's data directory (``basedir/data``)."""
        raise self._impossible("datadir")

    @property
    def pid(self) -> int | None:
        """The mariadbd process id while it runs, else None."""
        return None

    @property
    def running(self) -> bool:
        """True while the mariadbd process is alive."""
        return True

    def prepare(self) -> None:
        """Check that the server is reachable and create the test database if needed."""
        self.execute(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
        self.max_connections = int(self.get_global("max_connections"))

    def start(self, timeout: float = 30.0) -> None:
        """Impossible on an external server: raises :class:`PrivateServerRequired`."""
        raise self._impossible("start()")

    def stop(self) -> None:
        """Impossible on an external server: raises :class:`PrivateServerRequired`."""
        raise self._impossible("stop()")

    def crash(self) -> None:
        """Impossible on an external server: raises :class:`PrivateServerRequired`."""
        raise self._impossible("crash()")

    def restart(self, timeout: float = 30.0) -> None:
        """Impossible on an external server: raises :class:`PrivateServerRequired`."""
        raise self._impossible("restart()")

    def error_log(self) -> str:
        """The whole error log (``''`` before the first start)."""
        raise self._impossible("error_log()")

    def command(self) -> list[str]:
        """Impossible on an external server: raises :class:`PrivateServerRequired`."""
        raise self._impossible("command()")

    def _before_create_user(self, name: str) -> None:
        self._created_users.append(name)

    def cleanup(self) -> None:
        """Close zombies and the helper connection; drop the users created through this object."""
        with self._lock:
            self.close_zombies()
            users, self._created_users = self._created_users, []
            for name in users:
                with contextlib.suppress(pymysql.err.Error):
                    self.execute("DROP USER IF EXISTS %s@'%%'", [name])
            if self._monitor is not None:
                _quietly_close(self._monitor)
                self._monitor = None

    def __enter__(self) -> ExternalServer:
        self.prepare()
        return self


def external_url() -> str | None:
    """The value of ``SMYSQL_TEST_URL``, or None when tests should use private servers."""
    return os.environ.get(ENV_URL) or None


def memory_tmp_root() -> Path | None:
    """``/dev/shm`` where it is a writable tmpfs directory, else None (the default temporary directory).

    A datadir there survives a SIGKILL of the server (the page cache is the process's disk), and its fsyncs cost
    nothing, so a benchmark's timeline shows the servers and clients, not this machine's shared disk.
    """
    shm = Path("/dev/shm")  # noqa: S108 - a location probed, not a file created there
    return shm if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


def session_server(max_connections: int = 100) -> MariaDBServer:
    """A ready server for a whole test session: the external one if ``SMYSQL_TEST_URL`` is set, else a private one.

    Release it with ``cleanup()``.
    """
    url = external_url()
    if url is not None:
        external = ExternalServer(url)
        external.prepare()
        return external
    server = MariaDBServer(max_connections=max_connections)
    try:
        server.start()
    except BaseException:
        server.cleanup()
        raise
    return server


@contextlib.contextmanager
def private_server(**kw: Any) -> Iterator[MariaDBServer]:
    """A started private server for a ``with`` block; stopped and deleted at its end.

    Raises :class:`PrivateServerRequired` when ``SMYSQL_TEST_URL`` is set.
    """
    if external_url() is not None:
        raise PrivateServerRequired(f"a private MariaDB server is needed, but ${ENV_URL} is set")
    with MariaDBServer(**kw) as server:
        yield server
