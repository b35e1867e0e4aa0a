"""The four ways of talking to MySQL from Lambda that the benchmark compares.

* ``naive-per-invocation``: PyMySQL ``connect()``, one query, ``close()`` in every invocation.
* ``naive-global``: one module-scope PyMySQL connection per environment, kept forever (reconnected only when
  PyMySQL itself noticed it is closed) - the common Lambda pattern.
* ``npm-serverless-mysql``: the real npm package (2.1.0 with mysql2), one instance per environment, hosted by
  ``bench/node/fleet.js``; the handler is ``await db.query(sql, args); await db.end()``.
* ``with_mysql``: this library, one ``@with_mysql``-decorated handler (hence one client) per environment.

Every strategy gets the same connection parameters and runs the same one-statement handler. Each runs in a host
process of its own (``node bench/node/fleet.js`` or ``python -m bench.pyhost``) that the scheduler drives over a pipe.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors
from pymysql.connections import Connection
from pymysql.constants import CR, ER

from bench import NODE_DIR, REPO_ROOT
from bench.fleet import Env, FakeContext

__all__ = [
    "STRATEGY_NAMES",
    "DbTarget",
    "HostProcess",
    "HostedStrategy",
    "NaiveGlobal",
    "NaivePerInvocation",
    "WithMySQL",
    "error_key",
    "make_local_strategy",
    "make_strategy",
]

# mysql2 uses no TLS unless asked to; PyMySQL 1.2 builds a fresh ssl.create_default_context() (the system CA
# store, ~45 ms of CPU here) in every Connection() unless ssl_disabled=True, even when the server offers no TLS.
# The private servers offer no TLS, so every Python strategy passes ssl_disabled=True to compare like with like;
# python -m bench reports the cost of the default separately.
PYMYSQL_CONNECT_ARGS: dict[str, Any] = {"ssl_disabled": True}

# Host processes per strategy. Hundreds of Lambda environments each have a CPU of their own; here they share the
# machine, and one process (one interpreter lock, one Node event loop) caps a strategy's clients at one core.
# Two hosts per strategy, for Python and Node alike, give every strategy the same share of this 2-core machine.
HOSTS = 2

STRATEGY_NAMES = ("naive-per-invocation", "naive-global", "npm-serverless-mysql", "with_mysql", "with_mysql-orm")

_ERRNO_NAMES: dict[int, str] = {}
for _module in (ER, CR):
    for _name, _value in vars(_module).items():
        if _name.isupper() and isinstance(_value, int):
            _ERRNO_NAMES.setdefault(_value, _name if _name.startswith("CR_") else "ER_" + _name)
_ERRNO_NAMES.update({1927: "ER_CONNECTION_KILLED", 4031: "ER_CLIENT_INTERACTION_TIMEOUT"})


def errno_name(errno: int) -> str:
    return f"{errno} {_ERRNO_NAMES.get(errno, '?')}"


def _errno_of(exc: BaseException) -> int | None:
    seen: BaseException | None = exc
    while seen is not None:
        args = getattr(seen, "args", ())
        if isinstance(seen, pymysql.err.MySQLError) and args and isinstance(args[0], int):
            return int(args[0])
        seen = seen.__cause__ or seen.__context__
    return None


def error_key(exc: BaseException) -> str:
    """``1040 ER_CON_COUNT_ERROR`` for a PyMySQL error, ``RetriesExhaustedError<-1040 ER_CON_COUNT_ERROR`` for a
    library error caused by one, else the exception's class name."""
    errno = _errno_of(exc)
    if isinstance(exc, pymysql.err.MySQLError) and errno is not None:
        return errno_name(errno)
    name = type(exc).__name__
    return f"{name}<-{errno_name(errno)}" if errno is not None else name


@dataclass(frozen=True)
class DbTarget:
    """Where the application connects (always loopback) and as whom."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str

    def kwargs(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
        }


def _sql(event: dict[str, Any]) -> tuple[str, list[Any]]:
    return str(event["sql"]), list(event.get("args") or [])


def _force_close(conn: Connection[Any] | None) -> None:
    """Drop a PyMySQL connection without COM_QUIT (the server may be gone already)."""
    if conn is None:
        return
    with contextlib.suppress(Exception):
        force_close: Callable[[], None] = getattr(conn, "_force_close")  # noqa: B009 - not in the stubs
        force_close()


def _thread_id_of(conn: Connection[Any] | None) -> int | None:
    if conn is None or not conn.open:
        return None
    method: Callable[[], int] = conn.thread_id
    return int(method())


class InProcessStrategy:
    """What the strategies whose environments live in this process share: error keys, live connection ids."""

    def error_key(self, exc: BaseException) -> str:
        return error_key(exc)

    def live_thread_ids(self, envs: Sequence[Env]) -> set[int]:
        ids = {env.thread_id() for env in envs}
        return {i for i in ids if i is not None}


# ---- naive PyMySQL ---------------------------------------------------------------------------------------------


class _PyMySQLStrategy(InProcessStrategy):
    name = "?"
    env_type: Callable[[Any], Env]  # the environment class of the strategy, given the strategy

    def __init__(self, target: DbTarget) -> None:
        self.target = target
        self.envs: list[Any] = []
        self._lock = threading.Lock()

    def connect(self) -> Connection[Any]:
        # What a typical handler writes, plus a connect timeout (like the reference benchmark's 5 s) and TLS off
        # (see PYMYSQL_CONNECT_ARGS).
        return pymysql.connect(
            **self.target.kwargs(),
            cursorclass=pymysql.cursors.DictCursor,
            connect_timeout=5,
            read_timeout=30,
            **PYMYSQL_CONNECT_ARGS,
        )

    def new_env(self, env_id: int) -> Env:
        env = self.env_type(self)
        with self._lock:
            self.envs.append(env)
        return env

    def close(self) -> None:
        with self._lock:
            envs, self.envs = self.envs, []
        for env in envs:
            _force_close(getattr(env, "conn", None))

    def stats(self) -> dict[str, Any]:
        return {}


class _PerInvocationEnv:
    def __init__(self, strategy: NaivePerInvocation) -> None:
        self.strategy = strategy
        self.conn: Connection[Any] | None = None

    def invoke(self, event: dict[str, Any], context: FakeContext) -> None:
        sql, args = _sql(event)
        conn = self.strategy.connect()
        self.conn = conn
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                cur.fetchall()
            if event.get("commit"):  # a write (failover scenario): PyMySQL does not autocommit by default
                conn.commit()
        finally:
            with contextlib.suppress(pymysql.err.Error):
                conn.close()
            self.conn = None

    def thread_id(self) -> int | None:
        return None

    def destroy(self) -> None:
        pass

    def reset(self) -> None:
        _force_close(self.conn)


class NaivePerInvocation(_PyMySQLStrategy):
    """``conn = pymysql.connect(...)``, query, ``conn.close()`` in every invocation."""

    name = "naive-per-invocation"
    env_type = _PerInvocationEnv


class _GlobalEnv:
    def __init__(self, strategy: NaiveGlobal) -> None:
        self.strategy = strategy
        self.conn: Connection[Any] | None = None

    def invoke(self, event: dict[str, Any], context: FakeContext) -> None:
        sql, args = _sql(event)
        if self.conn is None or not self.conn.open:
            self.conn = self.strategy.connect()
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            cur.fetchall()
        if event.get("commit"):
            self.conn.commit()

    def thread_id(self) -> int | None:
        return _thread_id_of(self.conn)

    def destroy(self) -> None:
        pass  # the connection object stays referenced: the socket stays open, like a frozen container's

    def reset(self) -> None:
        _force_close(self.conn)


class NaiveGlobal(_PyMySQLStrategy):
    """A module-scope connection per environment, opened on first use and kept forever."""

    name = "naive-global"
    env_type = _GlobalEnv


# ---- this library ----------------------------------------------------------------------------------------------


class _WithMySQLEnv:
    def __init__(self, handler: Callable[[dict[str, Any], Any], Any]) -> None:
        self.handler = handler
        self.db: Any = None

    def invoke(self, event: dict[str, Any], context: FakeContext) -> None:
        self.handler(event, context)

    def thread_id(self) -> int | None:
        if self.db is None:
            return None
        return _thread_id_of(self.db.get_client())

    def destroy(self) -> None:
        pass  # the decorated handler and its client stay referenced; the connection stays open

    def reset(self) -> None:
        if self.db is not None:
            _force_close(self.db.get_client())


def load_with_mysql() -> Callable[..., Any]:
    """``serverless_mysql.with_mysql`` (imported late: the naive strategies must run without the library)."""
    try:
        from serverless_mysql import with_mysql
    except ImportError:  # older checkouts exported it only from the submodule
        from serverless_mysql.decorator import with_mysql
    loaded: Callable[..., Any] = with_mysql
    return loaded


class WithMySQL(InProcessStrategy):
    """This library: ``with_mysql(**options)(handler)`` built per environment (one client per environment)."""

    name = "with_mysql"

    def __init__(self, target: DbTarget, options: dict[str, Any] | None = None) -> None:
        self.target = target
        self.options = dict(options or {})
        self.envs: list[_WithMySQLEnv] = []
        self._lock = threading.Lock()
        self._with_mysql = load_with_mysql()

    def new_env(self, env_id: int) -> Env:
        holder: list[_WithMySQLEnv] = []

        def handler(event: dict[str, Any], context: Any, db: Any) -> int:
            holder[0].db = db
            sql, args = _sql(event)
            return len(db.query(sql, args))

        def handler_with_reader(event: dict[str, Any], context: Any, db: Any, reader: Any) -> int:
            # The failover scenario: the write on db, then one read on the reader client (option reader_host).
            rows = handler(event, context, db)
            if event.get("reader_sql"):
                rows += len(reader.query(str(event["reader_sql"])))
            return rows

        chosen = handler_with_reader if self.options.get("reader_host") else handler
        decorated = self._with_mysql(**self.target.kwargs(), **self.options)(chosen)
        env = _WithMySQLEnv(decorated)
        holder.append(env)
        with self._lock:
            self.envs.append(env)
        return env

    def close(self) -> None:
        with self._lock:
            envs, self.envs = self.envs, []
        for env in envs:
            if env.db is not None:
                _force_close(env.db.get_client())

    def stats(self) -> dict[str, Any]:
        """The clients' counters (``get_stats()``) summed over every environment."""
        with self._lock:
            envs = list(self.envs)
        total: dict[str, Any] = {"clients": 0}
        for env in envs:
            if env.db is None:
                continue
            total["clients"] += 1
            for key, value in asdict(env.db.get_stats()).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "last_utilization":
                    total[key] = total.get(key, 0) + value
        return total


# ---- every strategy runs in a host process of its own -----------------------------------------------------------


class HostError(RuntimeError):
    """An invocation failed in a host process; ``key`` names the error like :func:`error_key`."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__(str(info.get("message", "")))
        self.info = info

    @property
    def key(self) -> str:
        if self.info.get("key"):
            return str(self.info["key"])
        code = str(self.info.get("code") or "Error")
        errno = self.info.get("errno")
        key = f"{errno} {code}" if errno else code
        return key + (" (wrapped)" if self.info.get("wrapped") else "")


def ensure_node_modules(log: Callable[[str], None] = print) -> None:
    """``npm ci`` (or ``npm install``) in bench/node/ when serverless-mysql is not installed there yet."""
    if (NODE_DIR / "node_modules" / "serverless-mysql" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("node and npm are needed for the npm serverless-mysql strategy (or leave it out)")
    verb = "ci" if (NODE_DIR / "package-lock.json").exists() else "install"
    log(f"installing npm serverless-mysql into {NODE_DIR / 'node_modules'} (npm {verb})")
    subprocess.run([npm, verb, "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, check=True, timeout=300)


class HostProcess:
    """A child process hosting one strategy's environments (``bench/node/fleet.js`` or ``bench/pyhost.py``), driven
    over a JSON-lines pipe: one request per line on stdin, one reply per request on stdout."""

    def __init__(self, command: list[str], init: dict[str, Any], *, cwd: Path, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=cwd, env=env
        )
        self._ids = itertools.count(1)
        self._write_lock = threading.Lock()
        self._waiters: dict[int, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._waiters_lock = threading.Lock()
        self.stray: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read_loop, name="host-reader", daemon=True)
        self._reader.start()
        try:
            self.info = self.request(init, timeout=30)
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_loop(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            rid = msg.get("id")
            with self._waiters_lock:
                waiter = self._waiters.pop(rid, None) if rid is not None else None
            if waiter is None:
                if len(self.stray) < 1000:
                    self.stray.append(msg)
                continue
            waiter[1].append(msg)
            waiter[0].set()

    def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        line = (json.dumps(msg) + "\n").encode()
        with self._write_lock:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()

    def request(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        rid = next(self._ids)
        event = threading.Event()
        box: list[dict[str, Any]] = []
        with self._waiters_lock:
            self._waiters[rid] = (event, box)
        self.send({**msg, "id": rid})
        if not event.wait(timeout):
            with self._waiters_lock:
                self._waiters.pop(rid, None)
            raise TimeoutError(f"the host process did not answer {msg.get('op')} within {timeout:.1f} s")
        reply = box[0]
        if not reply.get("ok"):
            raise HostError(reply.get("error") or {})
        return reply

    def pipe_round_trip(self, n: int = 200) -> float:
        """Median seconds of a no-op request through the pipe (the harness's own overhead per invocation)."""
        times = []
        for _ in range(n):
            t = time.perf_counter()
            self.request({"op": "ping"}, timeout=5)
            times.append(time.perf_counter() - t)
        times.sort()
        return times[len(times) // 2]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send({"op": "exit"})
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # our own child, by its Popen object
            self.proc.wait(5)


class _RemoteEnv:
    def __init__(self, host: HostProcess, env_id: int) -> None:
        self.host = host
        self.env_id = env_id
        host.request({"op": "create", "env": env_id}, timeout=10)

    def invoke(self, event: dict[str, Any], context: FakeContext) -> None:
        # The absolute deadline (CLOCK_MONOTONIC is shared by all processes): time spent before the host starts
        # the handler counts against the function's timeout, as on Lambda.
        remaining = context.get_remaining_time_in_millis()
        self.host.request(
            {"op": "invoke", "env": self.env_id, "event": event, "timeout_ms": remaining, "deadline": context.deadline},
            timeout=remaining / 1000 + 0.5,
        )

    def thread_id(self) -> int | None:
        return None  # asked for all live environments at once, see HostedStrategy.live_thread_ids

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.host.send({"op": "destroy", "env": self.env_id})

    def reset(self) -> None:
        with contextlib.suppress(Exception):
            self.host.send({"op": "reset", "env": self.env_id})


class HostedStrategy:
    """A strategy whose environments live in host processes (environment ``n`` in host ``n % len(hosts)``); the
    scheduler only sends them invocations."""

    def __init__(self, name: str, hosts: Sequence[HostProcess]) -> None:
        self.name = name
        self.hosts = list(hosts)

    @property
    def pids(self) -> list[int]:
        return [h.pid for h in self.hosts]

    def new_env(self, env_id: int) -> Env:
        return _RemoteEnv(self.hosts[env_id % len(self.hosts)], env_id)

    def error_key(self, exc: BaseException) -> str:
        if isinstance(exc, HostError):
            return exc.key
        if isinstance(exc, TimeoutError):
            return "Lambda.Timeout"
        return type(exc).__name__

    def live_thread_ids(self, envs: Sequence[Env]) -> set[int]:
        wanted = {env.env_id for env in envs if isinstance(env, _RemoteEnv)}
        ids: set[int] = set()
        for host in self.hosts:
            reply = host.request({"op": "threads"}, timeout=30)
            ids.update(int(tid) for env, tid in reply["ids"].items() if tid is not None and int(env) in wanted)
        return ids

    def client_attempts(self, timeout: float = 0.5) -> int | None:
        """Connect attempts the clients made so far, summed over the hosts; None when a host did not answer in
        time (it is stopped, or busy)."""
        total = 0
        for host in self.hosts:
            try:
                total += int(host.request({"op": "attempts"}, timeout=timeout)["n"])
            except (TimeoutError, HostError, OSError, KeyError, ValueError):  # noqa: PERF203 - a few hosts
                return None
        return total

    def close(self) -> None:
        for host in self.hosts:
            host.close()

    def stats(self) -> dict[str, Any]:
        """The hosts' counters (library stats or serverless-mysql events) summed, and errors nobody awaited."""
        out: dict[str, Any] = {"hosts": len(self.hosts)}
        out["unsolicited_errors"] = sum(1 for h in self.hosts for m in h.stray if not m.get("ok"))
        for host in self.hosts:
            with contextlib.suppress(Exception):
                for key, value in host.request({"op": "stats"}, timeout=30)["counters"].items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        out[key] = out.get(key, 0) + value
        return out


def make_local_strategy(name: str, target: DbTarget, options: dict[str, Any] | None = None) -> Any:
    """An in-process Python strategy (used inside ``bench.pyhost`` and by the demo)."""
    if name == "naive-per-invocation":
        return NaivePerInvocation(target)
    if name == "naive-global":
        return NaiveGlobal(target)
    if name == "with_mysql":
        return WithMySQL(target, options)
    if name == "with_mysql-orm":  # issue 13: the same handler through SQLAlchemy's ORM (bench/orm.py)
        from bench.orm import WithMySQLOrm

        return WithMySQLOrm(target, options)
    raise ValueError(f"unknown Python strategy {name!r}")


def make_strategy(
    name: str, target: DbTarget, options: dict[str, Any] | None = None, *, hosts: int = HOSTS
) -> HostedStrategy:
    """Start the host processes of strategy ``name``; ``options`` go to this library or to serverless-mysql."""
    if name not in STRATEGY_NAMES:
        raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGY_NAMES)}")
    if name == "npm-serverless-mysql":
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed")
        # mysql2 preallocates a 16000-entry prepared-statement cache per connection (~1-2 ms of CPU, mostly GC);
        # serverless-mysql never prepares statements, and here all environments share one Node process, so keep
        # that cost from eating the CPU that hundreds of separate Lambda environments would each have.
        config = {**target.kwargs(), "connectTimeout": 5000, "maxPreparedStatements": 100}
        init = {"op": "init", "config": config, "options": dict(options or {})}
        command = [node, str(NODE_DIR / "fleet.js")]
        return HostedStrategy(name, [HostProcess(command, init, cwd=NODE_DIR) for _ in range(hosts)])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    init = {"op": "init", "strategy": name, "target": asdict(target), "options": dict(options or {})}
    command = [sys.executable, "-m", "bench.pyhost"]
    return HostedStrategy(name, [HostProcess(command, init, cwd=REPO_ROOT, env=env) for _ in range(hosts)])


def cpu_seconds_of(pid: int) -> float | None:
    """utime + stime of a process from /proc (Linux), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
