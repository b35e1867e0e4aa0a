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
    # made by typing (Protocols, a TypedDict): loaded on first access only, so typing stays out of Lambda's init
    "serverless_mysql.credentials",
    "serverless_mysql.transactions",
    "serverless_mysql.decorator._types",
    "serverless_mysql.decorator.reader",
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


# What a plain @with_mysql handler (no TLS, SQLAlchemy, IAM or secret) may load during Lambda's init, on top of
# what the runtime client and PyMySQL already loaded; each entry says why. Anything else is a rarely used module
# imported eagerly again (ssl, urllib.parse, ipaddress, difflib, contextvars, unicodedata, enum, ...).
INIT_ALLOWED = {
    # jitter and housekeeping's random runs (the runtime client has not loaded http.client yet at init)
    "random", "_random", "bisect", "_bisect", "_sha512",
    # Not typing (our annotations are postponed, TYPE_CHECKING is our own constant: see _record), not dataclasses
    # with inspect, ast, dis (records), not snapshot_restore_py outside a SnapStart init (it imports typing), not
    # signal (its enums; the SIGTERM handler uses _signal, which the interpreter has loaded).
}  # fmt: skip
RUNTIME_PRELOADED = "import logging, re, json, socket, time, os, traceback, importlib"


def test_init_of_a_plain_handler_loads_no_rarely_used_module() -> None:
    """As in the runtime's process under the layer: no cryptography, the runtime client's modules loaded."""
    statement = (
        "sys.modules['cryptography'] = None  # not in the layer: PyMySQL then loads less\n"
        f"{RUNTIME_PRELOADED}\n"
        "import pymysql\n"
        "before = set(sys.modules)\n"
        "from serverless_mysql import with_mysql\n"
        "handler = with_mysql(host='127.0.0.1')(lambda event, context, db: 1)\n"
        "sys.modules = {name: None for name in set(sys.modules) - before}  # print only what init added\n"
    )
    code = f"import sys\n{statement}\nprint('\\n'.join(sys.modules))\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    added = {name for name in proc.stdout.split() if name.split(".")[0] != "serverless_mysql"}
    assert added <= INIT_ALLOWED, sorted(added - INIT_ALLOWED)
    own = {name for name in proc.stdout.split() if name.split(".")[0] == "serverless_mysql"}
    assert "serverless_mysql.decorator.options" in own  # the statement ran
    decoration = {"serverless_mysql.decorator", "serverless_mysql.env", "serverless_mysql._text"}  # reads variables
    assert not own & set(LAZY_OWN) - decoration, sorted(own & set(LAZY_OWN) - decoration)


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
