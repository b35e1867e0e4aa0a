"""The layer zips as ``make layer`` builds them, and ``sam build`` of template.yaml."""

from __future__ import annotations

import importlib.util
import re
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.layer.conftest import LayerBuild, find_python
from tests.layer.samcli import SamTools

ROOT = Path(__file__).resolve().parents[2]


def _load_layer_tools() -> ModuleType:
    # layer/tools.py is a script run by layer/Makefile, not a package: load it by path.
    spec = importlib.util.spec_from_file_location("serverless_mysql_layer_tools", ROOT / "layer" / "tools.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


layer_tools = _load_layer_tools()

MAX_ZIPPED = 2 * 1024 * 1024  # issue 4: <= 2 MB zipped without Powertools
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")


def _names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def test_layer_zip_layout_and_contents(layer_build: LayerBuild) -> None:
    names = _names(layer_build.layer_zip)
    assert names, "empty zip"
    assert all(n.startswith("python/") for n in names), "everything must sit under python/ (on sys.path in Lambda)"
    top = {n.split("/")[1] for n in names}
    assert {"serverless_mysql", "pymysql"} <= top
    assert "serverless_mysql/py.typed" in {n.removeprefix("python/") for n in names}
    assert any(n.startswith("python/serverless_mysql-") and n.endswith(".dist-info/METADATA") for n in names)
    assert any(n.startswith("python/pymysql-") and n.endswith(".dist-info/METADATA") for n in names)
    for package in RUNTIME_PROVIDED:
        assert package not in top, f"{package} is provided by the Lambda runtime and must not be in the layer"
    assert "cryptography" not in top and "cffi" not in top, "cryptography is left out on purpose (see README)"
    assert "aws_lambda_powertools" not in top, "Powertools comes from AWS's layer"


def _shipped_bytecode(name: str, names: set[str]) -> bool:
    """A ``.pyc`` the build compiled on purpose: a layer runtime's cache tag, next to its source."""
    match = re.fullmatch(r"(.*)/__pycache__/([^/]+)\.(cpython-31[234])\.pyc", name)
    return match is not None and f"{match[1]}/{match[2]}.py" in names


def test_layer_zip_is_stripped(layer_build: LayerBuild) -> None:
    names = set(_names(layer_build.layer_zip))
    for name in names:
        parts = name.split("/")
        if _shipped_bytecode(name, names):
            continue
        assert "__pycache__" not in parts, name
        assert not name.endswith((".pyc", ".pyo")), name
        assert "tests" not in parts[2:], name
        assert parts[1] not in ("bin", "share"), name
        assert not name.endswith((".dist-info/RECORD", ".dist-info/direct_url.json", ".dist-info/INSTALLER")), name
        assert not name.endswith((".so", ".pyd")), f"{name}: compiled code would make the layer arch-specific"


def test_layer_size_budget(layer_build: LayerBuild) -> None:
    zipped = layer_build.layer_zip.stat().st_size
    with zipfile.ZipFile(layer_build.layer_zip) as zf:
        unzipped = sum(info.file_size for info in zf.infolist())
    print(f"\nlayer: {zipped} B zipped, {unzipped} B unzipped; built in {layer_build.seconds:.1f} s")
    assert zipped <= MAX_ZIPPED
    assert unzipped <= 10 * MAX_ZIPPED


def test_zip_is_reproducible(layer_build: LayerBuild, tmp_path: Path) -> None:
    # Same tree -> byte-identical zip (fixed timestamps, sorted names): CloudFormation sees no change.
    tree = tmp_path / "tree"
    with zipfile.ZipFile(layer_build.layer_zip) as zf:
        zf.extractall(tree)
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    layer_tools.make_zip(tree, first)
    time.sleep(1.1)  # a different mtime must not matter
    for path in tree.rglob("*.py"):
        path.touch()
    layer_tools.make_zip(tree, second)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() == layer_build.layer_zip.read_bytes()


def test_extension_zip_layout(layer_build: LayerBuild) -> None:
    with zipfile.ZipFile(layer_build.extension_zip) as zf:
        infos = {info.filename: info for info in zf.infolist()}
    assert set(infos) == {"extensions/serverless-mysql-shutdown", "serverless-mysql-shutdown/extension.py"}
    launcher = infos["extensions/serverless-mysql-shutdown"]
    mode = launcher.external_attr >> 16
    assert stat.S_ISREG(mode) and mode & 0o111 == 0o111, "Lambda starts every executable file in extensions/"
    assert infos["serverless-mysql-shutdown/extension.py"].external_attr >> 16 & 0o111 == 0


def test_strip_keeps_top_level_test_named_packages(tmp_path: Path) -> None:
    tree = tmp_path / "python"
    junk = ("pkg/tests/test_x.py", "pkg/__pycache__/m.cpython-312.pyc", "bin/tool")
    for rel in ("tests/__init__.py", "pkg/m.py", *junk):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("")
    info = tree / "pkg-1.0.dist-info"
    info.mkdir()
    for name in ("METADATA", "RECORD", "direct_url.json", "INSTALLER"):
        (info / name).write_text("")
    layer_tools.strip(tree)
    left = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
    assert left == ["pkg-1.0.dist-info/METADATA", "pkg/m.py", "tests/__init__.py"]


@pytest.mark.slow
def test_sam_build(sam_tools: SamTools, tmp_path: Path) -> None:
    """``sam build`` runs the Makefiles (BuildMethod: makefile): no Docker and no python3.12 on PATH needed."""
    build_dir, cache_dir = tmp_path / "build", tmp_path / "cache"
    cmd = [
        str(sam_tools.sam),
        "build",
        "--template-file",
        str(ROOT / "template.yaml"),
        "--build-dir",
        str(build_dir),
        "--cache-dir",
        str(cache_dir),
    ]
    egg_info = ROOT / "src" / "serverless_mysql.egg-info"
    had_egg_info = egg_info.exists()
    started = time.monotonic()
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=sam_tools.env({"PYTHON": sys.executable}),
        check=False,
    )
    seconds = time.monotonic() - started
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    print(f"\nsam build: {seconds:.1f} s")
    layer = build_dir / "ServerlessMySQLLayer" / "python"
    assert (layer / "serverless_mysql" / "__init__.py").is_file()
    assert (layer / "pymysql" / "__init__.py").is_file()
    assert not (layer / "boto3").exists()
    assert not [p for p in layer.rglob("*.pyc") if not re.search(r"\.cpython-31[234]\.pyc$", p.name)]
    extension = build_dir / "ShutdownExtensionLayer"
    launcher = extension / "extensions" / "serverless-mysql-shutdown"
    assert launcher.is_file() and launcher.stat().st_mode & 0o111
    assert (extension / "serverless-mysql-shutdown" / "extension.py").is_file()
    assert (build_dir / "ExampleFunction" / "handler.py").is_file()
    orm = build_dir / "OrmExampleFunction"
    assert (orm / "handler.py").is_file() and (orm / "sqlalchemy" / "__init__.py").is_file()
    assert not list(orm.rglob("*.so")), "pure-Python wheels: one build for both architectures"
    assert (build_dir / "template.yaml").is_file()
    # The build happened in SAM's scratch copies and build_dir: nothing new in the work tree.
    assert not (ROOT / ".aws-sam").exists() or (ROOT / ".aws-sam").stat().st_mtime < started
    assert egg_info.exists() == had_egg_info


def test_compiled_layer_imports_from_its_bytecode(tmp_path: Path) -> None:
    """COMPILE=1 ships unchecked-hash bytecode that a Lambda runtime (read-only /opt) loads instead of compiling."""
    python = find_python("3.12")
    if python is None:
        pytest.skip("no python3.12 here to compile the layer's bytecode with")
    dest = tmp_path / "python"
    done = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(ROOT / "layer"),
            "install-python",
            f"DEST={dest}",
            f"PYTHON={sys.executable}",
            "COMPILE=1",
            f"COMPILE_PYTHONS={python}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert (dest / "serverless_mysql" / "__pycache__" / "client.cpython-312.pyc").is_file()
    # Sources replaced by code that fails: the import can only succeed from the shipped bytecode.
    for module in ("client.py", "errors.py"):
        (dest / "serverless_mysql" / module).write_text("raise ImportError('compiled from source')\n")
    imported = subprocess.run(
        [python, "-I", "-c", f"import sys; sys.path.insert(0, {str(dest)!r}); import serverless_mysql"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert imported.returncode == 0, imported.stderr[-2000:]
