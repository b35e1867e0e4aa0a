"""What end() housekeeping looks at: whose connections (user names with '@') and where (the processlist source)."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from tests.integration.conftest import ClientFactory
from tests.support.mariadb import AppUser, MariaDBServer

pytestmark = pytest.mark.integration
Factory = Any


def alive(server: MariaDBServer, ids: list[int]) -> set[int]:
    return {row["ID"] for row in server.processlist()} & set(ids)


def at_sign_user(server: MariaDBServer, *, max_user_connections: int = 0) -> AppUser:
    """An account whose name contains '@' (``svc@corp``-style), which ``create_user`` does not allow."""
    name, password = f"svc@corp{random.randrange(10**6)}", "pw-" + str(random.randrange(10**9))
    limits = f" WITH MAX_USER_CONNECTIONS {max_user_connections}" if max_user_connections else ""
    server.execute(f"CREATE USER %s@'%%' IDENTIFIED BY %s{limits}", [name, password])
    server.execute(f"GRANT ALL PRIVILEGES ON `{server.database}`.* TO %s@'%%'", [name])
    return AppUser(name=name, password=password, host=server.host, port=server.port, database=server.database)


def test_user_name_with_at_sign_gets_its_zombies_counted_and_killed(
    server_factory: Factory, client_factory: ClientFactory
) -> None:
    server = server_factory(max_connections=20)
    app = at_sign_user(server, max_user_connections=10)  # the account limit makes utilization count user_total
    try:
        zombies = server.open_zombies(app, 4)
        time.sleep(1.1)
        killed: list[int] = []
        db = client_factory(app, zombie_min_timeout=1, zombie_max_timeout=1, on_kill=lambda t, idle: killed.append(t))
        db.query("SELECT 1")
        db.end()
        assert db.get_stats().last_utilization == pytest.approx(5 / 10)  # 4 zombies + its own connection
        assert sorted(killed) == sorted(zombies)  # all past zombie_max_timeout
        assert alive(server, zombies) == set()
        assert db.get_stats().zombies_killed == 4
    finally:
        server.close_zombies()
