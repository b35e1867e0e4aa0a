"""The worker registry of multi-concurrent environments (Lambda Managed Instances): housekeeping's exclusions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serverless_mysql import _siblings

SERVER = "10.0.0.1:3306"


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("AWS_LAMBDA_MAX_CONCURRENCY", "4")
    return tmp_path / f"serverless-mysql-workers-{os.getppid()}"


def test_records_the_current_connection_of_each_client(environment: Path) -> None:
    _siblings.record(1, 10, SERVER)
    _siblings.record(2, 20, SERVER)
    _siblings.record(1, 11, SERVER)  # client 1 reconnected
    assert _siblings.thread_ids(SERVER) == frozenset({11, 20})
    (environment / "garbage").write_text("not a number")
    assert _siblings.thread_ids(SERVER) == frozenset({11, 20})
    assert environment.stat().st_mode & 0o777 == 0o700
    assert all(entry.stat().st_mode & 0o777 == 0o600 for entry in environment.iterdir() if entry.name != "garbage")


def test_ids_count_only_for_the_server_they_were_recorded_for(environment: Path) -> None:
    _siblings.record(1, 10, SERVER)
    _siblings.record(2, 10, "10.0.0.2:3306")  # a reader client: the same id on another server
    _siblings.record(3, 30, "10.0.0.9:3306")
    _siblings.record(3, 31, SERVER)  # client 3 after a failover: its old server's id is forgotten
    assert _siblings.thread_ids(SERVER) == frozenset({10, 31})
    assert _siblings.thread_ids("10.0.0.2:3306") == frozenset({10})
    assert _siblings.thread_ids("10.0.0.9:3306") == frozenset()


def test_nothing_outside_a_multi_concurrent_environment(environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_MAX_CONCURRENCY")
    _siblings.record(1, 10, SERVER)
    assert not environment.exists()
    assert _siblings.thread_ids(SERVER) == frozenset()


def test_an_unusable_directory_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    monkeypatch.setenv("TMPDIR", str(not_a_directory))
    monkeypatch.setenv("AWS_LAMBDA_MAX_CONCURRENCY", "4")
    _siblings.record(1, 10, SERVER)
    assert _siblings.thread_ids(SERVER) == frozenset()


def test_a_directory_planted_by_someone_else_is_not_used(environment: Path, tmp_path: Path) -> None:
    # Another user of a shared $TMPDIR creates the predictable directory first, world-writable, with traps inside.
    victim = tmp_path / "victim.txt"
    victim.write_text("IMPORTANT")
    environment.mkdir()
    environment.chmod(0o777)
    (environment / f"{os.getpid()}-7.new").symlink_to(victim)
    (environment / "planted").write_text(f"{SERVER}\n999")
    _siblings.record(7, 42, SERVER)
    assert victim.read_text() == "IMPORTANT"
    assert _siblings.thread_ids(SERVER) == frozenset()  # a planted id exempts nothing from the kills
    assert not (environment / f"{os.getpid()}-7").exists()


def test_a_symlinked_directory_is_not_used(environment: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    environment.symlink_to(elsewhere)
    _siblings.record(1, 10, SERVER)
    assert list(elsewhere.iterdir()) == []
    assert _siblings.thread_ids(SERVER) == frozenset()


def test_a_symlinked_entry_is_not_followed(environment: Path, tmp_path: Path) -> None:
    _siblings.record(1, 10, SERVER)
    outside = tmp_path / "outside"
    outside.write_text(f"{SERVER}\n77")
    (environment / "link").symlink_to(outside)
    assert _siblings.thread_ids(SERVER) == frozenset({10})
