"""``import serverless_mysql`` loads the client and nothing it does not need (checked in fresh interpreters).

Not a timing test: it fails when a heavy or optional module creeps back into the import path.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# Loaded on first use only: the decorator, its environment parsing, the AWS providers and the SDKs.
LAZY_OWN = (
    "serverless_mysql.decorator",
    "serverless_mysql.env",
    "serverless_mysql.options",
    "serverless_mysql._text",
    "serverless_mysql._url",
    "serverless_mysql.secrets",
    "serverless_mysql.iam",
    "serverless_mysql._secrets_provider",
    "serverless_mysql.lambda_context",
)
HEAVY_ROOTS = ("boto3", "botocore", "aws_lambda_powertools", "s3transfer", "urllib3")
# stdlib modules we only need for a URL, a secret or the decorator (checked only when pymysql does not load them)
LAZY_STDLIB = ("urllib.parse", "ipaddress", "json", "contextvars", "difflib", "signal")


def loaded_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after ``statement``."""
    code = f"import sys\n{statement}\nprint('\\n'.join(sys.modules))\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return set(proc.stdout.split())


@pytest.fixture(scope="module")
def pymysql_modules() -> set[str]:
    return loaded_after("import pymysql")


def test_import_loads_only_the_client(pymysql_modules: set[str]) -> None:
    added = loaded_after("import serverless_mysql") - pymysql_modules
    assert "serverless_mysql.client" in added
    assert not added & set(LAZY_OWN), sorted(added & set(LAZY_OWN))
    heavy = sorted(m for m in added if m.split(".")[0] in HEAVY_ROOTS)
    assert not heavy, heavy
    assert not added & set(LAZY_STDLIB), sorted(added & set(LAZY_STDLIB))


def test_the_client_and_errors_need_nothing_more() -> None:
    added = loaded_after("from serverless_mysql import ServerlessMySQL, ConfigError, DeadlineExceededError, Rows")
    assert not added & set(LAZY_OWN), sorted(added & set(LAZY_OWN))


def test_with_mysql_loads_the_decorator_but_no_sdk() -> None:
    added = loaded_after("from serverless_mysql import with_mysql")
    assert "serverless_mysql.decorator" in added
    heavy = sorted(m for m in added if m.split(".")[0] in HEAVY_ROOTS)
    assert not heavy, heavy
    assert "serverless_mysql.secrets" not in added and "serverless_mysql.iam" not in added


def test_every_public_name_resolves() -> None:
    import serverless_mysql
    from serverless_mysql import decorator, iam, secrets

    for name in serverless_mysql.__all__:
        assert getattr(serverless_mysql, name) is not None, name
    assert serverless_mysql.with_mysql is decorator.with_mysql
    assert serverless_mysql.SecretsManagerCredentials is secrets.SecretsManagerCredentials
    assert serverless_mysql.IamAuthCredentials is iam.IamAuthCredentials
    assert set(serverless_mysql.__all__) <= set(dir(serverless_mysql))
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        serverless_mysql.nope  # noqa: B018 - the access is the test
