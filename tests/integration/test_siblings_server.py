"""The worker registry names the server each connection reached (Lambda Managed Instances' housekeeping)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.mariadb import AppUser
from serverless_mysql import _siblings
from tests.integration.conftest import ClientFactory

pytestmark = pytest.mark.integration


def test_a_connection_is_recorded_for_the_server_address_it_reached(
    app_user: AppUser, client_factory: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("AWS_LAMBDA_MAX_CONCURRENCY", "2")
    db = client_factory(app_user)
    own = int(db.query("SELECT CONNECTION_ID() AS id")[0]["id"])
    port = app_user.connect_kwargs()["port"]
    assert _siblings.thread_ids(f"127.0.0.1:{port}") == frozenset({own})
    assert _siblings.thread_ids(f"127.0.0.1:{port + 1}") == frozenset()  # another server's housekeeping
