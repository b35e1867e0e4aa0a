"""The option specs: docs/options.md is generated from them, and WithMySQLOptions agrees with them."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from serverless_mysql import options as options_doc
from serverless_mysql._checks import Number
from serverless_mysql._spec import DECORATOR_OPTIONS
from serverless_mysql._text import from_text, parse_bool
from serverless_mysql.config import CLIENT_OPTIONS, OPTION_NAMES, URL_OPTION_KINDS, Config
from serverless_mysql.decorator import WithMySQLOptions
from serverless_mysql.decorator.options import Setup
from serverless_mysql.env import env_vars
from serverless_mysql.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "options.md"


def test_the_options_page_is_the_generated_one() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert options_doc.render(text) == text, (
        "docs/options.md is stale: regenerate it with `python -m serverless_mysql.options`"
    )


def test_a_page_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="client-options:start"):
        options_doc.render("# Options\n")


def test_the_generator_rewrites_a_stale_page(tmp_path: Path) -> None:
    page = tmp_path / "options.md"
    stale = PAGE.read_text(encoding="utf-8").replace("| `port` | `3306` |", "| `port` | `3307` |")
    page.write_text(stale, encoding="utf-8")
    assert options_doc.main(["--check", str(page)]) == 1
    assert options_doc.main([str(page)]) == 0
    assert page.read_text(encoding="utf-8") == PAGE.read_text(encoding="utf-8")
    assert options_doc.main(["--check", str(page)]) == 0


def test_every_option_is_described_once() -> None:
    fields = [f.name for f in dataclasses.fields(Config) if f.name != "explicit"]
    assert [o.name for o in CLIENT_OPTIONS] == fields
    assert frozenset(fields) == OPTION_NAMES
    for option in (*CLIENT_OPTIONS, *DECORATOR_OPTIONS):
        assert option.doc.endswith("."), option.name
        if option.kind is not None:
            assert option.env_doc and not option.env_doc.endswith("."), option.name
    assert not {o.name for o in CLIENT_OPTIONS} & {o.name for o in DECORATOR_OPTIONS}


def test_with_mysql_options_matches_the_specs() -> None:
    """Same names, and the same annotation as Config's field (client options) or the spec's (the decorator's)."""
    annotations = {
        name: getattr(hint, "__forward_arg__", hint) for name, hint in WithMySQLOptions.__annotations__.items()
    }
    expected = {o.name: o.type for o in (*DECORATOR_OPTIONS, *CLIENT_OPTIONS)}
    assert set(annotations) == set(expected)
    mismatched = {name: (annotations[name], expected[name]) for name in expected if annotations[name] != expected[name]}
    assert not mismatched, mismatched


def test_the_decorators_setup_holds_every_own_option() -> None:
    assert {o.name for o in DECORATOR_OPTIONS} <= set(Setup.__slots__)


def test_url_parameters_are_the_text_options_but_the_urls_own_parts() -> None:
    text_options = {o.name for o in CLIENT_OPTIONS if o.kind is not None}
    assert set(URL_OPTION_KINDS) == text_options - {"host", "port", "user", "password", "database", "url"} - {
        "connect_args"
    }
    assert URL_OPTION_KINDS["rds_proxy"] == "bool?"
    assert Config.from_options(url="mysql://h/db?rds_proxy=auto&read_timeout=none").rds_proxy is None


def test_variables_and_url_parameters_read_text_alike() -> None:
    kinds = {var.option: var.kind for var in env_vars()}
    for option, kind in URL_OPTION_KINDS.items():
        assert kinds[option] == kind, option


@pytest.mark.parametrize(
    ("text", "value"), [("1", True), (" YES ", True), ("On", True), ("0", False), ("off", False), ("maybe", None)]
)
def test_parse_bool(text: str, value: bool | None) -> None:
    assert parse_bool(text) is value


def test_from_text_names_the_source_and_hides_secrets() -> None:
    with pytest.raises(ConfigError, match=r"^url parameter 'base' must be a finite number, not 'inf'$"):
        from_text("float", "inf", what="url parameter 'base'")
    with pytest.raises(ConfigError) as caught:
        from_text("int", "hunter2", what="environment variable X", show=False)
    assert "hunter2" not in str(caught.value)
    assert from_text("choice:end,quit", " QUIT ", what="x") == "quit"
    assert from_text("float?", "null", what="x") is None


def test_relations_come_from_the_checks() -> None:
    bounded = {(o.name, o.check.at_most) for o in CLIENT_OPTIONS if isinstance(o.check, Number) and o.check.at_most}
    assert bounded == {("zombie_min_timeout", "zombie_max_timeout"), ("base", "cap")}
    with pytest.raises(ConfigError, match=r"option 'base' \(0.5\) must not exceed option 'cap' \(0.1\)"):
        Config.from_options(base=0.5, cap=0.1)


def test_the_docs_ranges_read_from_the_checks() -> None:
    ranges = {o.name: o.check.describe() for o in CLIENT_OPTIONS if o.check is not None}
    assert ranges["port"] == "1\N{EN DASH}65535"
    assert ranges["conn_utilization"] == "ratio, (0, 1]"
    assert ranges["pressure_idle_timeout"] == "s, 1\N{EN DASH}31536000, or `None`"
    assert ranges["base"] == "s, \N{GREATER-THAN OR EQUAL TO} 0, \N{LESS-THAN OR EQUAL TO} `cap`"
    assert math.isinf(Number(low=0).high)


def test_secret_max_age_default_is_the_providers() -> None:
    from serverless_mysql.secrets import DEFAULT_MAX_AGE

    (spec,) = (o for o in DECORATOR_OPTIONS if o.name == "secret_max_age")
    assert spec.resolved_default() == DEFAULT_MAX_AGE
    assert f"| `secret_max_age` | `{DEFAULT_MAX_AGE:g}` s |" in PAGE.read_text(encoding="utf-8")
