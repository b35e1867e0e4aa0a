"""Bad input: every option with a wrong type or value, malformed URLs and secrets, hostile parameters.

Each gets a clear error naming the problem (and never echoing a password), or - for data - correct escaping,
proven by reading the stored value back through a separate root connection.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from typing import Any

import boto3
import pymysql
import pytest
from moto import mock_aws

from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import ServerlessMySQL, with_mysql
from serverless_mysql.config import Config
from serverless_mysql.env import DECORATOR_DEFAULTS
from serverless_mysql.errors import ConfigError, ConfigTypeError, CredentialsError, ServerlessMySQLError
from serverless_mysql.secrets import SecretsManagerCredentials, credentials_from_secret
from tests.faults.conftest import LeakSink
from tests.faults.matrix import Target

pytestmark = pytest.mark.timeout(60)

TYPE, VALUE = ConfigTypeError, ConfigError
PASSWORD = "Sup3r-Secret-Pw!"

# ------------------------------------------------------------------------------------------------ option table
# option -> [(bad value, expected error class)]. Every option of config.py must appear (checked below).
BAD_OPTIONS: dict[str, list[tuple[Any, type[ConfigError]]]] = {
    "host": [(123, TYPE), ("", VALUE), ("db\x00host", VALUE), (["h"], TYPE)],
    "port": [("3306", TYPE), (True, TYPE), (3306.0, TYPE), (0, VALUE), (65536, VALUE), (-1, VALUE)],
    "user": [(5, TYPE), (b"app", TYPE), ("ap\x00p", VALUE)],
    "password": [(12345678, TYPE), (b"pw-bytes-xyz", TYPE), ("pw\x00x", VALUE)],
    "database": [(1, TYPE), ("d\x00b", VALUE)],
    "url": [(5, TYPE), ("http://h/db", VALUE), ("mysql://", VALUE)],
    "connect_args": [
        ("ssl=1", TYPE),
        ({1: "x"}, TYPE),
        ({"host": "other"}, VALUE),
        ({"password": "pw"}, VALUE),
        ({"connect_timeout": 1}, VALUE),
        ({"cursorclass": dict}, VALUE),
        ({"no_such_pymysql_arg": 1}, VALUE),
    ],
    "connect_timeout": [("5", TYPE), (None, TYPE), (0, VALUE), (-1, VALUE), (math.nan, VALUE), (math.inf, VALUE)],
    "read_timeout": [("1", TYPE), (0, VALUE), (-0.5, VALUE), (math.inf, VALUE)],
    "write_timeout": [("1", TYPE), (0, VALUE), (-0.5, VALUE)],
    "ping_after_idle": [("1", TYPE), (-1, VALUE), (math.nan, VALUE)],
    "manage_conns": [("yes", TYPE), (1, TYPE), (None, TYPE)],
    "conn_utilization": [("0.8", TYPE), (0, VALUE), (1.5, VALUE), (-0.1, VALUE), (math.nan, VALUE)],
    "max_conns_freq": [("15", TYPE), (-1, VALUE)],
    "used_conns_freq": [("15", TYPE), (-1, VALUE)],
    "zombie_min_timeout": [("3", TYPE), (-1, VALUE)],
    "zombie_max_timeout": [("900", TYPE), (-1, VALUE), (math.inf, VALUE)],
    "max_kills": [(1.5, TYPE), ("10", TYPE), (-1, VALUE), (10**6, VALUE)],
    "rds_proxy": [("true", TYPE), (1, TYPE)],
    "server_role": [("primary", VALUE), ("WRITER", VALUE), (None, VALUE), (1, VALUE)],
    "max_connection_age": [("300", TYPE), (0, VALUE), (-1, VALUE), (math.nan, VALUE)],
    "backoff": [("decorrelated-jitter", VALUE), ("", VALUE), (5, VALUE)],
    "base": [("0.002", TYPE), (-0.001, VALUE)],
    "cap": [("0.1", TYPE), (-1, VALUE)],
    "max_retries": [(1.5, TYPE), (True, TYPE), (-1, VALUE), (10**6, VALUE)],
    "max_connect_wait": [("30", TYPE), (0, VALUE), (-1, VALUE), (math.nan, VALUE)],
    "pressure_idle_timeout": [("10", TYPE), (0.5, VALUE), (0, VALUE), (math.inf, VALUE)],
    "max_query_retries": [(1.5, TYPE), (-1, VALUE)],
    "query_retry_backoff": [("exponential", VALUE), (None, VALUE), ("paced", VALUE)],
    "credentials": [(object(), TYPE), ("secret-name", TYPE)],
    "on_connect": [("print", TYPE), (1, TYPE)],
    "on_connect_error": [("x", TYPE)],
    "on_retry": [("x", TYPE)],
    "on_close": [("x", TYPE)],
    "on_error": [("x", TYPE)],
    "on_kill": [("x", TYPE)],
    "on_kill_error": [("x", TYPE)],
    "on_query_retry": [("x", TYPE)],
    "clock": [(5, TYPE)],
    "sleep": [(5, TYPE)],
    "random": [(5, TYPE), (random, TYPE)],
}
OPTION_CASES = [(name, value, exc) for name, cases in BAD_OPTIONS.items() for value, exc in cases]


def test_the_table_covers_every_option() -> None:
    assert set(BAD_OPTIONS) == set(Config.option_names()), "add the new option(s) to BAD_OPTIONS"


@pytest.mark.parametrize(
    ("option", "value", "expected"), OPTION_CASES, ids=[f"{n}={v!r}"[:60] for n, v, _ in OPTION_CASES]
)
def test_bad_option_value(option: str, value: Any, expected: type[ConfigError], leaks: LeakSink) -> None:
    with pytest.raises(ConfigError) as info:
        ServerlessMySQL(**{"host": "127.0.0.1", "user": "app", "password": PASSWORD, option: value})
    leaks.observe(info.value)
    exc = info.value
    assert type(exc) is expected, f"{type(exc).__name__}: {exc}"
    assert isinstance(exc, TypeError if expected is TYPE else ValueError)
    assert option in str(exc), f"the message must name the option: {exc}"
    assert PASSWORD not in str(exc)
    if option == "password" and isinstance(value, (str, bytes)):
        assert str(value) not in str(exc) and "pw-bytes" not in str(exc), "a bad password was echoed"


@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"base": 0.5, "cap": 0.1}, ("base", "cap")),
        ({"zombie_min_timeout": 60, "zombie_max_timeout": 30}, ("zombie_min_timeout", "zombie_max_timeout")),
    ],
)
def test_inconsistent_options(options: dict[str, Any], names: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as info:
        ServerlessMySQL(**options)
    assert all(n in str(info.value) for n in names), str(info.value)


@pytest.mark.parametrize("typo", ["connUtilization", "conn_utilisation", "timeout", "config", "passwd", "db"])
def test_unknown_option_is_named(typo: str) -> None:
    with pytest.raises(ConfigTypeError) as info:
        ServerlessMySQL(**{typo: 1})
    assert repr(typo) in str(info.value)


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        ServerlessMySQL("127.0.0.1")  # type: ignore[call-arg]


BAD_DECORATOR_OPTIONS: dict[str, list[tuple[Any, type[ConfigError]]]] = {
    "secret_id": [(5, TYPE), ("", TYPE)],
    "secret_max_age": [("300", TYPE), (-1, VALUE), (math.nan, VALUE)],
    "iam_auth": [("yes", TYPE), (1, TYPE)],
    "region": [(5, TYPE), ("", TYPE)],
    "after": [("close", VALUE), (None, VALUE)],
    "deadline_margin": [("0.5", TYPE), (-1, VALUE), (math.inf, VALUE)],
    "sigterm": [("no", TYPE), (0, TYPE)],
    "connect_on_init": [("no", TYPE)],
    "reader_host": [(5, TYPE), ("", VALUE), ("auto", VALUE), ("replica:0", VALUE), ("replica:x", VALUE)],
}
DECORATOR_CASES = [
    pytest.param(n, v, e, id=f"{n}={v!r}") for n, cases in BAD_DECORATOR_OPTIONS.items() for v, e in cases
]


def test_the_decorator_table_covers_every_decorator_option() -> None:
    assert set(BAD_DECORATOR_OPTIONS) == set(DECORATOR_DEFAULTS)


@pytest.mark.parametrize(("option", "value", "expected"), DECORATOR_CASES)
def test_bad_decorator_option(option: str, value: Any, expected: type[ConfigError], leaks: LeakSink) -> None:
    with pytest.raises(ConfigError) as info:

        @with_mysql(**{"host": "127.0.0.1", "user": "app", "password": PASSWORD, "sigterm": False, option: value})
        def handler(event: object, context: object, db: ServerlessMySQL) -> None:
            pass

    leaks.observe(info.value)
    assert type(info.value) is expected, f"{type(info.value).__name__}: {info.value}"
    assert option in str(info.value), str(info.value)
    assert PASSWORD not in str(info.value)


def test_decorator_rejects_bad_metrics_and_db() -> None:
    bad: list[dict[str, Any]] = [{"metrics": object()}, {"db": "not a client"}]
    for options in bad:
        with pytest.raises(ConfigTypeError, match=repr(next(iter(options)))):
            with_mysql(host="h", sigterm=False, **options)


# ------------------------------------------------------------------------------------------------ URLs
MALFORMED_URLS = [
    ("postgres://app:pw@h/db", "mysql://"),
    ("mysql://", "no host"),
    ("mysql:///db", "no host"),
    ("app:pw@h/db", "scheme"),
    ("", "scheme"),
    ("mysql://app:pw@h:notaport/db", "valid URL"),
    ("mysql://app:pw@h:99999/db", "valid URL"),
    ("mysql://app:pw@[::1/db", "valid URL"),
    ("mysql://app:pw@h/db/more", "path"),
    ("mysql://h/db?connect_timeout=soon", "connect_timeout"),
    ("mysql://h/db?manage_conns=maybe", "manage_conns"),
    ("mysql://h/db?max_retries=1.5", "max_retries"),
    ("mysql://h/db?conn_utilization=2", "conn_utilization"),
    ("mysql://h/db?backoff=exponential", "backoff"),
    ("mysql://h/db?bogus=1", "bogus"),
    ("mysql://h/db?on_connect=print", "on_connect"),
    ("mysql://h/db?ssl_verify_cert=sometimes", "ssl_verify_cert"),
]


@pytest.mark.parametrize(("url", "mentions"), MALFORMED_URLS, ids=[u or "<empty>" for u, _ in MALFORMED_URLS])
def test_malformed_url(url: str, mentions: str, leaks: LeakSink) -> None:
    with pytest.raises(ConfigError) as info:
        ServerlessMySQL(url=url)
    leaks.observe(info.value)
    assert isinstance(info.value, ValueError)
    assert mentions in str(info.value), str(info.value)


def test_url_is_percent_decoded_and_typed() -> None:
    cfg = Config.from_options(
        url="mysql://%C3%BCser:p%40ss%3A%2F%23%3F@db.example.com:3307/sh%C3%B6p?connect_timeout=2.5"
        "&manage_conns=false&max_retries=3&charset=utf8mb4&ssl_verify_identity=true"
    )
    assert (cfg.user, cfg.password, cfg.host, cfg.port, cfg.database) == (
        "üser",
        "p@ss:/#?",
        "db.example.com",
        3307,
        "shöp",
    )
    assert (cfg.connect_timeout, cfg.manage_conns, cfg.max_retries) == (2.5, False, 3)
    assert cfg.connect_args == {"charset": "utf8mb4", "ssl_verify_identity": True}
    assert "p@ss" not in repr(cfg) and "p@ss" not in str(cfg.public_dict())


# A password with an unencoded '/', '#' or '?' (a common mistake) makes urllib split the URL inside the password.
UNENCODED = [
    "mysql://app:Tr0ub4dor/xK3yzQQ@db.example.com:3306/shop",
    "mysql://app:Tr0ub4dor#xK3yzQQ@db.example.com/shop",
    "mysql://app:Tr0ub4dor?xK3yzQQ@db.example.com/shop",
    "mysql://app:12345/xK3yzQQ@db.example.com/shop",
    "mysql://app:12345?xK3yzQQ=1@db.example.com/shop",
]


@pytest.mark.parametrize("url", UNENCODED)
def test_malformed_url_never_quotes_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        ServerlessMySQL(url=url)
    message = str(info.value)
    for fragment in ("Tr0ub4dor", "xK3yzQQ", "12345"):
        assert fragment not in message, f"password fragment {fragment!r} in: {message}"
    assert "percent-encode" in message, message


def test_url_secrets_never_in_reprs(leaks: LeakSink) -> None:
    secret = leaks.secret("url-Secret-9f8e7d")
    db = ServerlessMySQL(url=f"mysql://app:{secret}@127.0.0.1:1/app", connect_args={"ssl_key": "/keys/k.pem"})
    texts = [repr(db), str(db.get_config()), repr(db.get_stats())]
    leaks.observe(*texts)
    assert all(secret not in t for t in texts)
    assert db.get_config()["password"] == "****"


# ------------------------------------------------------------------------------------------------ secrets
SECRET_VALUES: list[tuple[str, object, str]] = [
    ("missing", None, "no value"),
    ("binary", b'{"username": "app", "password": "bin-Secret-123"}', "binary"),
    ("not json", '{"username": "app", "password": "nj-Secret-123"', "not valid JSON"),
    ("plain password", "just-the-Secret-123", "not valid JSON"),
    ("json array", '["app", "arr-Secret-123"]', "array"),
    ("json string", '"str-Secret-123"', "string"),
    ("no password", '{"username": "app"}', "'password'"),
    ("no username", '{"password": "nou-Secret-123"}', "'username'"),
    ("empty password", '{"username": "app", "password": ""}', "'password'"),
    ("wrong type", '{"username": "app", "password": 123456789}', "'password'"),
    ("bad port", '{"username": "app", "password": "bp-Secret-123", "port": "33o6"}', "'port'"),
    ("port range", '{"username": "app", "password": "pr-Secret-123", "port": 70000}', "'port'"),
]


@pytest.mark.parametrize(("case", "value", "mentions"), SECRET_VALUES, ids=[c for c, _, _ in SECRET_VALUES])
def test_malformed_secret_value(case: str, value: object, mentions: str, leaks: LeakSink) -> None:
    for secret in ("bin-Secret-123", "nj-Secret-123", "just-the-Secret-123", "arr-Secret-123", "str-Secret-123"):
        leaks.secret(secret)
    for secret in ("nou-Secret-123", "bp-Secret-123", "pr-Secret-123", "123456789"):
        leaks.secret(secret)
    with pytest.raises(CredentialsError) as info:
        credentials_from_secret(value, "prod/shop/db")
    leaks.observe(info.value)
    message = str(info.value)
    assert mentions in message and "prod/shop/db" in message, message
    assert "Secret-123" not in message and "123456789" not in message, message


@pytest.fixture
def sm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


@pytest.mark.parametrize(
    ("kind", "mentions"),
    [("binary", "binary"), ("not json", "not valid JSON"), ("lacks keys", "'password'")],
)
def test_malformed_secret_end_to_end(kind: str, mentions: str, sm: Any, fault_user: AppUser, leaks: LeakSink) -> None:
    """Through Secrets Manager (moto) and a real connect attempt: the error names the problem, nothing leaks."""
    name = f"bad/{kind.replace(' ', '-')}"
    full = json.dumps({"username": fault_user.name, "password": fault_user.password})
    leaks.secret(full)
    if kind == "binary":
        sm.create_secret(Name=name, SecretBinary=full.encode())
    elif kind == "not json":
        sm.create_secret(Name=name, SecretString=full[:-1])
    else:
        sm.create_secret(Name=name, SecretString=json.dumps({"username": fault_user.name}))
    db = ServerlessMySQL(
        host=fault_user.host, port=fault_user.port, credentials=SecretsManagerCredentials(name, boto3_client=sm)
    )
    with pytest.raises(CredentialsError) as info:
        db.query("SELECT 1")
    leaks.observe(info.value, db, db.get_stats())
    assert mentions in str(info.value) and name in str(info.value), str(info.value)
    assert db.get_stats().connect_attempts == 0


# ------------------------------------------------------------------------------------------------ hostile data
@pytest.fixture
def target(mariadb: MariaDBServer, fault_user: AppUser, leaks: LeakSink) -> Iterator[Target]:
    t = Target(server=mariadb, user=fault_user, host=mariadb.host, port=mariadb.port, leaks=leaks)
    t.table = f"`{mariadb.database}`.`bad_input_{fault_user.name}`"
    mariadb.execute(
        f"CREATE TABLE {t.table} (id INT AUTO_INCREMENT PRIMARY KEY, s LONGTEXT CHARACTER SET utf8mb4 "
        "COLLATE utf8mb4_bin, b LONGBLOB) ENGINE=InnoDB"
    )
    yield t
    t.close_all()
    mariadb.execute(f"DROP TABLE IF EXISTS {t.table}")


def stored(target: Target, row_id: int) -> dict[str, Any]:
    rows = target.server.execute(f"SELECT s, b FROM {target.table} WHERE id = %s", [row_id])
    assert len(rows) == 1
    return rows[0]


HOSTILE = [
    "'; DROP TABLE bad_input; --",
    "' OR '1'='1",
    "\\'; DROP TABLE bad_input; --",
    '" OR ""="',
    "\\",
    "\\\\'",
    "'' OR ''=''",
    "%s",
    "%(name)s",
    "%%s",
    "{0}",
    "\x00'; DROP TABLE bad_input; --",
    "\x1a\x1b\r\n\t\x08",
    "\u02bc OR 1=1 -- ",  # MODIFIER LETTER APOSTROPHE
    "\uff07 OR 1=1 -- ",  # FULLWIDTH APOSTROPHE
    "\u202e\u200b\ufeff",
    "héllo wörld 🎉 中文 \U0001d518\U0001d52b\U0001d526 (4-byte UTF-8)",
    "a\x00b\x00c",
    "*/ SELECT 1 /*",
    "`; DROP TABLE bad_input; --`",
]


@pytest.mark.parametrize("value", HOSTILE, ids=[repr(v)[:30] for v in HOSTILE])
def test_hostile_strings_round_trip_through_args_and_escape(target: Target, value: str) -> None:
    db = target.client()
    inserted = db.query(f"INSERT INTO {target.table} (s) VALUES (%s)", (value,))
    assert stored(target, inserted.insert_id)["s"] == value
    named = db.query(f"INSERT INTO {target.table} (s) VALUES (%(v)s)", {"v": value})
    assert stored(target, named.insert_id)["s"] == value
    literal = db.query(f"INSERT INTO {target.table} (s) VALUES ({db.escape(value)})")
    assert stored(target, literal.insert_id)["s"] == value
    assert db.query(f"SELECT COUNT(*) AS n FROM {target.table} WHERE s = %s", (value,)) == [{"n": 3}]
    assert len(target.server.execute(f"SELECT id FROM {target.table}")) == 3  # the table survived


def test_escape_before_connect_matches_the_server(target: Target) -> None:
    """escape() works without a connection (the client connects lazily), for the default sql_mode."""
    db = target.client()
    literals = {value: db.escape(value) for value in HOSTILE}
    assert db.get_client() is None
    for value, literal in literals.items():
        row = db.query(f"INSERT INTO {target.table} (s) VALUES ({literal})")
        assert stored(target, row.insert_id)["s"] == value


@pytest.mark.parametrize("connected", [True, False])
def test_escape_under_no_backslash_escapes(target: Target, connected: bool) -> None:
    db = target.client(connect_args={"sql_mode": "NO_BACKSLASH_ESCAPES"})
    target.server.execute(f"INSERT INTO {target.table} (s) VALUES ('alice'), ('bob')")
    if connected:
        db.query("SELECT 1")
    probe = "\\' OR 1=1 -- "
    literal = db.escape(probe)
    rows = db.query(f"SELECT COUNT(*) AS n FROM {target.table} WHERE s = {literal}")
    assert rows == [{"n": 0}], f"escape({probe!r}) = {literal} matched {rows[0]['n']} rows: SQL injection"
    for value in ["a\\b", "\\", "it's"]:
        literal = db.escape(value)
        row = db.query(f"INSERT INTO {target.table} (s) VALUES ({literal})")
        assert stored(target, row.insert_id)["s"] == value, f"escape({value!r}) = {literal}"


def test_binary_and_nul_parameters(target: Target) -> None:
    db = target.client()
    blob = bytes(range(256)) * 4 + b"\x00\x00'\\\x1a"
    row = db.query(f"INSERT INTO {target.table} (s, b) VALUES (%s, %s)", ("nul\x00in\x00text", blob))
    got = stored(target, row.insert_id)
    assert got["s"] == "nul\x00in\x00text" and len(got["s"]) == 11
    assert bytes(got["b"]) == blob
    back = db.query(f"SELECT s, b FROM {target.table} WHERE id = %s", (row.insert_id,))
    assert back[0]["s"] == "nul\x00in\x00text" and bytes(back[0]["b"]) == blob


def test_very_large_parameter(target: Target) -> None:
    """A 4 MB parameter (well under max_allowed_packet) round-trips exactly."""
    db = target.client()
    big = ("0123456789abcdef" * 262_144)[:-3] + "é🎉"
    row = db.query(f"INSERT INTO {target.table} (s) VALUES (%s)", (big,))
    got = target.server.execute(
        f"SELECT CHAR_LENGTH(s) AS n, MD5(s) AS h FROM {target.table} WHERE id = %s", [row.insert_id]
    )
    import hashlib

    assert got == [{"n": len(big), "h": hashlib.md5(big.encode()).hexdigest()}]


def test_parameter_beyond_max_allowed_packet(target: Target, leaks: LeakSink) -> None:
    """A statement larger than max_allowed_packet fails at once with an error naming the cause; it is not
    re-sent, nothing is stored, and the client keeps working."""
    limit = int(target.server.get_global("max_allowed_packet"))
    db = target.client()
    db.query("SELECT 1")
    too_big = "x" * (limit + 1024)
    db.set_deadline(10)
    with pytest.raises((ServerlessMySQLError, pymysql.err.MySQLError)) as info:
        db.query(f"INSERT INTO {target.table} (s) VALUES (%s)", (too_big,))
    db.set_deadline(None)
    leaks.observe(info.value)
    text = f"{info.value} {info.value.__cause__}"
    assert "max_allowed_packet" in text or "1153" in text or "packet" in text.lower(), text
    assert target.server.execute(f"SELECT COUNT(*) AS n FROM {target.table}") == [{"n": 0}]
    assert db.query("SELECT 3 AS three") == [{"three": 3}]
    db.quit()
    assert target.settle(0) == 0


def test_escape_id(target: Target) -> None:
    db = target.client()
    weird = "we`ird; DROP TABLE x; --"
    table = f"`{target.server.database}`.{db.escape_id(weird)}"
    db.query(f"CREATE TABLE {table} (id INT)")
    try:
        rows = target.server.execute(
            "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
            [target.server.database, weird],
        )
        assert rows == [{"t": weird}]
    finally:
        db.query(f"DROP TABLE {table}")
    for bad in ("", "a\x00b"):
        with pytest.raises(ValueError, match="identifier"):
            db.escape_id(bad)


def test_query_rejects_non_string_sql(target: Target) -> None:
    db = target.client()
    with pytest.raises(TypeError, match="sql must be a str"):
        db.query(b"SELECT 1")  # type: ignore[arg-type]
