"""Secrets Manager credentials (moto) against a real MariaDB: rotation costs one re-fetch and no failed invocation."""

from __future__ import annotations

import io
import json
import logging
import secrets
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import ConnectError, ServerlessMySQL, with_mysql
from serverless_mysql.lambda_context import LocalLambdaContext
from tests.integration.decorator_fixtures import ApiCalls, api_calls, aws, clean_serverless_env, rds_secret

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

__all__ = ["api_calls", "aws", "clean_serverless_env"]

pytestmark = pytest.mark.usefixtures("clean_serverless_env")


def whoami(event: Any, context: Any, db: ServerlessMySQL) -> dict[str, Any]:
    row = db.query("SELECT CURRENT_USER() AS me, DATABASE() AS db, CONNECTION_ID() AS id")[0]
    return {"user": str(row["me"]).split("@")[0], "db": row["db"], "id": int(row["id"])}


@pytest.fixture
def handlers() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for handler in made:
        handler.db.terminate()


def rotate(mariadb: MariaDBServer, aws: SecretsManagerClient, secret_id: str, user: AppUser) -> str:
    """Single-user rotation: new password in the database, then in the secret. Returns the new password."""
    new = secrets.token_urlsafe(16)
    mariadb.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", [user.name, new])
    aws.put_secret_value(SecretId=secret_id, SecretString=rds_secret(user, password=new))
    return new


def test_secret_supplies_every_connection_field(
    aws: SecretsManagerClient, api_calls: ApiCalls, app_user: AppUser, handlers: list[Any]
) -> None:
    aws.create_secret(Name="shop/db", SecretString=rds_secret(app_user, port=str(app_user.port)))
    handler = with_mysql(secret_id="shop/db", sigterm=False)(whoami)
    handlers.append(handler)
    assert api_calls["GetSecretValue"] == 0  # nothing fetched at decoration time (init)
    assert handler({}, LocalLambdaContext())["user"] == app_user.name
    assert handler({}, LocalLambdaContext())["db"] == app_user.database
    assert api_calls["GetSecretValue"] == 1


def test_rds_managed_secret_with_host_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, aws: SecretsManagerClient, app_user: AppUser, handlers: list[Any]
) -> None:
    # RDS-managed master secrets hold only username and password; the rest comes from variables.
    aws.create_secret(
        Name="rds!db-1", SecretString=json.dumps({"username": app_user.name, "password": app_user.password})
    )
    monkeypatch.setenv("SERVERLESS_MYSQL_SECRET_ID", "rds!db-1")
    monkeypatch.setenv("SERVERLESS_MYSQL_HOST", app_user.host)
    monkeypatch.setenv("SERVERLESS_MYSQL_PORT", str(app_user.port))
    monkeypatch.setenv("SERVERLESS_MYSQL_DATABASE", app_user.database)
    monkeypatch.setenv("SERVERLESS_MYSQL_SIGTERM", "0")
    handler = with_mysql(whoami)
    handlers.append(handler)
    result = handler({}, LocalLambdaContext())
    assert (result["user"], result["db"]) == (app_user.name, app_user.database)


def test_explicit_options_beat_the_secrets_fields(
    aws: SecretsManagerClient, app_user: AppUser, handlers: list[Any]
) -> None:
    aws.create_secret(Name="wrong-db", SecretString=rds_secret(app_user, dbname="not_there", host="192.0.2.1"))
    handler = with_mysql(secret_id="wrong-db", host=app_user.host, database=app_user.database, sigterm=False)(whoami)
    handlers.append(handler)
    assert handler({}, LocalLambdaContext())["db"] == app_user.database


@pytest.mark.parametrize("after", ["quit", "end"])
def test_rotation_costs_exactly_one_refetch_and_no_failed_invocation(
    after: str,
    aws: SecretsManagerClient,
    api_calls: ApiCalls,
    app_user: AppUser,
    mariadb: MariaDBServer,
    handlers: list[Any],
) -> None:
    aws.create_secret(Name="shop/rotating", SecretString=rds_secret(app_user))
    handler = with_mysql(secret_id="shop/rotating", after=after, sigterm=False)(whoami)
    handlers.append(handler)
    first = handler({}, LocalLambdaContext())
    assert api_calls["GetSecretValue"] == 1

    rotate(mariadb, aws, "shop/rotating", app_user)
    if after == "end":
        # The warm connection survives a rotation (single-user strategy); it must be replaced to matter, as
        # when another environment killed it as a zombie.
        mariadb.kill(first["id"])
    # The cached secret still holds the old password: 1045, one forced re-fetch, connected.
    second = handler({}, LocalLambdaContext())
    assert second["user"] == app_user.name
    assert second["id"] != first["id"]
    assert api_calls["GetSecretValue"] == 2
    # The refreshed secret is cached again: no more fetches.
    handler({}, LocalLambdaContext())
    handler({}, LocalLambdaContext())
    assert api_calls["GetSecretValue"] == 2
    print(f"rotation (after={after}): GetSecretValue calls in total 2, re-fetches 1")


def test_a_wrong_secret_fails_after_one_refetch_never_looping(
    aws: SecretsManagerClient, api_calls: ApiCalls, app_user: AppUser, handlers: list[Any]
) -> None:
    aws.create_secret(Name="shop/bad", SecretString=rds_secret(app_user, password="not-the-password"))
    handler = with_mysql(secret_id="shop/bad", sigterm=False)(whoami)
    handlers.append(handler)
    for invocation in range(1, 3):
        with pytest.raises(ConnectError) as caught:
            handler({}, LocalLambdaContext())
        assert caught.value.errno == 1045
        assert "not-the-password" not in str(caught.value)
        # first connect: fetch + one re-fetch; later connects: the cached value + one re-fetch; never a loop
        assert api_calls["GetSecretValue"] == 1 + invocation


def test_no_password_or_secret_in_any_log(
    aws: SecretsManagerClient,
    app_user: AppUser,
    mariadb: MariaDBServer,
    handlers: list[Any],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every library log record, at DEBUG, through both logging and Powertools' JSON Logger: no credentials."""
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.utilities import parameters

    out = io.StringIO()
    logger = Logger(service=f"leak-{uuid.uuid4().hex[:8]}", level="DEBUG", logger_handler=logging.StreamHandler(out))
    json_handler = logger.registered_handler
    library = logging.getLogger("serverless_mysql")
    library.addHandler(json_handler)
    monkeypatch.setattr(library, "level", logging.DEBUG)

    secret_string = rds_secret(app_user)
    aws.create_secret(Name="shop/leak", SecretString=secret_string)
    passwords = [app_user.password]
    try:
        with caplog.at_level(logging.DEBUG, logger="serverless_mysql"):

            @logger.inject_lambda_context
            @with_mysql(secret_id="shop/leak", after="quit", sigterm=False)
            def handler(event: Any, context: Any, db: ServerlessMySQL) -> Any:
                if event.get("fail"):
                    db.query("SELECT * FROM missing_table")
                return whoami(event, context, db)

            handlers.append(handler)
            handler({}, LocalLambdaContext())
            passwords.append(rotate(mariadb, aws, "shop/leak", app_user))  # 1045 + re-fetch on the next connect
            handler({}, LocalLambdaContext())
            with pytest.raises(Exception, match="missing_table"):
                handler({"fail": True}, LocalLambdaContext())
            aws.put_secret_value(
                SecretId="shop/leak", SecretString=rds_secret(app_user, password="wrong-" + passwords[-1])
            )
            parameters.clear_caches()  # type: ignore[no-untyped-call]
            with pytest.raises(ConnectError):
                handler({}, LocalLambdaContext())
    finally:
        library.removeHandler(json_handler)
    texts = [record.getMessage() for record in caplog.records]
    texts += [repr(vars(record)) for record in caplog.records]
    texts.append(out.getvalue())
    assert any("connect" in text for text in texts)  # the debug events really were logged
    assert sum('"event"' in line for line in out.getvalue().splitlines()) >= 5
    for text in texts:
        for password in passwords:
            assert password not in text
        assert secret_string not in text
