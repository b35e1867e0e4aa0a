"""The worker registry of multi-concurrent environments (Lambda Managed Instances): housekeeping's exclusions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from serverless_mysql import _siblings


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("AWS_LAMBDA_MAX_CONCURRENCY", "4")
    return tmp_path / f"serverless-mysql-workers-{os.getppid()}"


def test_records_the_current_connection_of_each_client(environment: Path) -> None:
    _siblings.record(1, 10)
    _siblings.record(2, 20)
    _siblings.record(1, 11)  # client 1 reconnected
    assert _siblings.thread_ids() == frozenset({11, 20})
    (environment / "garbage").write_text("not a number")
    assert _siblings.thread_ids() == frozenset({11, 20})


def test_nothing_outside_a_multi_concurrent_environment(environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_MAX_CONCURRENCY")
    _siblings.record(1, 10)
    assert not environment.exists()
    assert _siblings.thread_ids() == frozenset()


def test_an_unusable_directory_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    monkeypatch.setenv("TMPDIR", str(not_a_directory))
    monkeypatch.setenv("AWS_LAMBDA_MAX_CONCURRENCY", "4")
    _siblings.record(1, 10)
    assert _siblings.thread_ids() == frozenset()
