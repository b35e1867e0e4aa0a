"""Fixtures for the ``@with_mysql`` tests: moto-mocked Secrets Manager and a GetSecretValue call counter.

Import the fixtures into a test module (``from tests.integration.decorator_fixtures import aws, ...``). Nothing
here talks to real AWS: moto intercepts every call, and the credentials are fake.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

    from harness.mariadb import AppUser

__all__ = ["ApiCalls", "api_calls", "aws", "clean_serverless_env", "rds_secret"]

REGION = "us-east-1"


def rds_secret(user: AppUser, **override: Any) -> str:
    """The RDS secret JSON for ``user`` (``engine``, ``host``, ``port``, ``username``, ``password``, ``dbname``)."""
    value: dict[str, Any] = {
        "engine": "mariadb",
        "host": user.host,
        "port": user.port,
        "username": user.name,
        "password": user.password,
        "dbname": user.database,
    }
    value.update(override)
    return json.dumps({k: v for k, v in value.items() if v is not None})


@pytest.fixture
def clean_serverless_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``SERVERLESS_MYSQL_*`` variable leaks into the test from the outer environment."""
    for name in list(os.environ):
        if name.startswith("SERVERLESS_MYSQL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[SecretsManagerClient]:
    """moto's Secrets Manager with fake credentials and fresh Powertools caches; yields a boto3 client."""
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    import boto3
    from aws_lambda_powertools.utilities.parameters import base
    from moto import mock_aws

    def reset() -> None:
        base.clear_caches()  # type: ignore[no-untyped-call]
        getattr(base, "DEFAULT_PROVIDERS").clear()  # noqa: B009 - its boto3 client must be created under the mock

    with mock_aws():
        reset()
        try:
            yield boto3.client("secretsmanager", region_name=REGION)
        finally:
            reset()


class ApiCalls(Counter[str]):
    """AWS API operations called by any boto3 client, by name (``calls["GetSecretValue"]``)."""


@pytest.fixture
def api_calls(monkeypatch: pytest.MonkeyPatch) -> ApiCalls:
    """Counts every AWS API call (moto still answers them)."""
    from botocore.client import BaseClient

    calls = ApiCalls()
    original = getattr(BaseClient, "_make_api_call")  # noqa: B009 - private, not in the stubs

    def counting(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        calls[operation_name] += 1
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    return calls
