"""Fault matrix, credentials: Secrets Manager failures (moto), password rotation with a secret, and an unreachable
Secrets Manager endpoint.

Client cells use ``SecretsManagerCredentials(secret_id, boto3_client=<moto client>)``; decorator cells use
``@with_mysql(secret_id=...)``, the documented path through Powertools' ``get_secret`` (its default provider is
pointed at the same moto client, so the test can inject errors and count ``GetSecretValue`` calls).

AccessDenied and Throttling are injected on ``before-send``, i.e. as HTTP responses, so botocore's own retry
policy applies exactly as it would against AWS.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from moto import mock_aws

from harness.faultproxy import FaultProxy
from harness.mariadb import AppUser, MariaDBServer, thread_id
from serverless_mysql import ServerlessMySQL, with_mysql
from serverless_mysql.errors import CredentialsError, DeadlineExceededError
from serverless_mysql.lambda_context import LocalLambdaContext
from serverless_mysql.secrets import SecretsManagerCredentials
from tests.faults.conftest import LeakSink
from tests.faults.matrix import (
    DEADLINE,
    LAMBDA_TIMEOUT,
    SLACK,
    Attempt,
    Target,
    attempt,
    check_bounded,
    check_next_invocation,
    check_no_leak,
    check_outcome,
    check_recovers,
    check_write,
    deadline,
    invoke,
    op_write,
    warm,
)
from tests.faults.reliability import Observation

pytestmark = pytest.mark.timeout(40)

Matrix = Callable[..., Observation]
REGION = "us-east-1"
THROTTLE_BOUND = 4.0
"""botocore's standard retry mode: 3 attempts, backoff rand(0,1) then rand(0,2) seconds: at most ~3 s."""


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake AWS credentials and region; Powertools' provider cache emptied before and after."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    DEFAULT_PROVIDERS.clear()
    yield
    DEFAULT_PROVIDERS.clear()


@pytest.fixture
def sm(aws: None) -> Iterator[Any]:
    """A moto-backed Secrets Manager client, also used by Powertools' default provider (so by the decorator)."""
    with mock_aws():
        client = boto3.client("secretsmanager", region_name=REGION)
        DEFAULT_PROVIDERS["secrets"] = SecretsProvider(boto3_client=client)
        yield client


def put_secret(sm: Any, leaks: LeakSink, user: AppUser, name: str | None = None) -> str:
    """Create (or update) the RDS-format secret for ``user``; returns its name. The value is registered."""
    name = name or f"fm/{user.name}"
    value = json.dumps(
        {
            "engine": "mysql",
            "username": user.name,
            "password": user.password,
            "host": user.host,
            "port": user.port,
            "dbname": user.database,
        }
    )
    leaks.secret(value)
    leaks.secret(user.password)
    try:
        sm.create_secret(Name=name, SecretString=value)
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=name, SecretString=value)
    return name


class Counter:
    """Counts GetSecretValue calls made through a client."""

    def __init__(self, client: Any) -> None:
        self.calls = 0
        client.meta.events.register("before-call.secrets-manager.GetSecretValue", self._count)

    def _count(self, **_: Any) -> None:
        self.calls += 1


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def inject_error(client: Any, code: str, message: str) -> Counter:
    """Make every GetSecretValue HTTP call answer ``400 {code}`` (before moto sees it); returns a call counter."""

    def respond(**_: Any) -> AWSResponse:
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.1"
        headers["x-amzn-RequestId"] = "fault-suite"
        return AWSResponse(f"https://secretsmanager.{REGION}.amazonaws.com/", 400, headers, _Raw(body))

    counter = Counter(client)
    client.meta.events.register_first("before-send.secrets-manager.GetSecretValue", respond)
    return counter


def rotate(target: Target, sm: Any, secret: str, leaks: LeakSink) -> AppUser:
    """ALTER USER to a new password and store it in the secret (what a rotation Lambda does)."""
    user = target.user
    new = leaks.secret(f"rot-{time.monotonic_ns()}-{user.password}")
    target.server.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", [user.name, new])
    rotated = AppUser(name=user.name, password=new, host=user.host, port=user.port, database=user.database)
    put_secret(sm, leaks, rotated, secret)
    return rotated


def secret_client(target: Target, secret: str, sm: Any) -> ServerlessMySQL:
    """A client whose only credentials come from the secret (no user/password options)."""
    db = ServerlessMySQL(
        host=target.host,
        port=target.port,
        connect_timeout=1.0,
        credentials=SecretsManagerCredentials(secret, boto3_client=sm),
    )
    target.clients.append(db)
    target.leaks.observe(db, db.get_config())
    return db


def secret_handler(target: Target, secret: str, **overrides: Any) -> Any:
    """A ``@with_mysql(secret_id=...)`` handler (host/port given, user/password from the secret)."""
    table = target.table

    @with_mysql(secret_id=secret, host=target.host, port=target.port, sigterm=False, connect_timeout=1.0, **overrides)
    def handler(event: dict[str, Any], context: object, db: ServerlessMySQL) -> list[dict[str, Any]]:
        if event["op"] == "write":
            return list(db.query(f"INSERT INTO {table} (id, v) VALUES (1, 'w')"))
        return list(db.query("SELECT 1 AS one"))

    target.clients.append(handler.db)
    target.leaks.observe(handler.db, handler.db.get_config())
    return handler


# ================================================================================================ rotation via secret
@pytest.mark.matrix
def test_rotation_secret_connect(target: Target, sm: Any, matrix: Matrix, leaks: LeakSink) -> None:
    obs = matrix(
        "rotation",
        "connect",
        scenario="client on a secret (cached); password and secret rotate; the connection drops; connect()",
        expected="ok",
    )
    secret = put_secret(sm, leaks, target.user)
    counter = Counter(sm)
    db = secret_client(target, secret, sm)
    warm(db)
    assert counter.calls == 1
    rotate(target, sm, secret, leaks)
    target.server.kill(_thread(db))
    assert target.settle(0) == 0
    with deadline(db):
        result = attempt(db.connect, leaks)
    check_outcome(obs, result, "ok")
    check_bounded(obs, result)
    assert counter.calls == 2, f"expected exactly one re-fetch after 1045, saw {counter.calls - 1}"
    obs.checks += ("exactly one secret re-fetch",)
    check_recovers(obs, db)
    check_no_leak(obs, target, db)


@pytest.mark.matrix
def test_rotation_secret_decorator(target: Target, sm: Any, matrix: Matrix, leaks: LeakSink) -> None:
    obs = matrix(
        "rotation",
        "decorator",
        scenario="warm @with_mysql(secret_id=...) handler; password and secret rotate, the connection drops; "
        "an invocation INSERTs",
        expected="ok",
    )
    secret = put_secret(sm, leaks, target.user)
    counter = Counter(sm)
    handler = secret_handler(target, secret)
    assert invoke(handler, "read").ok
    assert counter.calls == 1
    rotate(target, sm, secret, leaks)
    target.server.kill(_thread(handler.db))
    assert target.settle(0) == 0
    result = invoke(handler, "write", leaks)
    check_outcome(obs, result, "ok")
    check_bounded(obs, result, LAMBDA_TIMEOUT)
    assert counter.calls == 2, f"expected exactly one re-fetch after 1045, saw {counter.calls - 1}"
    obs.checks += ("exactly one secret re-fetch",)
    handler.db.terminate()
    target.settle(0)
    check_write(obs, target, result)
    check_next_invocation(obs, handler)
    check_no_leak(obs, target, handler.db)


def _thread(db: ServerlessMySQL) -> int:
    conn = db.get_client()
    assert conn is not None
    return thread_id(conn)


# ================================================================================================ secret failures
FAILURES: dict[str, tuple[str, str | None, str]] = {
    # fault -> (description for scenarios, injected error code or None for "really missing", text in message)
    "secret_not_found": ("the secret does not exist", None, "ResourceNotFoundException"),
    "secret_access_denied": ("GetSecretValue is denied", "AccessDeniedException", "AccessDeniedException"),
    "secret_throttled": ("every GetSecretValue is throttled", "ThrottlingException", "ThrottlingException"),
}
FAILURE_CELLS = [(f, op) for f in FAILURES for op in ("connect", "write", "decorator")]


@pytest.mark.matrix
@pytest.mark.parametrize(("fault", "operation"), FAILURE_CELLS, ids=[f"{f}-{o}" for f, o in FAILURE_CELLS])
def test_secret_failure(fault: str, operation: str, target: Target, sm: Any, matrix: Matrix, leaks: LeakSink) -> None:
    what, code, text = FAILURES[fault]
    scenario = {
        "connect": f"cold client on a secret; {what}; connect()",
        "write": f"cold client on a secret; {what}; an INSERT",
        "decorator": f"cold @with_mysql(secret_id=...) handler; {what}; an invocation INSERTs",
    }[operation]
    obs = matrix(fault, operation, scenario=scenario, expected="CredentialsError")
    secret = f"fm/missing-{target.user.name}" if code is None else put_secret(sm, leaks, target.user)
    counter = inject_error(sm, code, f"injected {code} for the fault suite") if code else Counter(sm)
    bound = THROTTLE_BOUND if code == "ThrottlingException" else DEADLINE
    if operation == "decorator":
        handler = secret_handler(target, secret)
        result = invoke(handler, "write", leaks)
        db = handler.db
        bound = max(bound, LAMBDA_TIMEOUT)
    else:
        db = secret_client(target, secret, sm)
        with deadline(db):
            result = attempt(db.connect if operation == "connect" else lambda: op_write(db, target.table), leaks)
    leaks.observe(db, db.get_stats())
    check_outcome(obs, result, CredentialsError)
    check_bounded(obs, result, bound)
    assert text in str(result.exc) and secret in str(result.exc), str(result.exc)
    obs.checks += ("message names the secret and the AWS error",)
    assert target.connections() == 0 and db.get_stats().connect_attempts == 0
    obs.checks += ("no database connect attempted",)
    if code == "ThrottlingException":
        assert counter.calls == 1, counter.calls  # one API call; botocore's retries happen below before-call
        obs.checks += ("bounded by botocore's 3 attempts, not retried again by the library",)
    if operation != "connect":
        check_write(obs, target, result)
    check_no_leak(obs, target, db)


# ================================================================================================ unreachable endpoint
def run_bounded(fn: Callable[[], Any], bound: float, unblock: Callable[[], None], leaks: LeakSink) -> Attempt:
    """Run ``fn`` in a thread; if it is still running after ``bound`` + SLACK, record ``hangs`` and unblock it."""
    box: list[Attempt] = []
    thread = threading.Thread(target=lambda: box.append(attempt(fn, leaks)), daemon=True)
    t0 = time.monotonic()
    thread.start()
    thread.join(bound + SLACK)
    if thread.is_alive():
        unblock()
        thread.join(30)
        return Attempt(f"hangs (> {bound + SLACK:g} s)", None, time.monotonic() - t0)
    return box[0]


@pytest.mark.matrix
@pytest.mark.parametrize("operation", ["connect", "decorator"])
def test_secret_endpoint_unreachable(
    operation: str,
    target: Target,
    aws: None,
    mariadb: MariaDBServer,
    monkeypatch: pytest.MonkeyPatch,
    matrix: Matrix,
    leaks: LeakSink,
) -> None:
    scenario = {
        "connect": "client on a secret (SecretsManagerCredentials(region=...)); the endpoint accepts TCP, never "
        "answers; connect() with a 2 s deadline",
        "decorator": "cold @with_mysql(secret_id=...) handler; the endpoint never answers; 2.5 s Lambda timeout",
    }[operation]
    obs = matrix(
        "secret_unreachable", operation, scenario=scenario, expected="CredentialsError or DeadlineExceededError"
    )
    with FaultProxy(mariadb.host, mariadb.port) as endpoint:
        endpoint.blackhole()
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://{endpoint.host}:{endpoint.port}")
        if operation == "decorator":
            handler = secret_handler(target, "fm/unreachable")
            db = handler.db
            bound = LAMBDA_TIMEOUT
            result = run_bounded(
                lambda: handler({"op": "write"}, LocalLambdaContext(timeout=LAMBDA_TIMEOUT)),
                bound,
                endpoint.stop,
                leaks,
            )
        else:
            db = ServerlessMySQL(
                host=target.host,
                port=target.port,
                credentials=SecretsManagerCredentials("fm/unreachable", region=REGION),
            )
            target.clients.append(db)
            bound = DEADLINE
            db.set_deadline(DEADLINE)
            result = run_bounded(db.connect, bound, endpoint.stop, leaks)
    obs.outcome = result.outcome
    check_no_leak(obs, target, db)
    check_outcome(obs, result, CredentialsError, DeadlineExceededError)
    check_bounded(obs, result, bound)
