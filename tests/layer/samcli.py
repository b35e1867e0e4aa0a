"""aws-sam-cli and cfn-lint in their own virtualenv (``.sam-venv`` at the repository root).

aws-sam-cli is a heavy install with its own boto3, cfn-lint and aws-sam-translator: it must not share the
project's ``.venv``. :func:`ensure_sam_venv` creates the virtualenv once (pinned versions from
``layer/requirements-sam.txt``, about 90 s and 330 MB), guarded by a file lock so that concurrent test runs
do not install it twice, and reuses it afterwards. ``make -C layer sam-venv`` does the same from a shell.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAM_VENV = ROOT / ".sam-venv"
REQUIREMENTS = ROOT / "layer" / "requirements-sam.txt"
INSTALL_TIMEOUT = 600.0


class SamUnavailable(Exception):
    """aws-sam-cli could not be installed; the message says why (tests skip with it)."""


@dataclass(frozen=True)
class SamTools:
    """Paths of the ``sam`` and ``cfn-lint`` executables in ``.sam-venv``."""

    sam: Path
    cfn_lint: Path

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for running them offline: no telemetry, no AWS profile, no credentials needed."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAM_"))}
        env.update(
            {
                "SAM_CLI_TELEMETRY": "0",
                "SAM_CLI_POLL_DELAY": "1",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1",
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "PATH": f"{self.sam.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            }
        )
        env.update(extra or {})
        return env


def _tools() -> SamTools:
    bin_dir = SAM_VENV / "bin"
    return SamTools(sam=bin_dir / "sam", cfn_lint=bin_dir / "cfn-lint")


def _works(tools: SamTools) -> bool:
    for exe in (tools.sam, tools.cfn_lint):
        if not exe.exists():
            return False
        try:
            done = subprocess.run(
                [str(exe), "--version"], capture_output=True, timeout=120, env=tools.env(), check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        if done.returncode != 0:
            return False
    return True


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    key = hashlib.sha256(str(SAM_VENV).encode()).hexdigest()[:12]
    lock_path = Path(tempfile.gettempdir()) / f"serverless-mysql-sam-venv-{key}.lock"
    with lock_path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: list[str], what: str) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise SamUnavailable(f"{what} took longer than {INSTALL_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise SamUnavailable(f"{what} could not start: {exc}") from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise SamUnavailable(f"{what} failed (exit {done.returncode}): {tail}")


def ensure_sam_venv(python: str = sys.executable) -> SamTools:
    """Return working ``sam`` and ``cfn-lint``, installing them into ``.sam-venv`` first if needed.

    Raises
    ------
    SamUnavailable
        The virtualenv could not be created or the packages not installed (no package index reachable, ...).
    """
    tools = _tools()
    if _works(tools):
        return tools
    with _install_lock():
        if _works(tools):  # another process installed it while we waited
            return tools
        _run([python, "-m", "venv", "--clear", str(SAM_VENV)], "creating .sam-venv")
        pip = [str(SAM_VENV / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--quiet"]
        _run([*pip, "install", "-r", str(REQUIREMENTS)], "pip install -r layer/requirements-sam.txt")
        if not _works(tools):
            raise SamUnavailable("sam or cfn-lint installed into .sam-venv but does not run")
    return tools


if __name__ == "__main__":  # python -m tests.layer.samcli
    try:
        found = ensure_sam_venv()
    except SamUnavailable as exc:
        sys.exit(f"aws-sam-cli unavailable: {exc}")
    print(found.sam)
    print(found.cfn_lint)
