"""The code shown in README.md and docs/ runs: each snippet that can run here is run as shown.

The files live in ``docs/snippets/`` and are embedded into the pages by ``docs/embed.py`` (``tests/unit/test_docs.py``
keeps pages and files identical). Handlers run against the private MariaDB; snippets that only configure
(decorations with Secrets Manager or IAM options) are imported, which validates every option the way Lambda's
init would. ``client_api.py`` names a server that does not exist here: it runs with ``ServerlessMySQL`` pointed at
the private one instead.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import pymysql
import pytest

import serverless_mysql
from harness.mariadb import MariaDBServer
from serverless_mysql import ServerlessMySQL
from serverless_mysql.lambda_context import LocalLambdaContext
from tests.support.snapstart import RUNTIME

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "docs" / "snippets"


def load(name: str) -> ModuleType:
    """Import ``docs/snippets/<name>.py`` afresh, under a private module name."""
    spec = importlib.util.spec_from_file_location(f"docs_snippet_{name}", SNIPPETS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_against_private_server(
    name: str, mariadb: MariaDBServer, shop: str, monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    """Run snippet ``name``, whose ``ServerlessMySQL(host="db.example.com", ...)`` gets the private server instead."""
    clients: list[ServerlessMySQL] = []

    def here(**options: Any) -> ServerlessMySQL:
        assert options["host"] == "db.example.com"
        db = ServerlessMySQL(url=mariadb.root_url(shop), manage_conns=False, read_timeout=10, write_timeout=10)
        clients.append(db)
        return db

    monkeypatch.setattr(serverless_mysql, "ServerlessMySQL", here)  # what the snippet's own import finds
    try:
        return load(name)
    finally:
        for db in clients:
            db.quit()


def statements(path: Path) -> list[str]:
    """The statements of an SQL file (no ``;`` inside literals in our snippets)."""
    return [s.strip() for s in path.read_text(encoding="utf-8").split(";") if s.strip()]


@pytest.fixture
def shop(mariadb: MariaDBServer) -> Iterator[str]:
    """A fresh database holding ``examples/schema.sql``, dropped afterwards."""
    name = f"docs_shop_{secrets.token_hex(4)}"
    mariadb.execute(f"CREATE DATABASE {name}")
    conn = mariadb.root()
    try:
        conn.select_db(name)
        with conn.cursor() as cur:
            for statement in statements(ROOT / "examples" / "schema.sql"):
                cur.execute(statement)
    finally:
        conn.close()
    yield name
    mariadb.execute(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture
def orders_app(mariadb: MariaDBServer, shop: str) -> Iterator[tuple[str, str]]:
    """The application user exactly as ``docs/snippets/grants.sql`` creates it (name, password and database
    substituted); yields ``(user, password)``."""
    user, password = f"orders_app_{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    for statement in statements(SNIPPETS / "grants.sql"):
        mariadb.execute(
            statement.replace("'orders_app'", f"'{user}'")
            .replace("<password>", password)
            .replace(" shop.orders ", f" {shop}.orders ")
        )
    yield user, password
    mariadb.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def app_url(server: MariaDBServer, user: tuple[str, str], database: str) -> str:
    """``SERVERLESS_MYSQL_URL`` for the application user on ``server``."""
    name, password = user
    return f"mysql://{quote(name)}:{quote(password, safe='')}@{server.host}:{server.port}/{database}"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], None]:
    """Set ``SERVERLESS_MYSQL_*`` variables for the snippet about to be imported (and nothing from outside)."""
    for name in [n for n in os.environ if n.startswith("SERVERLESS_MYSQL_")]:
        monkeypatch.delenv(name)

    def set_all(values: dict[str, str]) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_all


def test_the_readme_handler_runs_as_the_documented_least_privileged_user(
    mariadb: MariaDBServer, shop: str, orders_app: tuple[str, str], env: Callable[[dict[str, str]], None]
) -> None:
    """README's handler, configured by variables, with only SELECT and INSERT: orders in, orders out, and its
    housekeeping (forced on every end()) works without any further grant."""
    env(
        {
            "SERVERLESS_MYSQL_URL": app_url(mariadb, orders_app, shop),
            "SERVERLESS_MYSQL_USED_CONNS_FREQ": "0",
            "SERVERLESS_MYSQL_READ_TIMEOUT": "10",
            "SERVERLESS_MYSQL_WRITE_TIMEOUT": "10",
        }
    )
    app = load("app")
    created = app.handler(
        {
            "action": "create",
            "customer": "ada",
            "items": [{"item": "notebook", "quantity": 2}, {"item": "pen", "quantity": 5}],
        },
        LocalLambdaContext(timeout=10.0),
    )
    assert created["status"] == 201 and len(created["ids"]) == 2
    got = app.handler({"id": created["ids"][1]}, LocalLambdaContext(timeout=10.0))
    assert got["status"] == 200
    assert got["order"] == {"id": created["ids"][1], "customer": "ada", "item": "pen", "quantity": 5}
    assert app.handler({"id": 10**9}, LocalLambdaContext(timeout=10.0)) == {"status": 404}
    stats = app.handler.db.get_stats()
    assert stats.housekeeping_runs >= 3 and stats.housekeeping_errors == 0
    assert app.handler.db.get_client() is not None, "end() keeps the connection for the next invocation"
    app.handler.db.quit()


def test_the_readme_handler_creates_all_items_or_none(
    mariadb: MariaDBServer, shop: str, orders_app: tuple[str, str], env: Callable[[dict[str, str]], None]
) -> None:
    env({"SERVERLESS_MYSQL_URL": app_url(mariadb, orders_app, shop)})
    app = load("app")
    bad = {
        "action": "create",
        "customer": "ada",
        "items": [{"item": "ok", "quantity": 1}, {"item": "x" * 65, "quantity": 1}],
    }
    with pytest.raises(pymysql.err.DataError):  # the second item is too long for VARCHAR(64)
        app.handler(bad, LocalLambdaContext(timeout=10.0))
    assert mariadb.execute(f"SELECT COUNT(*) AS n FROM {shop}.orders")[0]["n"] == 0
    app.handler.db.quit()


def test_the_transaction_snippets_commit_what_they_show(mariadb: MariaDBServer, shop: str) -> None:
    mariadb.execute(f"CREATE TABLE {shop}.stock (item VARCHAR(64) PRIMARY KEY, n INT NOT NULL)")
    mariadb.execute(f"CREATE TABLE {shop}.audit (order_id INT NOT NULL)")
    mariadb.execute(f"ALTER TABLE {shop}.orders MODIFY customer VARCHAR(64) NOT NULL DEFAULT 'shop'")
    mariadb.execute(f"INSERT INTO {shop}.stock VALUES ('book', 3)")
    tx = load("transactions")
    db = ServerlessMySQL(url=mariadb.root_url(shop), manage_conns=False, read_timeout=10, write_timeout=10)
    try:
        order_id = tx.place_order(db, "book")
        results = tx.place_order_chain(db, "book")
    finally:
        db.quit()
    assert mariadb.execute(f"SELECT n FROM {shop}.stock")[0]["n"] == 2
    assert [len(r) for r in results] == [0, 0, 0] and results[0].insert_id > order_id
    assert mariadb.execute(f"SELECT order_id FROM {shop}.audit") == [{"order_id": results[0].insert_id}]


@pytest.fixture
def restore_library_loggers() -> Iterator[None]:
    """The snippet's copy_config_to_registered_loggers replaces our loggers' handlers and turns propagation off."""
    saved = {
        name: (lg.handlers[:], lg.level, lg.propagate)
        for name, lg in logging.Logger.manager.loggerDict.items()
        if name.startswith("serverless_mysql") and isinstance(lg, logging.Logger)
    }
    yield
    for name, (handlers, level, propagate) in saved.items():
        lg = logging.getLogger(name)
        lg.handlers, lg.level, lg.propagate = handlers, level, propagate


def test_the_powertools_stack_runs_with_the_decorators_shown(
    mariadb: MariaDBServer,
    shop: str,
    env: Callable[[dict[str, str]], None],
    monkeypatch: pytest.MonkeyPatch,
    restore_library_loggers: None,
) -> None:
    """Logger, Tracer, Metrics, event_source and @with_mysql stacked as decorator.md shows them, on an SQS event."""
    mariadb.execute(f"CREATE TABLE {shop}.inbox (body TEXT NOT NULL)")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_DEV", "false")
    env({"SERVERLESS_MYSQL_URL": mariadb.root_url(shop), "SERVERLESS_MYSQL_MANAGE_CONNS": "false"})
    stack = load("powertools_stack")
    event = {"Records": [{"messageId": str(n), "body": f"hello {n}", "attributes": {}} for n in range(3)]}
    stack.handler(event, LocalLambdaContext(timeout=10.0))
    assert logging.getLogger("serverless_mysql").propagate is False, "the snippet routes our logs to its Logger"
    rows = mariadb.execute(f"SELECT body FROM {shop}.inbox ORDER BY body")
    assert [r["body"] for r in rows] == ["hello 0", "hello 1", "hello 2"]
    stack.handler.db.quit()


@pytest.mark.parametrize("name", ["explicit_options", "iam_auth"])
def test_configuration_snippets_decorate_without_error(name: str, env: Callable[[dict[str, str]], None]) -> None:
    """Importing runs the decoration, which validates every option as Lambda's init would; nothing connects."""
    env({})
    module = load(name)
    assert isinstance(module.handler.db, ServerlessMySQL)
    assert module.handler.db.get_client() is None


def test_the_aurora_snippet_decorates_a_writer_and_a_reader(env: Callable[[dict[str, str]], None]) -> None:
    """The secret's host is known only at connect: the roles and the reader endpoint resolve then; nothing connects."""
    env({})
    module = load("aurora")
    reader = module.handler.reader
    assert isinstance(reader, ServerlessMySQL)
    assert reader.get_config()["server_role"] == "reader"
    assert reader.get_client() is None and module.handler.db.get_client() is None
    assert module.primary.get_config()["server_role"] == "writer"


def test_the_snapstart_snippet_registers_quit_and_reseed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(RUNTIME))
    monkeypatch.delitem(sys.modules, "snapshot_restore_py", raising=False)
    module = load("snapstart_hooks")
    hooks: Any = sys.modules["snapshot_restore_py"]
    try:
        assert [f for f, _, _ in hooks.get_before_snapshot()] == [module.db.quit]
        assert [f for f, _, _ in hooks.get_after_restore()] == [module.db.reseed]
    finally:
        hooks.get_before_snapshot().clear()
        hooks.get_after_restore().clear()
        monkeypatch.delitem(sys.modules, "snapshot_restore_py")


def test_the_local_run_snippet_prints_an_order(
    mariadb: MariaDBServer,
    shop: str,
    orders_app: tuple[str, str],
    env: Callable[[dict[str, str]], None],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """decorator.md's local run: its URL is only a default, so the variable set here wins; it imports ``app``."""
    mariadb.execute(f"INSERT INTO {shop}.orders (id, customer, item, quantity) VALUES (1, 'ada', 'ink', 3)")
    env({"SERVERLESS_MYSQL_URL": app_url(mariadb, orders_app, shop)})
    monkeypatch.syspath_prepend(str(SNIPPETS))
    monkeypatch.delitem(sys.modules, "app", raising=False)
    try:
        load("run_locally")
        printed = capsys.readouterr().out
        assert printed.strip() == str(
            {"status": 200, "order": {"id": 1, "customer": "ada", "item": "ink", "quantity": 3}}
        )
    finally:
        sys.modules["app"].handler.db.quit()
        monkeypatch.delitem(sys.modules, "app")


def test_the_client_api_snippet_runs_as_shown(
    mariadb: MariaDBServer, shop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """client.md's first example, with the client's server swapped for the private one (db.example.com is not)."""
    mariadb.execute(f"CREATE TABLE {shop}.items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL)")
    mariadb.execute(f"INSERT INTO {shop}.items VALUES (42, 'pen')")
    module = load_against_private_server("client_api", mariadb, shop, monkeypatch)
    assert module.rows == [{"id": 42, "name": "pen"}]
    assert module.created.insert_id == 43 and module.created.affected_rows == 1
    assert mariadb.execute(f"SELECT name FROM {shop}.items WHERE id = 43") == [{"name": "book"}]


def test_the_orm_handler_snippet_creates_gets_and_lists_orders(
    mariadb: MariaDBServer, shop: str, orders_app: tuple[str, str], env: Callable[[dict[str, str]], None]
) -> None:
    """sqlalchemy.md's ORM handler, configured by variables, as the documented least-privileged user."""
    env({"SERVERLESS_MYSQL_URL": app_url(mariadb, orders_app, shop)})
    orm = load("orm_handler")
    try:
        first = orm.handler({"action": "create", "customer": "ada", "item": "ink"}, LocalLambdaContext(timeout=10.0))
        second = orm.handler(
            {"action": "create", "customer": "ada", "item": "pen", "quantity": 2}, LocalLambdaContext(timeout=10.0)
        )
        assert first["status"] == second["status"] == 201 and second["id"] > first["id"]
        got = orm.handler({"action": "get", "id": second["id"]}, LocalLambdaContext(timeout=10.0))
        assert got == {"status": 200, "item": "pen"}
        assert orm.handler({"action": "get", "id": 10**9}, LocalLambdaContext(timeout=10.0)) == {"status": 404}
        listed = orm.handler({"action": "list", "customer": "ada"}, LocalLambdaContext(timeout=10.0))
        assert listed == {"status": 200, "ids": [second["id"], first["id"]]}
    finally:
        orm.handler.db.quit()
    rows = mariadb.execute(f"SELECT customer, item, quantity FROM {shop}.orders ORDER BY id")
    assert rows == [
        {"customer": "ada", "item": "ink", "quantity": 1},
        {"customer": "ada", "item": "pen", "quantity": 2},
    ]


def test_the_cursor_snippet_runs_as_shown(mariadb: MariaDBServer, shop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlalchemy.md's db.cursor() example, with the client's server swapped for the private one."""
    module = load_against_private_server("cursor", mariadb, shop, monkeypatch)
    assert module.order_id == 1
    assert module.rows == [{"id": 1, "item": "notebook"}], "the comment in the snippet shows these rows"
    rows = mariadb.execute(f"SELECT customer, item FROM {shop}.orders ORDER BY id")
    assert [(r["customer"], r["item"]) for r in rows] == [("ada", "notebook"), ("bob", "pen"), ("eve", "ink")]
