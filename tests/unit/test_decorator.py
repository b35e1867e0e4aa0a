"""Unit tests of ``@with_mysql`` with a fake client: API forms, lifecycle, deadline, env vars, metrics, SIGTERM."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import types
import weakref
from collections.abc import Iterator
from dataclasses import replace
from types import FrameType
from typing import Any

import pytest

import serverless_mysql.decorator as decorator_module
import serverless_mysql.decorator.sigterm as sigterm_module
from serverless_mysql import (
    ConfigError,
    ConfigTypeError,
    ServerlessMySQL,
    Stats,
    with_mysql,
)
from serverless_mysql.config import Config
from serverless_mysql.decorator.wrapping import MARK
from serverless_mysql.env import DECORATOR_DEFAULTS, EnvVarWarning
from serverless_mysql.lambda_context import LocalLambdaContext

REAL_REGISTER = decorator_module.register_sigterm  # before the autouse fixture replaces it


class FakeDB(ServerlessMySQL):
    """Records what the decorator does with its client; no network."""

    def __init__(self, *, fail_end: BaseException | None = None, stay_in_tx: bool = False) -> None:  # no super()
        self.calls: list[str] = []
        self.deadlines: list[float | None] = []
        self.stats = Stats()
        self.fail_end = fail_end
        self.stay_in_tx = stay_in_tx
        self.tx_open = False
        self.connected = False

    def connect(self) -> None:
        self.calls.append("connect")
        if not self.connected:
            self.connected = True
            self.stats.connects += 1

    def query(self, sql: str, args: Any = None, *, idempotent: bool | None = None) -> Any:
        self.connect()
        self.calls.append(f"query:{sql}")
        self.stats.queries += 1
        if sql == "BEGIN":
            self.tx_open = True
        return []

    def end(self) -> None:
        self.calls.append("end")
        if self.fail_end is not None:
            raise self.fail_end
        if not self.stay_in_tx:
            self.tx_open = False
        self.stats.housekeeping_runs += 1
        self.stats.housekeeping_seconds += 0.004
        self.stats.last_utilization = 0.25

    def quit(self) -> None:
        self.calls.append("quit")
        self.tx_open = False
        self.connected = False

    def terminate(self) -> None:
        self.calls.append("terminate")
        self.tx_open = False
        self.connected = False

    def set_deadline(self, seconds: float | None) -> None:
        self.deadlines.append(seconds)

    @property
    def in_transaction(self) -> bool:
        return self.tx_open

    def get_stats(self) -> Stats:
        return replace(self.stats)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SERVERLESS_MYSQL_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def no_sigterm_install(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[ServerlessMySQL]]:
    """Decorations in unit tests must not install a real SIGTERM handler in the pytest process."""
    registered: list[ServerlessMySQL] = []

    def fake_register(db: ServerlessMySQL) -> bool:
        registered.append(db)
        return True

    monkeypatch.setattr(decorator_module, "register_sigterm", fake_register)
    yield registered


def echo(event: Any, context: Any, db: ServerlessMySQL) -> tuple[Any, ServerlessMySQL]:
    return event, db


# ---------------------------------------------------------------------------------------------- API forms
def test_every_form_passes_the_client_as_keyword_db() -> None:
    fake = FakeDB()
    bare = with_mysql(echo)
    empty = with_mysql()(echo)
    options = with_mysql(host="db.example", user="app", manage_conns=False)(echo)
    given = with_mysql(db=fake)(echo)
    for handler in (bare, empty, options):
        event, db = handler({"a": 1}, None)
        assert event == {"a": 1}
        assert isinstance(db, ServerlessMySQL)
        assert db is handler.db
    assert options.db.get_config()["host"] == "db.example"
    assert given({}, None)[1] is fake
    assert given.db is fake
    assert getattr(given, "__name__", None) == "echo"
    assert given.__wrapped__ is echo  # type: ignore[attr-defined]


def test_one_client_per_decoration_created_at_decoration_time(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[dict[str, Any]] = []

    class Spy(ServerlessMySQL):
        def __init__(self, **options: Any) -> None:
            created.append(options)
            super().__init__(**options)

    monkeypatch.setattr("serverless_mysql.decorator.options.ServerlessMySQL", Spy)
    first = with_mysql(host="h1")(echo)
    second = with_mysql(host="h1")(echo)
    assert len(created) == 2  # before any invocation
    assert first.db is not second.db
    assert first.db.get_client() is None  # lazy: nothing connected


@pytest.mark.parametrize("positional", [FakeDB(), "db.example.com", 3306, None.__class__])
def test_positional_options_are_a_clear_type_error(positional: Any) -> None:
    with pytest.raises(TypeError, match=r"keyword arguments only|decorates a handler"):
        with_mysql(positional)


def test_unknown_option_names_the_option_and_suggests() -> None:
    with pytest.raises(ConfigTypeError, match=r"'conn_utilisation' \(did you mean 'conn_utilization'\?\)"):
        with_mysql(conn_utilisation=0.5)  # type: ignore[call-overload]


def test_db_with_client_options_is_refused() -> None:
    with pytest.raises(ConfigTypeError, match=r"'host', 'secret_id'.*ServerlessMySQL\(\.\.\.\)"):
        with_mysql(db=FakeDB(), host="x", secret_id="s")
    with pytest.raises(ConfigTypeError, match="option 'db' must be a ServerlessMySQL"):
        with_mysql(db="mysql://x")  # type: ignore[call-overload]


def test_handler_must_accept_db() -> None:
    def no_db(event: Any, context: Any) -> None:
        return None

    with pytest.raises(TypeError, match=r"no_db must accept the client as keyword argument 'db'"):
        with_mysql(no_db)

    def kwargs_ok(event: Any, context: Any, **kwargs: Any) -> Any:
        return kwargs["db"]

    fake = FakeDB()
    assert with_mysql(db=fake)(kwargs_ok)({}, None) is fake


def test_async_handler_and_double_decoration_are_refused() -> None:
    async def handler(event: Any, context: Any, db: ServerlessMySQL) -> None:
        return None

    with pytest.raises(TypeError, match="async"):
        with_mysql(handler)
    once = with_mysql(echo)
    with pytest.raises(TypeError, match="already decorated with with_mysql"):
        with_mysql(once)


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="'after' must be 'end' or 'quit'"):
        with_mysql(after="close")
    with pytest.raises(ConfigTypeError, match="'sigterm' must be True or False"):
        with_mysql(sigterm="yes")  # type: ignore[call-overload]
    with pytest.raises(ConfigError, match="'deadline_margin' must be >= 0"):
        with_mysql(deadline_margin=-1)
    with pytest.raises(ConfigTypeError, match="'metrics' must be a Powertools Metrics"):
        with_mysql(metrics=object())  # type: ignore[call-overload]
    with pytest.raises(ConfigError, match="'credentials' and 'secret_id' exclude each other"):
        with_mysql(secret_id="s", credentials=object())(echo)  # type: ignore[call-overload]
    with pytest.raises(ConfigError, match="'password' cannot be used with option 'iam_auth'"):
        with_mysql(iam_auth=True, host="h", user="u", password="pw")(echo)


def test_iam_auth_needs_host_user_and_verified_tls() -> None:
    with pytest.raises(ConfigError, match="needs option 'host'"):
        with_mysql(iam_auth=True, user="app")(echo)
    with pytest.raises(ConfigError, match="needs option 'user'"):
        with_mysql(iam_auth=True, host="db.example")(echo)
    with pytest.raises(
        ConfigError, match=r"option 'connect_args': connect_args\['ssl_disabled'\]=True switches TLS off"
    ):
        with_mysql(iam_auth=True, url="mysql://app@db.example/shop?ssl_ca=/ca.pem&ssl_disabled=true")(echo)
    with pytest.raises(ConfigError, match=r"connect_args\['ssl_verify_cert'\]=False must be True"):
        with_mysql(iam_auth=True, url="mysql://app@db.example/shop?ssl_ca=/ca.pem&ssl_verify_cert=false")(echo)
    handler = with_mysql(iam_auth=True, url="mysql://app@db.example/shop?ssl_ca=/ca.pem", region="eu-west-1")(echo)
    provider = handler.db.get_config()["credentials"]
    assert type(provider).__name__ == "IamAuthCredentials"
    assert (provider.host, provider.user, provider.port, provider.region) == ("db.example", "app", 3306, "eu-west-1")
    # Only ssl_ca given (PyMySQL alone would then not verify the certificate): verification is switched on.
    assert provider.tls == {"ssl_ca": "/ca.pem", "ssl_verify_cert": True, "ssl_verify_identity": True}
    # No TLS argument at all: verified against the system CA store.
    provider = with_mysql(iam_auth=True, host="db.example", user="app")(echo).db.get_config()["credentials"]
    assert provider.tls == {"ssl_verify_cert": True, "ssl_verify_identity": True}


def test_typed_options_cover_every_option() -> None:
    keys = set(decorator_module.WithMySQLOptions.__annotations__)
    assert keys == Config.option_names() | set(DECORATOR_DEFAULTS) | {"metrics", "db"}


# ---------------------------------------------------------------------------------------------- lifecycle
def test_end_after_return_and_after_raise_never_replacing_the_outcome() -> None:
    fake = FakeDB()
    result = object()

    @with_mysql(db=fake)
    def ok(event: Any, context: Any, db: ServerlessMySQL) -> object:
        db.query("SELECT 1")
        return result

    assert ok({}, None) is result
    assert fake.calls == ["connect", "query:SELECT 1", "end"]

    boom = KeyError("mine")

    @with_mysql(db=fake)
    def fails(event: Any, context: Any, db: ServerlessMySQL) -> None:
        raise boom

    fake.calls.clear()
    with pytest.raises(KeyError) as caught:
        fails({}, None)
    assert caught.value is boom
    assert fake.calls == ["end"]


def test_after_quit() -> None:
    fake = FakeDB()
    with_mysql(db=fake, after="quit")(echo)({}, None)
    assert fake.calls == ["quit"]


def test_cleanup_failure_is_logged_and_closes_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeDB(fail_end=RuntimeError("housekeeping exploded"))
    handler = with_mysql(db=fake)(echo)
    with caplog.at_level(logging.WARNING, logger="serverless_mysql"):
        assert handler({"x": 1}, None)[0] == {"x": 1}
    assert fake.calls == ["end", "terminate"]
    assert "housekeeping exploded" in caplog.text

    boom = ValueError("handler's own")

    @with_mysql(db=fake)
    def fails(event: Any, context: Any, db: ServerlessMySQL) -> None:
        raise boom

    with pytest.raises(ValueError) as caught:
        fails({}, None)
    assert caught.value is boom  # the cleanup failure never replaces the handler's exception
    assert caught.value.__context__ is None


def test_transaction_left_open_is_not_carried_into_the_next_invocation() -> None:
    fake = FakeDB(stay_in_tx=True)  # end() fails to roll back (simulated)

    @with_mysql(db=fake)
    def begins(event: Any, context: Any, db: ServerlessMySQL) -> None:
        db.query("BEGIN")

    begins({}, None)
    assert fake.calls[-2:] == ["end", "terminate"]
    assert not fake.in_transaction


def test_deadline_from_the_remaining_time_then_cleared() -> None:
    fake = FakeDB()
    seen: list[float | None] = []

    @with_mysql(db=fake, deadline_margin=0.25)
    def handler(event: Any, context: Any, db: ServerlessMySQL) -> None:
        seen.append(fake.deadlines[-1])

    now = [100.0]
    context = LocalLambdaContext(timeout=2.0, clock=lambda: now[0])
    now[0] += 0.5  # 1.5 s left when the invocation starts
    handler({}, context)
    assert seen == [pytest.approx(1.25)]
    assert fake.deadlines == [pytest.approx(1.25), None]


class NoMethod:
    pass


class Raising:
    def get_remaining_time_in_millis(self) -> int:
        raise RuntimeError("no")


class Weird:
    def get_remaining_time_in_millis(self) -> Any:
        return "soon"


@pytest.mark.parametrize("context", [None, NoMethod(), Raising(), Weird()])
def test_no_usable_context_means_no_deadline(context: Any) -> None:
    fake = FakeDB()
    with_mysql(db=fake)(echo)({}, context)
    assert fake.deadlines == [None, None]


def test_time_already_spent_gives_a_zero_budget() -> None:
    fake = FakeDB()
    with_mysql(db=fake, deadline_margin=1.0)(echo)({}, LocalLambdaContext(timeout=0.5))
    assert fake.deadlines == [0.0, None]


def test_connect_on_init(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeDB()
    with_mysql(db=fake, connect_on_init=True)(echo)
    assert fake.calls == ["connect"]
    assert fake.deadlines == [decorator_module.INIT_CONNECT_BUDGET, None]

    class Down(FakeDB):
        def connect(self) -> None:
            raise OSError("refused")

    with caplog.at_level(logging.WARNING, logger="serverless_mysql"):
        handler = with_mysql(db=Down(), connect_on_init=True)(echo)  # logged, not raised
    assert "connect during init failed" in caplog.text
    assert handler.db.deadlines == [decorator_module.INIT_CONNECT_BUDGET, None]  # type: ignore[attr-defined]


def test_sigterm_registration_is_opt_out(no_sigterm_install: list[ServerlessMySQL]) -> None:
    a, b = FakeDB(), FakeDB()
    with_mysql(db=a)(echo)
    with_mysql(db=b, sigterm=False)(echo)
    assert no_sigterm_install == [a]


# ---------------------------------------------------------------------------------------------- metrics
class Sink:
    def __init__(self) -> None:
        self.metrics: list[tuple[str, str, float]] = []

    def add_metric(self, name: str, unit: str, value: float) -> None:
        self.metrics.append((name, unit, value))


def test_per_invocation_metrics_are_deltas() -> None:
    fake = FakeDB()
    sink = Sink()

    @with_mysql(db=fake, metrics=sink)
    def handler(event: Any, context: Any, db: ServerlessMySQL) -> None:
        if event.get("use"):
            db.query("SELECT 1")

    fake.stats.connect_retries = 7  # before the first invocation: not this invocation's
    handler({"use": True}, None)
    assert sink.metrics == [
        ("ConnectRetries", "Count", 0),
        ("ZombiesKilled", "Count", 0),
        ("HousekeepingTime", "Milliseconds", 4.0),
        ("ConnectionUtilization", "Percent", 25.0),
        ("ConnectionReused", "Count", 0),
    ]
    sink.metrics.clear()
    handler({"use": True}, None)
    assert ("ConnectionReused", "Count", 1) in sink.metrics
    sink.metrics.clear()
    handler({}, None)  # the database was not used: no "reused" metric
    assert [m[0] for m in sink.metrics if m[0] == "ConnectionReused"] == []


def test_a_failing_metrics_sink_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def add_metric(self, name: str, unit: str, value: float) -> None:
            raise RuntimeError("EMF is down")

    with caplog.at_level(logging.WARNING, logger="serverless_mysql"):
        assert with_mysql(db=FakeDB(), metrics=Broken())(echo)({"k": 1}, None)[0] == {"k": 1}
    assert "reporting invocation metrics failed" in caplog.text


# ---------------------------------------------------------------------------------------------- env vars
def test_bare_decorator_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVERLESS_MYSQL_HOST", "db.internal")
    monkeypatch.setenv("SERVERLESS_MYSQL_PORT", "3307")
    monkeypatch.setenv("SERVERLESS_MYSQL_USER", "app")
    monkeypatch.setenv("SERVERLESS_MYSQL_CONN_UTILIZATION", "0.6")
    monkeypatch.setenv("SERVERLESS_MYSQL_RDS_PROXY", "auto")
    monkeypatch.setenv("SERVERLESS_MYSQL_MANAGE_CONNS", "off")
    monkeypatch.setenv("SERVERLESS_MYSQL_AFTER", "QUIT")
    monkeypatch.setenv("SERVERLESS_MYSQL_SIGTERM", "false")
    monkeypatch.setenv("SERVERLESS_MYSQL_DATABASE", "")  # empty = unset
    handler = with_mysql(echo)
    cfg = handler.db.get_config()
    assert (cfg["host"], cfg["port"], cfg["user"], cfg["database"]) == ("db.internal", 3307, "app", None)
    assert (cfg["conn_utilization"], cfg["rds_proxy"], cfg["manage_conns"]) == (0.6, None, False)
    lifecycle = getattr(handler, MARK)
    assert lifecycle.after == "quit"


def test_explicit_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVERLESS_MYSQL_HOST", "env-host")
    monkeypatch.setenv("SERVERLESS_MYSQL_USER", "env-user")
    monkeypatch.setenv("SERVERLESS_MYSQL_DEADLINE_MARGIN", "2")
    handler = with_mysql(host="arg-host", deadline_margin=0.1)(echo)
    cfg = handler.db.get_config()
    assert (cfg["host"], cfg["user"]) == ("arg-host", "env-user")
    assert getattr(handler, MARK).margin == 0.1
    # An explicit URL beats the variables for every part it sets.
    cfg = with_mysql(url="mysql://url-user@url-host:3310/db")(echo).db.get_config()
    assert (cfg["host"], cfg["user"], cfg["port"]) == ("url-host", "url-user", 3310)
    # An explicit credential source beats one from the environment.
    monkeypatch.setenv("SERVERLESS_MYSQL_SECRET_ID", "env-secret")
    fake_provider = type("P", (), {"refreshable": False, "get_credentials": lambda self, refresh=False: None})()
    cfg = with_mysql(credentials=fake_provider)(echo).db.get_config()
    assert cfg["credentials"] is fake_provider


def test_env_url_is_beaten_by_env_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVERLESS_MYSQL_URL", "mysql://u:p%40ss@url-host:3310/shop?connect_timeout=2")
    monkeypatch.setenv("SERVERLESS_MYSQL_HOST", "proxy.internal")
    cfg = with_mysql(echo).db.get_config()
    assert (cfg["host"], cfg["port"], cfg["user"], cfg["database"], cfg["connect_timeout"]) == (
        "proxy.internal",
        3310,
        "u",
        "shop",
        2.0,
    )
    assert "p@ss" not in repr(cfg)


def test_secret_id_from_the_environment_builds_a_provider_without_importing_aws(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SERVERLESS_MYSQL_SECRET_ID", "prod/shop")
    monkeypatch.setenv("SERVERLESS_MYSQL_SECRET_MAX_AGE", "60")
    monkeypatch.setenv("SERVERLESS_MYSQL_HOST", "proxy.internal")
    provider = with_mysql(echo).db.get_config()["credentials"]
    assert type(provider).__name__ == "SecretsManagerCredentials"
    assert (provider.secret_id, provider.max_age) == ("prod/shop", 60.0)


def test_secret_max_age_not_given_is_the_providers_default() -> None:
    from serverless_mysql.secrets import DEFAULT_MAX_AGE

    provider = with_mysql(secret_id="prod/shop", host="proxy.internal")(echo).db.get_config()["credentials"]
    assert provider.max_age == DEFAULT_MAX_AGE


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SERVERLESS_MYSQL_PORT", "33o6", "SERVERLESS_MYSQL_PORT must be an integer, not '33o6'"),
        ("SERVERLESS_MYSQL_CONN_UTILIZATION", "high", "SERVERLESS_MYSQL_CONN_UTILIZATION must be a number"),
        ("SERVERLESS_MYSQL_MANAGE_CONNS", "maybe", "SERVERLESS_MYSQL_MANAGE_CONNS must be a boolean"),
        ("SERVERLESS_MYSQL_AFTER", "close", "SERVERLESS_MYSQL_AFTER must be one of end, quit"),
        # range checks happen in the client's validation; the message still names the variable
        ("SERVERLESS_MYSQL_CONN_UTILIZATION", "1.5", r"'conn_utilization'.*SERVERLESS_MYSQL_CONN_UTILIZATION"),
        ("SERVERLESS_MYSQL_PORT", "70000", r"'port'.*SERVERLESS_MYSQL_PORT"),
        ("SERVERLESS_MYSQL_DEADLINE_MARGIN", "-1", r"'deadline_margin'.*SERVERLESS_MYSQL_DEADLINE_MARGIN"),
        ("SERVERLESS_MYSQL_BACKOFF", "exponential", r"'backoff'.*SERVERLESS_MYSQL_BACKOFF"),
        ("SERVERLESS_MYSQL_URL", "postgres://u:hunter2@h/db", r"mysql://.*SERVERLESS_MYSQL_URL"),
        ("SERVERLESS_MYSQL_CONNECT_ARGS", "[1]", "SERVERLESS_MYSQL_CONNECT_ARGS must be a JSON object"),
        ("SERVERLESS_MYSQL_CONNECT_ARGS", '{"ssl_ca": ', "SERVERLESS_MYSQL_CONNECT_ARGS must be a JSON object"),
    ],
)
def test_bad_variables_raise_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message) as caught:
        with_mysql(echo)
    assert "hunter2" not in str(caught.value)


def test_unknown_variable_warns_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVERLESS_MYSQL_HOTS", "x")
    with pytest.warns(EnvVarWarning, match="SERVERLESS_MYSQL_HOTS .* did you mean SERVERLESS_MYSQL_HOST"):
        with_mysql(echo)


def test_db_given_ignores_client_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVERLESS_MYSQL_HOST", "ignored")
    monkeypatch.setenv("SERVERLESS_MYSQL_SECRET_ID", "ignored")
    monkeypatch.setenv("SERVERLESS_MYSQL_AFTER", "quit")  # the decorator's own: still read
    fake = FakeDB()
    with_mysql(db=fake)(echo)({}, None)
    assert fake.calls == ["quit"]


# ---------------------------------------------------------------------------------------------- SIGTERM handler
@pytest.fixture
def sigterm_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(sigterm_module, "_sigterm_installed", False)
    monkeypatch.setattr(sigterm_module, "_sigterm_previous", None)
    monkeypatch.setattr(sigterm_module, "_sigterm_clients", weakref.WeakSet())
    yield
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_handler_installed_once_terminates_and_chains(sigterm_state: None) -> None:
    chained: list[int] = []

    def previous(signum: int, frame: FrameType | None) -> None:
        chained.append(signum)

    signal.signal(signal.SIGTERM, previous)
    a, b = FakeDB(), FakeDB()
    assert REAL_REGISTER(a)
    installed = signal.getsignal(signal.SIGTERM)
    assert REAL_REGISTER(b)
    assert signal.getsignal(signal.SIGTERM) is installed  # registered once
    sigterm_module._on_sigterm(signal.SIGTERM, None)
    assert a.calls == ["terminate"]
    assert b.calls == ["terminate"]
    assert chained == [signal.SIGTERM]


def test_sigterm_handler_not_installable_outside_the_main_thread(sigterm_state: None) -> None:
    import threading

    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(REAL_REGISTER(FakeDB())))
    thread.start()
    thread.join()
    assert results == [False]
    assert not sigterm_module._sigterm_installed


@pytest.mark.parametrize(
    ("modules", "execution_env", "blocked"),
    [
        ((), "AWS_Lambda_Image", False),  # not under awslambdaric: install as before
        (("awslambdaric",), "AWS_Lambda_python3.12", False),  # polls from a thread
        (("awslambdaric",), "AWS_Lambda_Image", True),  # container image: the main thread waits in C
        (("awslambdaric",), None, True),  # custom runtime
        (("awslambdaric", "awslambdaric.lambda_config"), "AWS_Lambda_python3.12", True),  # the client's own set
    ],
)
def test_sigterm_handler_not_installed_where_the_runtime_blocks_the_main_thread(
    sigterm_state: None,
    monkeypatch: pytest.MonkeyPatch,
    modules: tuple[str, ...],
    execution_env: str | None,
    blocked: bool,
) -> None:
    for name in ("awslambdaric", "awslambdaric.lambda_config"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    for name in modules:
        fake = types.ModuleType(name)
        # A client whose set does not contain python3.12: its own set wins over ours.
        fake.LambdaConfigProvider = type("P", (), {"SUPPORTED_THREADPOLLING_ENVS": {"AWS_Lambda_python3.99"}})  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, name, fake)
    if execution_env is None:
        monkeypatch.delenv("AWS_EXECUTION_ENV", raising=False)
    else:
        monkeypatch.setenv("AWS_EXECUTION_ENV", execution_env)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not an earlier test's handler of ours
    assert sigterm_module.main_thread_blocked_by_runtime() is blocked
    assert REAL_REGISTER(FakeDB()) is not blocked
    assert (signal.getsignal(signal.SIGTERM) == signal.SIG_DFL) is blocked


def test_sigterm_with_default_previous_still_ends_the_process() -> None:
    code = (
        "import os, signal, serverless_mysql.decorator as d\n"
        "from serverless_mysql import ServerlessMySQL\n"
        "db = ServerlessMySQL(host='127.0.0.1')\n"
        "assert d.register_sigterm(db)\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "import time; time.sleep(5)\n"
        "print('survived')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert "survived" not in proc.stdout


def test_sigterm_with_ignored_previous_keeps_ignoring() -> None:
    code = (
        "import os, signal, serverless_mysql.decorator as d\n"
        "from serverless_mysql import ServerlessMySQL\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "assert d.register_sigterm(ServerlessMySQL(host='127.0.0.1'))\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "print('survived')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "survived" in proc.stdout


# ---------------------------------------------------------------------------------------------- light import
def test_import_and_decoration_do_not_load_boto3_or_powertools() -> None:
    code = (
        "import sys\n"
        "import serverless_mysql\n"
        "from serverless_mysql import with_mysql\n"
        "h = with_mysql(host='127.0.0.1', sigterm=False)(lambda event, context, db: 1)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'aws_lambda_powertools'))\n"
        "print(heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == "[]"
