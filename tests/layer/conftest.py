"""Fixtures of the layer tests: the built layer zips, aws-sam-cli, Python interpreters for Lambda's runtimes."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.layer.samcli import SamTools, SamUnavailable, ensure_sam_venv

ROOT = Path(__file__).resolve().parents[2]
LAYER_ZIP_NAME = "serverless-mysql-layer.zip"
EXTENSION_ZIP_NAME = "serverless-mysql-shutdown-extension.zip"


@dataclass(frozen=True)
class LayerBuild:
    """The zips that ``make -C layer zip extension-zip`` produced (in a private build directory)."""

    layer_zip: Path
    extension_zip: Path
    seconds: float
    output: str


@pytest.fixture(scope="session")
def layer_build(tmp_path_factory: pytest.TempPathFactory) -> LayerBuild:
    """Build both zips once per session, exactly as ``make layer`` does, into a private BUILD_DIR.

    A private directory, so that a concurrent ``make layer`` in the work tree cannot change the zip under test.
    """
    build_dir = tmp_path_factory.mktemp("layer-build")
    cmd = ["make", "-C", str(ROOT / "layer"), "zip", "extension-zip", f"BUILD_DIR={build_dir}"]
    cmd.append(f"PYTHON={sys.executable}")
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{output[-4000:]}"
    return LayerBuild(build_dir / LAYER_ZIP_NAME, build_dir / EXTENSION_ZIP_NAME, seconds, output)


@pytest.fixture(scope="session")
def sam_tools() -> SamTools:
    """``sam`` and ``cfn-lint`` from ``.sam-venv``, installed on first use; skips when that is impossible."""
    try:
        return ensure_sam_venv()
    except SamUnavailable as exc:
        pytest.skip(f"aws-sam-cli/cfn-lint not installable into .sam-venv: {exc}")


def find_python(version: str) -> str | None:
    """An interpreter of exactly ``version`` ("3.12"): on PATH, or in pyenv's versions directory."""
    candidates: list[str] = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    pattern = re.compile(rf"^{re.escape(version)}\.\d+$")
    versions = pyenv_root / "versions"
    if versions.is_dir():
        for found in sorted(versions.iterdir(), reverse=True):
            binary = found / "bin" / f"python{version}"
            if pattern.match(found.name) and binary.exists():
                candidates.append(str(binary))
    for exe in candidates:
        try:
            done = subprocess.run(
                [exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0 and done.stdout.strip() == version:
            return exe
    return None


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server (Secrets Manager) on a free loopback port: ``http://127.0.0.1:<port>``."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def link_module(name: str, target_dir: Path, *, skip_if_missing: bool = False) -> None:
    """Symlink an installed module (package directory or single file) of this test environment into target_dir.

    A module that is not installed fails the test, or skips it with ``skip_if_missing``.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        message = f"{name} is not installed in the test environment (pip install -e '.[dev]' installs it)"
        if skip_if_missing:
            pytest.skip(message)
        raise AssertionError(message)
    origin = Path(spec.origin)
    source = origin.parent if origin.name == "__init__.py" else origin
    (target_dir / source.name).symlink_to(source, target_is_directory=source.is_dir())
