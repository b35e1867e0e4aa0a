from __future__ import annotations

from typing import Any

import pytest

from serverless_mysql import ConfigError, ConfigTypeError, ServerlessMySQL
from serverless_mysql.config import Config, detect_rds_proxy, parse_url


def test_defaults_match_the_documented_table() -> None:
    cfg = Config.from_options()
    assert (cfg.host, cfg.port, cfg.connect_timeout) == ("localhost", 3306, 5.0)
    assert cfg.manage_conns is True
    assert cfg.conn_utilization == 0.8
    assert (cfg.max_conns_freq, cfg.used_conns_freq) == (15.0, None)
    assert (cfg.zombie_min_timeout, cfg.zombie_max_timeout, cfg.max_kills) == (1.0, 900.0, 10)
    assert cfg.rds_proxy is None
    assert (cfg.backoff, cfg.base, cfg.cap, cfg.max_retries) == ("paced", 0.05, 1.0, 10_000)
    assert (cfg.max_connect_wait, cfg.pressure_idle_timeout) == (None, 3.0)
    assert (cfg.max_query_retries, cfg.query_retry_backoff) == (0, "full")


def test_unknown_option_is_a_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="'maxRetries'"):
        ServerlessMySQL(maxRetries=3)
    with pytest.raises(ConfigTypeError, match="'conn_utilisation'"):
        Config.from_options(conn_utilisation=0.5)


@pytest.mark.parametrize(
    ("option", "value", "exc", "fragment"),
    [
        ("port", "3306", TypeError, "'port' must be an int"),
        ("port", 0, ValueError, "'port' must be >= 1"),
        ("port", 70000, ValueError, "<= 65535"),
        ("port", True, TypeError, "'port'"),
        ("conn_utilization", None, TypeError, "'conn_utilization'"),
        ("conn_utilization", 0, ValueError, "'conn_utilization' must be > 0"),
        ("conn_utilization", 1.5, ValueError, "<= 1"),
        ("conn_utilization", float("nan"), ValueError, "finite"),
        ("backoff", "decorrelated-jitter", ValueError, "'backoff' must be 'paced', 'full', 'decorrelated'"),
        ("backoff", 3, ValueError, "'backoff'"),
        ("base", -1, ValueError, "'base' must be >= 0"),
        ("cap", "100", TypeError, "'cap'"),
        ("max_retries", 2.5, TypeError, "'max_retries' must be an int"),
        ("max_retries", -1, ValueError, "'max_retries'"),
        ("manage_conns", "false", TypeError, "'manage_conns' must be True or False"),
        ("rds_proxy", 1, TypeError, "'rds_proxy' must be True, False or None"),
        ("connect_timeout", 0, ValueError, "'connect_timeout' must be > 0"),
        ("connect_timeout", float("inf"), ValueError, "finite"),
        ("read_timeout", -2, ValueError, "'read_timeout'"),
        ("zombie_min_timeout", [], TypeError, "'zombie_min_timeout'"),
        ("host", "", ValueError, "'host'"),
        ("host", 127, TypeError, "'host' must be a str"),
        ("user", "a\x00b", ValueError, "'user' must not contain a NUL"),
        ("on_connect", "print", TypeError, "'on_connect' must be callable"),
        ("credentials", object(), TypeError, "'credentials'"),
        ("connect_args", [], TypeError, "'connect_args' must be a dict"),
        ("connect_args", {"passwd": "x"}, ValueError, "use the option 'password'"),
        ("connect_args", {"bogus": 1}, ValueError, "connect_args['bogus'] is not an argument of pymysql.connect"),
        ("connect_args", {"cursorclass": None}, ValueError, "rows are always dicts"),
    ],
)
def test_bad_values_name_the_option(option: str, value: Any, exc: type[Exception], fragment: str) -> None:
    with pytest.raises(exc) as info:
        ServerlessMySQL(**{option: value})
    assert fragment in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_relations_between_options_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"'base'.*'cap'"):
        Config.from_options(base=1.0, cap=0.5)
    with pytest.raises(ConfigError, match="zombie_min_timeout"):
        Config.from_options(zombie_min_timeout=1000, zombie_max_timeout=900)


def test_wrong_password_type_does_not_echo_it() -> None:
    with pytest.raises(TypeError) as info:
        ServerlessMySQL(password=12345678)
    assert "12345678" not in str(info.value)


def test_url_is_percent_decoded_and_typed() -> None:
    out = parse_url(
        "mysql://app%40corp:p%40ss%3Aw%2Frd%23%3F@db.example.com:3307/my%20db"
        "?connect_timeout=2.5&manage_conns=false&max_retries=7&ssl_verify_cert=true&charset=utf8mb4&rds_proxy=0"
    )
    assert out["user"] == "app@corp"
    assert out["password"] == "p@ss:w/rd#?"
    assert out["host"] == "db.example.com"
    assert out["port"] == 3307
    assert out["database"] == "my db"
    assert out["connect_timeout"] == 2.5
    assert out["manage_conns"] is False
    assert out["max_retries"] == 7
    assert out["rds_proxy"] is False
    assert out["connect_args"] == {"ssl_verify_cert": True, "charset": "utf8mb4"}


def test_keywords_override_url_values() -> None:
    cfg = Config.from_options(url="mysql://u:p@h:1234/db?max_retries=3", port=4000, max_retries=9)
    assert (cfg.host, cfg.port, cfg.user, cfg.database, cfg.max_retries) == ("h", 4000, "u", "db", 9)
    assert cfg.explicit == frozenset({"host", "port", "user", "password", "database"})


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("postgres://u:p@h/db", "mysql:// scheme"),
        ("h:3306/db", "scheme"),
        ("mysql:///db", "no host"),
        ("mysql://u:p@h:notaport/db", "not a valid URL"),
        ("mysql://u:p@h/db/extra", "only a database name"),
        ("mysql://u:p@h/db?manage_conns=maybe", "'manage_conns' must be a boolean"),
        ("mysql://u:p@h/db?max_retries=lots", "'max_retries' must be an integer"),
        ("mysql://u:p@h/db?frobnicate=1", "'frobnicate' is not an option"),
        ("mysql://u:p@h/db?on_connect=x", "cannot be set in a URL"),
    ],
)
def test_bad_urls_are_rejected_clearly(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_options(url=url)
    assert fragment in str(info.value)
    assert "p@" not in str(info.value).replace("'p@", "")


def test_url_errors_never_show_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_options(url="mysql://user:s3cretpw@host:99999/db")
    assert "s3cretpw" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u:pw@h:99999/db",
        "mysql://u:pw@[::1/db",
        "mysql://u:pw@[nohost]/db",
        "mysql://u:pw/x@h/db",
        "mysql://u:pw@h/db#pw2",
        "mysql://u:pw?x@h:3306",
        "mysql://u:pw?pw2=1@h?max_retries=x",
        "mysql://h/db?max_retries=pw@2",
    ],
)
def test_url_errors_name_the_problem_without_quoting_the_url(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_options(url=url)
    message = str(info.value)
    assert "option 'url'" in message or "url parameter" in message, message
    assert "pw" not in message and "nohost" not in message, message


def test_an_at_sign_in_a_parameter_value_is_not_mistaken_for_a_password() -> None:
    cfg = Config.from_options(url="mysql://u:p@h/db?init_command=SET @x:=1, @y=2")
    assert (cfg.user, cfg.password, cfg.host, cfg.database) == ("u", "p", "h", "db")
    assert cfg.connect_args == {"init_command": "SET @x:=1, @y=2"}


def test_get_config_is_a_masked_copy() -> None:
    db = ServerlessMySQL(url="mysql://app:hunter2@db:3306/shop", connect_args={"ssl_key_password": "k3y"})
    cfg = db.get_config()
    assert cfg["password"] == "****"
    assert "hunter2" not in repr(cfg)
    assert "k3y" not in repr(cfg)
    assert "hunter2" not in repr(db)
    cfg["host"] = "changed"
    assert db.get_config()["host"] == "db"


def test_get_config_masks_secrets_at_any_depth() -> None:
    """A TLS key passphrase nested in connect_args (PyMySQL's ``ssl`` dict) is a secret too (issue 18, item 7)."""
    nested = {"ssl": {"ca": "/ca.pem", "cert": "/c.pem", "key": "/k.pem", "password": "p4ss"}}
    db = ServerlessMySQL(host="db", connect_args=nested)
    cfg = db.get_config()
    assert "p4ss" not in repr(cfg)
    assert cfg["connect_args"]["ssl"]["password"] == "****"
    assert cfg["connect_args"]["ssl"]["ca"] == "/ca.pem"  # not a secret: still shown
    assert db._config.connect_args["ssl"]["password"] == "p4ss"  # the copy is masked, not the options


def test_rds_proxy_detection() -> None:
    assert detect_rds_proxy("my-proxy.proxy-abc123xyz.us-east-1.rds.amazonaws.com")
    assert not detect_rds_proxy("mydb.cluster-abc123xyz.us-east-1.rds.amazonaws.com")
    assert not detect_rds_proxy("mydb.cluster-ro-abc.eu-west-1.rds.amazonaws.com")
    assert not detect_rds_proxy("127.0.0.1")
    assert Config.from_options(host="p.proxy-x.us-east-1.rds.amazonaws.com").is_rds_proxy
    assert not Config.from_options(host="p.proxy-x.us-east-1.rds.amazonaws.com", rds_proxy=False).is_rds_proxy
    assert Config.from_options(host="db.internal", rds_proxy=True).is_rds_proxy
