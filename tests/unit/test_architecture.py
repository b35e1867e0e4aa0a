"""The package's shape: no import cycle, no module over 400 lines, PyMySQL's internals used by the driver only."""

from __future__ import annotations

import ast
from pathlib import Path

import pymysql.connections
import pymysql.cursors

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "serverless_mysql"
MAX_LINES = 400
DRIVER = "_driver"


def _modules() -> dict[str, Path]:
    """Dotted names relative to the package ("client", "decorator.options", ...) -> file."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom | ast.Import, known: set[str]) -> set[str]:
    """The package modules an import statement loads (the package itself is "")."""
    targets: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name == "serverless_mysql" or alias.name.startswith("serverless_mysql."):
                targets.add(alias.name.removeprefix("serverless_mysql").lstrip("."))
        return targets & known
    module_name = node.module or ""
    if node.level:
        base = module.split(".") if module else []
        if not is_package:
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        prefix = ".".join(base)
    elif module_name == "serverless_mysql" or module_name.startswith("serverless_mysql."):
        prefix, module_name = "", module_name.removeprefix("serverless_mysql").lstrip(".")
    else:
        return set()
    source = ".".join(p for p in (prefix, module_name) if p)
    targets.add(source)
    for alias in node.names:  # `from . import errors` imports a module
        candidate = ".".join(p for p in (source, alias.name) if p)
        if candidate in known:
            targets.add(candidate)
    return targets & known


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges: set[str] = set()
        for node in ast.walk(tree):  # every import, at module level or inside a function (lazy)
            if isinstance(node, ast.Import | ast.ImportFrom):
                edges |= _resolve(name, path.name == "__init__.py", node, known)
        edges.discard(name)
        edges.discard("")  # importing the package itself (its __init__) is how submodules load anyway
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_import_graph_is_read() -> None:
    graph = _graph()
    assert "_driver" in graph["_session"]  # a module-level import
    assert "_statements" in graph["retry"]  # a function-level (lazy) import
    assert "errors" in graph["_connect"]


def test_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_one() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_module_over_400_lines() -> None:
    long = {
        name: n
        for name, path in _modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def _pymysql_private_names() -> frozenset[str]:
    conn = pymysql.connections.Connection(host="127.0.0.1", defer_connect=True)
    names = set(dir(pymysql.connections.Connection)) | set(vars(conn))
    names |= set(dir(pymysql.cursors.Cursor)) | set(dir(pymysql.cursors.DictCursor))
    # Set only once connected (or in other PyMySQL versions).
    names |= {"_sock", "_rfile", "_read_timeout", "_write_timeout", "_current_timeout", "_next_seq_id", "_secure"}
    return frozenset(n for n in names if n.startswith("_") and not n.startswith("__"))


def _private_uses(tree: ast.AST, private: frozenset[str]) -> list[tuple[int, str]]:
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in private:
            uses.append((node.lineno, node.attr))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in private
        ):
            uses.append((node.lineno, str(node.args[1].value)))
    return uses


def test_pymysql_internals_only_in_the_driver() -> None:
    private = _pymysql_private_names()
    assert {"_sock", "_force_close", "_create_ssl_ctx", "_read_timeout"} <= private
    offenders = {
        name: uses
        for name, path in _modules().items()
        if name != DRIVER and (uses := _private_uses(ast.parse(path.read_text(encoding="utf-8")), private))
    }
    assert offenders == {}


def test_the_private_name_check_catches_attribute_and_string_access() -> None:
    private = _pymysql_private_names()
    tree = ast.parse("conn._sock.settimeout(1)\nsetattr(conn, '_read_timeout', 2)\ngetattr(conn, '_force_close')()")
    assert sorted(name for _, name in _private_uses(tree, private)) == ["_force_close", "_read_timeout", "_sock"]


def test_public_import_paths_still_work() -> None:
    import serverless_mysql
    from serverless_mysql import results
    from serverless_mysql.client import Rows, ServerlessMySQL, Stats
    from serverless_mysql.transactions import Transaction

    assert Rows is results.Rows is serverless_mysql.Rows and Stats is results.Stats is serverless_mysql.Stats
    assert ServerlessMySQL is serverless_mysql.ServerlessMySQL
    assert isinstance(ServerlessMySQL(host="127.0.0.1").transaction(), Transaction)


def test_every_name_in_all_exists_at_runtime() -> None:
    """Second review: aliases moved under TYPE_CHECKING (cold start) were still listed in ``__all__``, so a star
    import raised AttributeError."""
    import importlib
    import importlib.util

    missing = {}
    for name in _modules():
        if name == "sqlalchemy" and importlib.util.find_spec("sqlalchemy") is None:
            continue
        module = importlib.import_module(f"serverless_mysql.{name}" if name else "serverless_mysql")
        absent = [n for n in getattr(module, "__all__", ()) if not hasattr(module, n)]
        if absent:
            missing[name] = absent
    assert missing == {}


def test_lazy_module_attributes_come_from_one_helper() -> None:
    # _record.lazy_attributes is the module __getattr__ for re-exported types; the package root's caches in globals.
    own = {
        name
        for name, path in _modules().items()
        if any(
            isinstance(node, ast.FunctionDef) and node.name == "__getattr__" and node.col_offset <= 4  # module level
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    }
    assert own == {"", "_record"}
