"""Where housekeeping runs and what it reads: RDS Proxy decided on the connected host, the processlist source."""

from __future__ import annotations

import re

from serverless_mysql.config import Config
from serverless_mysql.housekeeping import (
    INFORMATION_SCHEMA_PROCESSLIST,
    PERFORMANCE_SCHEMA_PROCESSLIST,
    has_performance_schema_processlist,
    usage_row,
    usage_sql,
)

PROXY = "shop.proxy-abc123xyz.us-east-1.rds.amazonaws.com"


def test_rds_proxy_is_decided_on_the_host_connected_to() -> None:
    from_secret = Config.from_options()  # no host given, as with a secret or a credentials provider: "localhost"
    assert from_secret.host == "localhost" and not from_secret.is_rds_proxy
    assert from_secret.rds_proxy_for(PROXY)  # the secret's host is a proxy endpoint
    assert not from_secret.rds_proxy_for("127.0.0.1")
    assert not from_secret.rds_proxy_for("mydb.cluster-abc.us-east-1.rds.amazonaws.com")
    # An explicit option wins over the host, either way.
    assert not Config.from_options(rds_proxy=False).rds_proxy_for(PROXY)
    assert Config.from_options(rds_proxy=True).rds_proxy_for("127.0.0.1")


def test_usage_sql_reads_either_processlist_with_the_same_statement() -> None:
    for with_limits in (True, False):
        info = usage_sql(with_limits=with_limits)
        perf = usage_sql(with_limits=with_limits, performance_schema=True)
        assert info == usage_sql(with_limits=with_limits, performance_schema=False)
        assert " FROM information_schema.PROCESSLIST p WHERE " in info and "performance_schema" not in info
        assert " FROM performance_schema.processlist p WHERE " in perf and "information_schema" not in perf
        assert perf.replace(PERFORMANCE_SCHEMA_PROCESSLIST, INFORMATION_SCHEMA_PROCESSLIST) == info
        for sql in (info, perf):
            # Only the columns both tables have: ID, USER, COMMAND, TIME.
            columns = set(re.findall(r"\bp\.([A-Za-z_]+)", sql))
            assert columns == {"ID", "USER", "COMMAND", "TIME"}
            assert "AS self_seen" in sql and sql.count("%s") == 1 and '"' not in sql


def test_user_is_cut_at_the_last_at_sign() -> None:
    sql = usage_sql(with_limits=False)
    assert "SUBSTRING_INDEX(USER(), '@', 1)" not in sql  # 'svc@corp@host' would give 'svc'
    assert "LEFT(USER(), CHAR_LENGTH(USER()) - LOCATE('@', REVERSE(USER())))" in sql


def test_performance_schema_processlist_is_tried_only_where_the_version_has_it() -> None:
    has = has_performance_schema_processlist
    assert has("8.0.35") and has("8.0.22") and has("8.4.3") and has("9.1.0")
    assert has("8.0.28-0ubuntu0.20.04.3") and has("5.7.39-log") and has("5.7.44")
    assert not has("8.0.21") and not has("5.7.38") and not has("5.7.12")  # 5.7.12: Aurora MySQL 2
    assert not has("5.5.5-10.11.19-MariaDB-0+deb12u1") and not has("10.11.6-MariaDB") and not has("11.4.2-MariaDB")
    assert not has("") and not has("8.0") and not has("unknown")


def row(thread_id: int, user: str | None, command: str = "Sleep", idle: int | None = 0) -> tuple[bytes | None, ...]:
    """A ``SHOW PROCESSLIST`` row: the columns that count, as the server sends them."""
    return (
        str(thread_id).encode(),
        None if user is None else user.encode(),
        command.encode(),
        None if idle is None else str(idle).encode(),
    )


def test_show_processlist_rows_count_as_the_statement_does() -> None:
    rows = [
        row(1, "system user", "Daemon", None),  # system threads never count
        row(2, "event_scheduler", "Daemon", 5),
        row(3, "repl", "Binlog Dump GTID", 900),
        row(10, "app", "Query", 0),  # this connection
        row(11, "app", "Sleep", 7),
        row(12, "app", "Sleep", 2),  # not idle long enough
        row(13, "app", "Query", 30),  # running: no zombie however long
        row(14, "app", "Sleep", 40),
        row(15, "other", "Sleep", 50),  # another user's
        row(16, "app@corp", "Sleep", 60),  # another user whose name starts alike
        row(17, None, "Connect", 1),  # a row without a user: the statement's NOT IN drops it
    ]
    assert usage_row(rows, 10, 3) == {
        "total": 7,
        "user_total": 5,
        "self_seen": 1,
        "user_running": 2,
        "zombies": "14:40,11:7",  # oldest first, as the statement's ORDER BY
    }
    assert usage_row(rows, 10, 100)["zombies"] is None
    assert usage_row(rows, 99, 3) == {  # this connection not shown: no user, nothing of its own
        "total": 7,
        "user_total": 0,
        "self_seen": 0,
        "user_running": 0,
        "zombies": None,
    }
