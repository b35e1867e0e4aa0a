"""``SERVERLESS_MYSQL_*`` variables: names, conversions, and the table of docs/options.md generated from the code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from serverless_mysql.config import Config
from serverless_mysql.env import (
    DECORATOR_DEFAULTS,
    PREFIX,
    EnvVarWarning,
    env_name,
    env_vars,
    markdown_table,
    read_env,
)
from serverless_mysql.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
# The one page that carries the generated table between the markers (the README links to it).
DOCS = [ROOT / "docs" / "options.md"]
NOT_FROM_TEXT = {"credentials", "explicit", "clock", "sleep", "random"}


def test_names_follow_the_pattern() -> None:
    for var in env_vars():
        assert var.name == PREFIX + var.option.upper() == env_name(var.option)
    assert env_name("conn_utilization") == "SERVERLESS_MYSQL_CONN_UTILIZATION"
    assert env_name("secret_id") == "SERVERLESS_MYSQL_SECRET_ID"
    assert env_name("url") == "SERVERLESS_MYSQL_URL"


def test_every_scalar_option_has_a_variable() -> None:
    """Derived from the client's Config, so an option added there gets its variable (and doc row) for free."""
    options = {var.option for var in env_vars()}
    scalar = {
        f.name
        for f in dataclasses.fields(Config)
        if f.name not in NOT_FROM_TEXT and not f.name.startswith("on_") and "Callable[..." not in str(f.type)
    }
    assert scalar <= options
    assert set(DECORATOR_DEFAULTS) <= options
    assert not options & (NOT_FROM_TEXT | {"metrics", "db"})
    assert {"host", "port", "user", "password", "database", "url", "conn_utilization", "secret_id"} <= options


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_variables_table_is_the_generated_one(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    match = re.search(r"<!-- env-table:start -->\n(.*?)\n<!-- env-table:end -->", text, re.DOTALL)
    assert match, f"{doc} lacks the env-table markers"
    assert match.group(1) == markdown_table(), (
        f"the variables table in {doc} is stale: regenerate it with `python -m serverless_mysql.options`"
    )


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_variable_the_code_reads_is_documented_and_nothing_else(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    documented = set(re.findall(r"\bSERVERLESS_MYSQL_[A-Z_]+[A-Z]\b", text))
    read = {var.name for var in env_vars()}
    assert read <= documented
    assert documented - read <= set(), documented - read


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("SERVERLESS_MYSQL_PORT", " 3307 ", 3307),
        ("SERVERLESS_MYSQL_CONN_UTILIZATION", "0.75", 0.75),
        ("SERVERLESS_MYSQL_MANAGE_CONNS", "No", False),
        ("SERVERLESS_MYSQL_MANAGE_CONNS", "ON", True),
        ("SERVERLESS_MYSQL_RDS_PROXY", "auto", None),
        ("SERVERLESS_MYSQL_RDS_PROXY", "1", True),
        ("SERVERLESS_MYSQL_READ_TIMEOUT", "none", None),
        ("SERVERLESS_MYSQL_READ_TIMEOUT", "2.5", 2.5),
        ("SERVERLESS_MYSQL_PASSWORD", " spaces kept ", " spaces kept "),
        ("SERVERLESS_MYSQL_CONNECT_ARGS", '{"ssl_ca": "/ca.pem", "ssl_verify_identity": true}', None),
        ("SERVERLESS_MYSQL_AFTER", "Quit", "quit"),
        ("SERVERLESS_MYSQL_BACKOFF", "decorrelated", "decorrelated"),
    ],
)
def test_conversions(name: str, raw: str, value: object) -> None:
    option, (source, converted) = next(iter(read_env({name: raw}).items()))
    assert source == name
    assert option == name.removeprefix(PREFIX).lower()
    if name.endswith("CONNECT_ARGS"):
        assert converted == {"ssl_ca": "/ca.pem", "ssl_verify_identity": True}
    else:
        assert converted == value


def test_empty_is_unset_and_other_prefixes_are_ignored() -> None:
    assert read_env({"SERVERLESS_MYSQL_HOST": "  ", "MYSQL_HOST": "x", "PATH": "/bin"}) == {}


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("SERVERLESS_MYSQL_PORT", "3306.5"),
        ("SERVERLESS_MYSQL_BASE", "nan"),
        ("SERVERLESS_MYSQL_SIGTERM", "2"),
        ("SERVERLESS_MYSQL_RDS_PROXY", "perhaps"),
    ],
)
def test_bad_values_name_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name):
        read_env({name: raw})


def test_secret_values_are_never_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        read_env({"SERVERLESS_MYSQL_CONNECT_ARGS": '{"password": "hunter2"'})
    assert "hunter2" not in str(caught.value)


def test_unknown_variables_warn() -> None:
    with pytest.warns(EnvVarWarning, match="did you mean SERVERLESS_MYSQL_SECRET_ID"):
        assert read_env({"SERVERLESS_MYSQL_SECRETID": "x"}) == {}
