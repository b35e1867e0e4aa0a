"""Dependencies run one way: tests -> harness <- bench. The benchmark never imports the test tree, and the harness
imports neither the test tree, pytest, nor the library under test (it must start servers for any client)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench import NODE_DIR
from bench.strategies import ensure_node_modules

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    """Every module that ``path`` imports, at any depth (function-level imports included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            found.update(arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str))
    return found


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def python_files(directory: str) -> list[Path]:
    files = sorted((ROOT / directory).rglob("*.py"))
    return [f for f in files if "node_modules" not in f.parts]


def test_imported_modules_sees_every_kind_of_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import tests.support.fake_mysql\n"
        "from tests import conftest\n"
        "def f():\n"
        "    from tests.faults.matrix import Target\n"
        "    import importlib\n"
        "    importlib.import_module('tests.unit')\n"
        "from . import sibling\n"
    )
    assert imported_modules(sample) == {
        "tests.support.fake_mysql",
        "tests",
        "tests.faults.matrix",
        "importlib",
        "tests.unit",
    }


@pytest.mark.parametrize("path", python_files("bench"), ids=lambda p: str(p.relative_to(ROOT)))
def test_bench_imports_nothing_from_tests(path: Path) -> None:
    offending = sorted(m for m in imported_modules(path) if _top(m) == "tests")
    assert not offending, f"{path.relative_to(ROOT)} imports {offending}: move what it needs into harness/"


@pytest.mark.parametrize("path", python_files("harness"), ids=lambda p: str(p.relative_to(ROOT)))
def test_harness_imports_neither_tests_nor_pytest_nor_the_library(path: Path) -> None:
    offending = sorted(m for m in imported_modules(path) if _top(m) in ("tests", "bench", "pytest", "serverless_mysql"))
    assert not offending, f"{path.relative_to(ROOT)} imports {offending}"


def test_bench_and_harness_have_python_files() -> None:
    # The parametrized checks above would pass vacuously if a move emptied these directories.
    assert len(python_files("bench")) >= 10
    assert {p.name for p in python_files("harness")} >= {"mariadb.py", "faultproxy.py", "tls.py"}


def test_the_node_host_lives_in_its_own_folder() -> None:
    assert NODE_DIR == ROOT / "bench" / "node"
    assert {"fleet.js", "package.json", "package-lock.json"} <= {p.name for p in NODE_DIR.iterdir()}
    assert not list((ROOT / "bench").glob("*.js")), "Node files belong in bench/node/"


def test_npm_install_is_skipped_when_node_modules_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "node_modules" / "serverless-mysql").mkdir(parents=True)
    (tmp_path / "node_modules" / "serverless-mysql" / "package.json").write_text("{}")
    monkeypatch.setattr("bench.strategies.NODE_DIR", tmp_path)
    logged: list[str] = []
    ensure_node_modules(logged.append)
    assert logged == []
