"""Aurora clusters without a server: host-name rules, the options, the read-only predicate, the re-run policy."""

from __future__ import annotations

import random
from typing import Any

import pymysql
import pytest

from serverless_mysql import ConfigError, ConnectError, Credentials, ServerlessMySQL, with_mysql
from serverless_mysql._cluster import (
    connection_retire_at,
    detect_rds_proxy,
    is_writable,
    parse_writability,
    read_only_variables,
    reader_endpoint,
    resolve_role,
    split_host_port,
    writability_sql,
)
from serverless_mysql._connect import ReadOnlyServerError
from serverless_mysql.backoff import make_backoff
from serverless_mysql.decorator.reader import ReaderCredentials
from serverless_mysql.errors import connect_failure_kind, is_read_only_refusal
from serverless_mysql.retry import MAX_READ_ONLY_RERUNS, RetryPolicy
from tests.unit.test_decorator import clean_env, no_sigterm_install

__all__ = ["clean_env", "no_sigterm_install"]  # autouse fixtures, re-used here

CLUSTER = "shop.cluster-abc123xyz.eu-west-1.rds.amazonaws.com"
READER = "shop.cluster-ro-abc123xyz.eu-west-1.rds.amazonaws.com"


# ------------------------------------------------------------------------------------------ host names
@pytest.mark.parametrize(
    ("host", "role"),
    [
        (CLUSTER, "writer"),
        (CLUSTER.upper() + ".", "writer"),
        (READER, "reader"),
        ("shop.cluster-abc.cn-north-1.rds.amazonaws.com.cn", "writer"),
        ("shop-instance-1.abc123xyz.eu-west-1.rds.amazonaws.com", "any"),  # an instance endpoint
        ("shop.proxy-abc123xyz.eu-west-1.rds.amazonaws.com", "any"),  # RDS Proxy does failover itself
        ("shop.cluster-custom-abc.eu-west-1.rds.amazonaws.com", "any"),  # a custom endpoint: any instances
        ("cluster-abc.example.com", "any"),
        ("127.0.0.1", "any"),
        ("localhost", "any"),
    ],
)
def test_auto_role_from_the_host_name(host: str, role: str) -> None:
    assert resolve_role("auto", host) == role
    assert resolve_role("reader", host) == "reader"  # an explicit role is kept


def test_reader_endpoint_of_a_cluster_endpoint() -> None:
    assert reader_endpoint(CLUSTER) == READER
    for host in (READER, "127.0.0.1", "shop.proxy-abc.eu-west-1.rds.amazonaws.com", "db.internal"):
        with pytest.raises(ConfigError, match="reader_host"):
            reader_endpoint(host)


def test_rds_proxy_detection_is_unchanged() -> None:
    assert detect_rds_proxy("my-proxy.proxy-abc123xyz.us-east-1.rds.amazonaws.com")
    assert not detect_rds_proxy(CLUSTER)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("replica.internal", ("replica.internal", None)),
        ("replica.internal:3307", ("replica.internal", 3307)),
        ("127.0.0.1:13306", ("127.0.0.1", 13306)),
        ("[::1]:3307", ("::1", 3307)),
        ("[::1]", ("::1", None)),
        ("::1", ("::1", None)),
    ],
)
def test_reader_host_and_port(value: str, parsed: tuple[str, int | None]) -> None:
    assert split_host_port(value) == parsed


@pytest.mark.parametrize("value", ["replica:", "replica:0", "replica:70000", "replica:x", ":3306", "[::1]x"])
def test_bad_reader_host_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="reader_host"):
        split_host_port(value)


# ------------------------------------------------------------------------------------------ writability
def test_writability_statement_by_server_version() -> None:
    maria = read_only_variables("5.5.5-10.11.6-MariaDB-log")
    assert maria == ("read_only", "innodb_read_only")  # MariaDB has no super_read_only: asking would fail
    assert "super_read_only" in read_only_variables("8.0.35")
    assert "super_read_only" in read_only_variables("5.7.12-log")
    assert "super_read_only" not in read_only_variables("5.6.10")
    sql = writability_sql(read_only_variables("8.0.35"))
    assert sql.count("AS") == 1 and "@@global.super_read_only" in sql and "@@max_user_connections" in sql
    assert is_writable({"read_only": "0", "innodb_read_only": "0", "super_read_only": "0"})
    assert not is_writable({"read_only": "0", "innodb_read_only": "1"})  # an Aurora reader
    assert not is_writable({"read_only": "1", "innodb_read_only": "0"})  # a demoted writer, an RDS replica
    assert not is_writable({"read_only": "ON"})


def test_the_writability_answer_is_one_value() -> None:
    names = ("read_only", "innodb_read_only")
    assert parse_writability("1,0,151,0", names) == ({"read_only": "1", "innodb_read_only": "0"}, (151, 0))
    assert parse_writability(b"0,0,4000,25", names) == ({"read_only": "0", "innodb_read_only": "0"}, (4000, 25))
    with pytest.raises(ValueError, match="writability check"):
        parse_writability("0,0,151", names)


def _error(code: int, text: str) -> pymysql.err.OperationalError:
    return pymysql.err.OperationalError(code, text)


READ_ONLY = _error(
    1290, "The MariaDB server is running with the --read-only option so it cannot execute this statement"
)
SUPER_READ_ONLY = _error(
    1290, "The MySQL server is running with the --super-read-only option so it cannot execute this statement"
)
SECURE_FILE_PRIV = _error(
    1290, "The MariaDB server is running with the --secure-file-priv option so it cannot execute this statement"
)
READ_ONLY_MODE = _error(1836, "Running in read-only mode")
READ_ONLY_TRANSACTION = _error(1792, "Cannot execute statement in a READ ONLY transaction")


def test_read_only_refusals_are_told_from_other_1290s() -> None:
    assert is_read_only_refusal(READ_ONLY)
    assert is_read_only_refusal(SUPER_READ_ONLY)
    assert is_read_only_refusal(READ_ONLY_MODE)
    assert not is_read_only_refusal(SECURE_FILE_PRIV)  # the caller's error
    assert not is_read_only_refusal(READ_ONLY_TRANSACTION)  # the caller's own READ ONLY transaction
    assert not is_read_only_refusal(_error(1062, "Duplicate entry"))
    assert connect_failure_kind(READ_ONLY) == "down"  # a read-only server at connect is waited out


def test_the_policy_after_a_read_only_refusal() -> None:
    policy = RetryPolicy(query_backoff=make_backoff("full", base=0.01, cap=0.1))

    def action(exc: BaseException, role: str, sql: str = "INSERT INTO t VALUES (1)", **kw: Any) -> str:
        return policy.after_read_only(exc, sql, role=role, in_transaction=kw.get("tx", False), reruns=kw.get("n", 0))

    assert action(READ_ONLY, "writer") == "rerun"
    assert action(READ_ONLY_MODE, "writer", "UPDATE t SET v = 1") == "rerun"
    assert action(READ_ONLY, "writer", tx=True) == "abort"
    assert action(READ_ONLY, "writer", "  /* x */ call p()") == "raise"  # a CALL is never re-run
    # Second review: procedures run indirectly were re-run (a prepared CALL; executable comments read as comments)
    assert action(READ_ONLY, "writer", "EXECUTE stmt USING @a") == "raise"
    assert action(READ_ONLY, "writer", "/*! CALL p() */") == "raise"
    assert action(READ_ONLY, "writer", "/*M!100000 CALL p() */") == "raise"
    assert action(READ_ONLY, "writer", "INSERT INTO t VALUES (1) /*!50000 , (2) */") == "raise"  # when in doubt
    assert action(READ_ONLY, "writer", n=MAX_READ_ONLY_RERUNS) == "raise"  # bounded by count (and the deadline)
    assert action(READ_ONLY, "any") == "raise"
    assert action(READ_ONLY, "any", tx=True) == "raise"
    assert action(READ_ONLY, "reader") == "keep"
    assert action(SECURE_FILE_PRIV, "writer") == "keep"
    assert action(READ_ONLY_TRANSACTION, "writer") == "keep"


def test_connection_age_is_jittered_down_by_at_most_ten_percent() -> None:
    rng = random.Random(7)
    ages = [connection_retire_at(100.0, 60.0, rng) - 100.0 for _ in range(2000)]
    assert min(ages) >= 54.0 and max(ages) <= 60.0
    assert max(ages) - min(ages) > 5.0  # spread over the whole 10 %
    assert connection_retire_at(100.0, None, rng) == float("inf")


# ------------------------------------------------------------------------------------------ options
def test_server_role_option_env_and_url(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServerlessMySQL(host=CLUSTER).get_config()["server_role"] == "writer"
    assert ServerlessMySQL(host=READER).get_config()["server_role"] == "reader"
    assert ServerlessMySQL(host="127.0.0.1").get_config()["server_role"] == "any"
    assert ServerlessMySQL(host=READER, server_role="writer").get_config()["server_role"] == "writer"
    assert ServerlessMySQL(url=f"mysql://app@{READER}/shop?server_role=any").get_config()["server_role"] == "any"
    url = "mysql://app@h/shop?max_connection_age=300"
    assert ServerlessMySQL(url=url).get_config()["max_connection_age"] == 300.0
    monkeypatch.setenv("SERVERLESS_MYSQL_SERVER_ROLE", "writer")
    monkeypatch.setenv("SERVERLESS_MYSQL_MAX_CONNECTION_AGE", "120")
    cfg = with_mysql(host="127.0.0.1")(lambda event, context, db: None).db.get_config()
    assert (cfg["server_role"], cfg["max_connection_age"]) == ("writer", 120.0)


@pytest.mark.parametrize(
    ("option", "value"),
    [("server_role", "primary"), ("server_role", "WRITER"), ("max_connection_age", 0), ("max_connection_age", -5)],
)
def test_bad_values_are_config_errors_naming_the_option(option: str, value: object) -> None:
    with pytest.raises(ConfigError, match=option):
        ServerlessMySQL(**{option: value})


def test_bad_server_role_variable_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVERLESS_MYSQL_SERVER_ROLE", "primary")
    with pytest.raises(ConfigError, match="SERVERLESS_MYSQL_SERVER_ROLE"):
        with_mysql(host="127.0.0.1")(lambda event, context, db: None)


# ------------------------------------------------------------------------------------------ reader_host
def with_reader(event: Any, context: Any, db: ServerlessMySQL, reader: ServerlessMySQL) -> Any:
    return reader


def reader_of(handler: Any) -> ServerlessMySQL:
    reader = handler.reader
    assert isinstance(reader, ServerlessMySQL)
    return reader


def without_reader(event: Any, context: Any, db: ServerlessMySQL) -> Any:
    return db


def test_reader_host_gives_a_reader_client_with_the_writers_options() -> None:
    handler = with_mysql(host=CLUSTER, port=3307, user="app", password="pw", database="shop", reader_host="auto")(
        with_reader
    )
    cfg = reader_of(handler).get_config()
    assert (cfg["host"], cfg["port"], cfg["user"], cfg["database"]) == (READER, 3307, "app", "shop")
    assert cfg["password"] == "****" and cfg["server_role"] == "reader"
    assert handler.db.get_config()["server_role"] == "writer"
    explicit = reader_of(with_mysql(host=CLUSTER, reader_host="replica.internal:3310")(with_reader)).get_config()
    assert (explicit["host"], explicit["port"], explicit["server_role"]) == ("replica.internal", 3310, "reader")
    default_port = with_mysql(host=CLUSTER, port=3307, reader_host="replica.internal")(with_reader)
    assert reader_of(default_port).get_config()["port"] == 3307  # the writer's


def test_reader_host_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVERLESS_MYSQL_READER_HOST", "auto")
    monkeypatch.setenv("SERVERLESS_MYSQL_HOST", CLUSTER)
    assert reader_of(with_mysql(with_reader)).get_config()["host"] == READER
    assert with_mysql(without_reader).reader is None  # no `reader` parameter: as before


def test_reader_host_auto_needs_a_cluster_endpoint() -> None:
    with pytest.raises(ConfigError, match="reader_host"):
        with_mysql(host="db.internal", reader_host="auto")(with_reader)
    with pytest.raises(ConfigError, match="reader_host"):
        with_mysql(reader_host="auto")(with_reader)  # no host at all


class _Secret:
    refreshable = True

    def __init__(self, host: str) -> None:
        self.host = host

    def get_credentials(self, *, refresh: bool = False) -> Credentials:
        return Credentials(user="app", password="pw", host=self.host, port=3307, database="shop")


def test_reader_host_auto_from_the_secrets_host() -> None:
    handler = with_mysql(credentials=_Secret(CLUSTER), reader_host="auto")(with_reader)
    provider = reader_of(handler).get_config()["credentials"]
    assert isinstance(provider, ReaderCredentials) and provider.refreshable
    creds = provider.get_credentials()
    assert (creds.host, creds.port, creds.user, creds.password) == (READER, 3307, "app", "pw")
    bad = ReaderCredentials(_Secret("db.internal"))
    with pytest.raises(ConfigError, match="reader_host"):
        bad.get_credentials()


def test_handlers_without_reader_are_unchanged() -> None:
    handler = with_mysql(host=CLUSTER, reader_host="auto")(without_reader)
    assert handler.reader is None
    plain = with_mysql(host=CLUSTER)(with_reader)  # no reader_host: nothing injected, nothing built
    assert plain.reader is None


def test_reader_with_iam_auth_gets_a_token_signed_for_the_readers_host() -> None:
    from serverless_mysql.iam import IamAuthCredentials

    handler = with_mysql(host=CLUSTER, user="app", iam_auth=True, region="eu-west-1", reader_host="auto")(with_reader)
    writer = handler.db.get_config()["credentials"]
    reader = reader_of(handler).get_config()["credentials"]
    assert isinstance(writer, IamAuthCredentials) and isinstance(reader, IamAuthCredentials)
    assert reader is not writer
    assert (reader.host, writer.host) == (READER, CLUSTER)


@pytest.mark.parametrize("reader_host", ["auto", "replica.internal"])
def test_a_reader_of_a_given_client_with_iam_auth_is_refused(reader_host: str) -> None:
    from serverless_mysql.iam import IamAuthCredentials

    # The given client's provider signs tokens for the writer's host: the reader would log in with the wrong token.
    db = ServerlessMySQL(credentials=IamAuthCredentials(host=CLUSTER, user="app", region="eu-west-1"))
    with pytest.raises(ConfigError, match=r"'reader_host'.*'db'"):
        with_mysql(db=db, reader_host=reader_host, sigterm=False)(with_reader)


def test_the_reader_is_registered_for_sigterm_and_snapstart_like_db(
    no_sigterm_install: list[ServerlessMySQL], monkeypatch: pytest.MonkeyPatch
) -> None:
    import serverless_mysql.decorator as decorator_module

    snapstart: list[ServerlessMySQL] = []

    def register(db: ServerlessMySQL) -> bool:
        snapstart.append(db)
        return True

    monkeypatch.setattr(decorator_module, "register_snapstart", register)
    handler = with_mysql(host=CLUSTER, reader_host="auto")(with_reader)
    assert no_sigterm_install == [handler.db, handler.reader]
    assert snapstart == [handler.db, handler.reader]


def test_read_only_reruns_share_one_wait_bound() -> None:
    """Second review: each re-run's connect waited its own max_connect_wait (5 re-runs: up to 5x the bound). The
    connect of a re-run waits only what is left of the bound since the statement began waiting."""
    import math
    import socket
    import time

    from serverless_mysql.errors import DeadlineExceededError, RetriesExhaustedError

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there: every attempt is refused as "down"
    db = ServerlessMySQL(host="127.0.0.1", port=port, user="u", max_connect_wait=2.0)
    started = time.monotonic()
    with pytest.raises((DeadlineExceededError, RetriesExhaustedError)):
        db._connector.open(None, gave_back_at=-math.inf, waiting_since=started - 1.9)
    assert time.monotonic() - started < 1.0  # 0.1 s was left of the 2 s bound, not a fresh 2 s


# ------------------------------------------------------------------------------------------ the check itself
class _CheckedConnection:
    """What the writability check needs of a connection: its handshake version, statements, COM_QUIT."""

    def __init__(self, version: str, *answers: object) -> None:
        self.version = version
        self.answers = list(answers)
        self.sent: list[str] = []
        self.closed = False

    def run(self, sql: str) -> object:
        self.sent.append(sql)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def close_quietly(self) -> None:
        self.closed = True


def _connector() -> Any:
    return ServerlessMySQL(host="127.0.0.1", user="u", password="p", server_role="writer")._connector


def test_a_mysql_writer_checks_super_read_only_and_keeps_the_limits() -> None:
    connector = _connector()
    conn = _CheckedConnection("8.0.35", [{"state": "0,0,0,2000,25"}])
    connector._check_writable(conn, "db:3306")
    assert "@@global.super_read_only" in conn.sent[0] and not conn.closed
    assert connector._limits == (2000, 25)
    demoted = _CheckedConnection("8.0.35", [{"state": "0,0,1,2000,25"}])
    with pytest.raises(ReadOnlyServerError, match="super_read_only=1"):
        connector._check_writable(demoted, "db:3306")
    assert demoted.closed


def test_a_server_that_lacks_super_read_only_is_asked_without_it_from_then_on() -> None:
    connector = _connector()
    unknown = pymysql.err.OperationalError(1193, "Unknown system variable 'super_read_only'")
    conn = _CheckedConnection("8.0.35-compatible", unknown, [{"state": "0,0,151,0"}])
    connector._check_writable(conn, "db:3306")
    assert "super_read_only" in conn.sent[0] and "super_read_only" not in conn.sent[1]
    again = _CheckedConnection("8.0.35-compatible", [{"state": "0,0,151,0"}])
    connector._check_writable(again, "db:3306")
    assert len(again.sent) == 1 and "super_read_only" not in again.sent[0]  # once per server version


@pytest.mark.parametrize("answer", [[], [{"state": "0,0,151"}], [{"state": "0,0,x,0"}], [{"other": 1}]])
def test_an_unexpected_writability_answer_is_a_connect_error(answer: object) -> None:
    conn = _CheckedConnection("10.11.6-MariaDB", answer)
    with pytest.raises(ConnectError, match="unexpected answer to the writability check") as caught:
        _connector()._check_writable(conn, "db:3306")
    assert conn.closed and isinstance(caught.value.__cause__, (IndexError, KeyError, ValueError))
