"""Secrets Manager and IAM credential providers, against moto (no database, no real AWS)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from serverless_mysql import (
    ConfigError,
    ConfigTypeError,
    Credentials,
    CredentialsError,
    CredentialsProvider,
    DeadlineExceededError,
    IamAuthCredentials,
    SecretsManagerCredentials,
    ServerlessMySQL,
)
from serverless_mysql.credentials import time_budget, time_left
from serverless_mysql.secrets import credentials_from_secret
from tests.integration.decorator_fixtures import ApiCalls, api_calls, aws

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

__all__ = ["api_calls", "aws"]

PASSWORD = "s3cr3t-Pa55word!"
FULL = {
    "engine": "mysql",
    "host": "db.internal",
    "port": 3307,
    "username": "app",
    "password": PASSWORD,
    "dbname": "shop",
    "masterarn": "arn:aws:rds:us-east-1:123456789012:db:shop",
}


def test_rds_secret_json_becomes_credentials() -> None:
    creds = credentials_from_secret(json.dumps(FULL))
    assert (creds.user, creds.password, creds.host, creds.port, creds.database) == (
        "app",
        PASSWORD,
        "db.internal",
        3307,
        "shop",
    )
    assert PASSWORD not in repr(creds)


def test_rds_managed_secret_has_only_username_and_password() -> None:
    creds = credentials_from_secret(json.dumps({"username": "admin", "password": PASSWORD}))
    assert (creds.user, creds.host, creds.port, creds.database) == ("admin", None, None, None)


@pytest.mark.parametrize(("port", "expected"), [("3306", 3306), (" 3310 ", 3310), (3306.0, 3306), ("", None)])
def test_port_as_number_or_numeric_string(port: object, expected: int | None) -> None:
    assert credentials_from_secret(json.dumps({**FULL, "port": port})).port == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b'{"username": "app", "password": "x"}', "is binary"),
        ("not json at all " + PASSWORD, r"is not valid JSON \(error at line 1 column 1\)"),
        (json.dumps([PASSWORD]), "must be a JSON object .* not a JSON array"),
        (json.dumps(PASSWORD), "not a JSON string"),
        (
            json.dumps({"user": "app", "pass": PASSWORD, "host": "h"}),
            r"lacks 'username', 'password' \(keys present: \['host', 'pass', 'user'\]\)",
        ),
        (json.dumps({"username": "app", "password": ""}), r"lacks 'password'"),
        (json.dumps({**FULL, "port": "thirty"}), "key 'port' must be a port number"),
        (json.dumps({**FULL, "port": 70000}), "key 'port' must be a port number"),
        (json.dumps({**FULL, "password": 12345}), "key 'password' must be a string, not a JSON number"),
        (None, "has no value"),
    ],
)
def test_bad_secrets_name_the_problem_never_the_value(value: Any, message: str) -> None:
    with pytest.raises(CredentialsError, match=message) as caught:
        credentials_from_secret(value, "prod/shop")
    assert "prod/shop" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert "thirty" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ or caught.value.__context__ is None


def test_fetched_cached_and_force_fetched(aws: SecretsManagerClient, api_calls: ApiCalls) -> None:
    aws.create_secret(Name="prod/shop", SecretString=json.dumps(FULL))
    provider = SecretsManagerCredentials("prod/shop")
    assert isinstance(provider, CredentialsProvider)
    assert provider.refreshable
    assert provider.get_credentials().password == PASSWORD
    assert provider.get_credentials().user == "app"
    assert api_calls["GetSecretValue"] == 1  # cached (max_age 300 s)
    aws.put_secret_value(SecretId="prod/shop", SecretString=json.dumps({**FULL, "password": "rotated"}))
    assert provider.get_credentials().password == PASSWORD  # still cached
    assert provider.get_credentials(refresh=True).password == "rotated"
    assert provider.get_credentials().password == "rotated"  # the refreshed value is cached
    assert api_calls["GetSecretValue"] == 2
    assert PASSWORD not in repr(provider)


def test_max_age_zero_fetches_every_time(aws: SecretsManagerClient, api_calls: ApiCalls) -> None:
    aws.create_secret(Name="s", SecretString=json.dumps(FULL))
    provider = SecretsManagerCredentials("s", max_age=0)
    for _ in range(3):
        provider.get_credentials()
    assert api_calls["GetSecretValue"] == 3


def test_binary_secret_in_secrets_manager(aws: SecretsManagerClient) -> None:
    aws.create_secret(Name="bin", SecretBinary=json.dumps(FULL).encode())
    with pytest.raises(CredentialsError, match="'bin' is binary") as caught:
        SecretsManagerCredentials("bin").get_credentials()
    assert PASSWORD not in str(caught.value)


def test_missing_secret(aws: SecretsManagerClient) -> None:
    with pytest.raises(CredentialsError, match=r"secret 'nope' could not be fetched: .*ResourceNotFoundException"):
        SecretsManagerCredentials("nope").get_credentials()


def test_injected_client_and_region(aws: SecretsManagerClient, api_calls: ApiCalls) -> None:
    import boto3

    west = boto3.client("secretsmanager", region_name="eu-west-1")
    west.create_secret(Name="shop", SecretString=json.dumps(FULL))
    assert SecretsManagerCredentials("shop", boto3_client=west).get_credentials().user == "app"
    assert SecretsManagerCredentials("shop", region="eu-west-1").get_credentials().user == "app"
    with pytest.raises(CredentialsError, match="could not be fetched"):
        SecretsManagerCredentials("shop").get_credentials()  # default region us-east-1: not there


def test_fetch_timeouts_fit_the_time_left() -> None:
    from serverless_mysql._secrets_provider import client_config

    def bounds(left: float | None) -> tuple[float, float, int]:
        config: Any = client_config(left)  # botocore's stubs do not declare its options as attributes
        return config.connect_timeout, config.read_timeout, config.retries["total_max_attempts"]

    assert bounds(None) == bounds(60.0) == (2.0, 5.0, 2)  # botocore's own: 60 s, 60 s, legacy mode 5 attempts
    assert bounds(3.0) == (1.0, 2.0, 1)
    assert bounds(12.0) == (2.0, 5.0, 1)
    assert sum(bounds(0.3)[:2]) == pytest.approx(0.3)


def test_each_fetch_gets_a_client_bounded_by_the_deadline(
    aws: SecretsManagerClient, api_calls: ApiCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serverless_mysql import _secrets_provider

    lefts: list[float | None] = []
    original = _secrets_provider.client_config

    def recording(left: float | None) -> Any:
        lefts.append(left)
        return original(left)

    monkeypatch.setattr(_secrets_provider, "client_config", recording)
    aws.create_secret(Name="s", SecretString=json.dumps(FULL))
    provider = SecretsManagerCredentials("s", region="us-east-1", max_age=0)
    provider.get_credentials()  # no deadline: the provider's own client, made once
    with time_budget(3.0):
        provider.get_credentials()  # a client made for what is left
    with time_budget(60.0):
        provider.get_credentials()  # enough time: the provider's own client again
    assert lefts[0] is None and len(lefts) == 2
    assert lefts[1] is not None and 2.5 < lefts[1] <= 3.0
    assert api_calls["GetSecretValue"] == 3


def test_without_time_left_the_secret_is_not_fetched_but_the_cache_serves(
    aws: SecretsManagerClient, api_calls: ApiCalls
) -> None:
    aws.create_secret(Name="s", SecretString=json.dumps(FULL))
    provider = SecretsManagerCredentials("s")
    with time_budget(0.0), pytest.raises(DeadlineExceededError, match="deadline reached while fetching secret 's'"):
        provider.get_credentials()
    assert api_calls["GetSecretValue"] == 0
    provider.get_credentials()
    with time_budget(0.0):
        assert provider.get_credentials().password == PASSWORD  # cached: no call needed
        with pytest.raises(DeadlineExceededError):
            provider.get_credentials(refresh=True)
    assert api_calls["GetSecretValue"] == 1


def test_powertools_default_provider_is_bounded_when_created_here(aws: SecretsManagerClient) -> None:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    from serverless_mysql._secrets_provider import BoundedSecretsProvider

    aws.create_secret(Name="s", SecretString=json.dumps(FULL))
    SecretsManagerCredentials("s").get_credentials()
    assert isinstance(DEFAULT_PROVIDERS["secrets"], BoundedSecretsProvider)
    mine = DEFAULT_PROVIDERS["secrets"] = SecretsProvider(boto3_client=aws)  # set by the application: kept
    SecretsManagerCredentials("s").get_credentials(refresh=True)
    assert DEFAULT_PROVIDERS["secrets"] is mine


def test_the_client_passes_its_deadline_to_the_provider() -> None:
    seen: list[float | None] = []

    class Recording:
        refreshable = False

        def get_credentials(self, *, refresh: bool = False) -> Credentials:
            seen.append(time_left())
            raise CredentialsError("recorded")

    db = ServerlessMySQL(host="127.0.0.1", credentials=Recording())
    with pytest.raises(CredentialsError):
        db.connect()
    db.set_deadline(5.0)
    with pytest.raises(CredentialsError):
        db.connect()
    assert seen[0] is None
    assert seen[1] is not None and 4.0 < seen[1] <= 5.0
    assert time_left() is None  # only while the client asks


def test_provider_arguments_are_validated() -> None:
    with pytest.raises(ConfigTypeError, match="'secret_id' must be a non-empty str"):
        SecretsManagerCredentials("  ")
    with pytest.raises(ConfigError, match="'secret_max_age' must be >= 0"):
        SecretsManagerCredentials("s", max_age=-1)
    with pytest.raises(ConfigTypeError, match="'secret_max_age' must be a number"):
        SecretsManagerCredentials("s", max_age="300")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- IAM
def test_iam_token_per_connect_with_tls(aws: SecretsManagerClient) -> None:
    provider = IamAuthCredentials(host="db.internal", user="app", port=3307, ssl_ca="/opt/ca.pem")
    assert not provider.refreshable
    first = provider.get_credentials()
    assert (first.user, first.host, first.port) == ("app", "db.internal", 3307)
    assert first.connect_args == {"ssl_ca": "/opt/ca.pem", "ssl_verify_cert": True, "ssl_verify_identity": True}
    assert first.password is not None
    token = urlsplit("https://" + first.password)
    assert token.netloc == "db.internal:3307"
    query = parse_qs(token.query)
    assert query["Action"] == ["connect"]
    assert query["DBUser"] == ["app"]
    assert "X-Amz-Signature" in query
    assert first.password not in repr(first)
    assert first.password not in repr(provider)


def test_iam_generates_a_token_for_every_connect() -> None:
    calls: list[dict[str, Any]] = []

    class FakeRDS:
        def generate_db_auth_token(self, **kwargs: Any) -> str:
            calls.append(kwargs)
            return f"token-{len(calls)}"

    provider = IamAuthCredentials(host="h", user="u", tls={"ssl_ca": "/ca"}, region="eu-central-1")
    provider._client = FakeRDS()  # type: ignore[assignment]
    assert [provider.get_credentials().password for _ in range(3)] == ["token-1", "token-2", "token-3"]
    assert calls[0] == {"DBHostname": "h", "Port": 3306, "DBUsername": "u", "Region": "eu-central-1"}


def test_iam_requires_verified_tls_naming_the_argument() -> None:
    # No TLS argument: the server is verified against the system CA store.
    assert IamAuthCredentials(host="h", user="u").tls == {"ssl_verify_cert": True, "ssl_verify_identity": True}
    with pytest.raises(ConfigError, match=r"tls\['ssl_disabled'\]=True switches TLS off"):
        IamAuthCredentials(host="h", user="u", tls={"ssl_ca": "/ca", "ssl_disabled": True})
    with pytest.raises(ConfigError, match=r"tls\['ssl_verify_cert'\]=False must be True.*ssl_ca"):
        IamAuthCredentials(host="h", user="u", tls={"ssl_ca": "/ca", "ssl_verify_cert": False})
    with pytest.raises(ConfigError, match="tls accepts only"):
        IamAuthCredentials(host="h", user="u", tls={"ssl_ca": "/ca", "charset": "latin1"})
    with pytest.raises(ConfigTypeError, match="needs option 'user'"):
        IamAuthCredentials(host="h", user="", ssl_ca="/ca")


@pytest.mark.parametrize(
    "connect_args",
    [{"ssl_disabled": True}, {"ssl_verify_identity": False}, {"ssl_ca": None}, {"ssl_ca": ""}],
)
def test_connect_args_cannot_weaken_the_tls_of_iam_credentials(connect_args: dict[str, Any]) -> None:
    provider = IamAuthCredentials(host="h", user="u", ssl_ca="/ca")
    key = next(iter(connect_args))
    with pytest.raises(ConfigError, match=rf"connect_args\[{key!r}\].*option 'credentials' \(IamAuthCredentials\)"):
        ServerlessMySQL(credentials=provider, connect_args=connect_args)


def test_connect_args_may_replace_or_add_tls_arguments_of_iam_credentials() -> None:
    provider = IamAuthCredentials(host="h", user="u", tls={"ssl_ca": "/ca"})
    for connect_args in ({"ssl_ca": "/other-ca"}, {"ssl_verify_cert": True}, {"ssl_disabled": False}, {}):
        assert ServerlessMySQL(credentials=provider, connect_args=connect_args).get_config()["connect_args"] == (
            connect_args
        )


def test_iam_without_aws_credentials_is_a_credentials_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with pytest.raises(CredentialsError, match="cannot sign an IAM auth token"):
        IamAuthCredentials(host="h", user="u", ssl_ca="/ca").get_credentials()
