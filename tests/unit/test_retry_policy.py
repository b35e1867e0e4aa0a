"""The retry/re-run policy: which failures get another try, decided without a server."""

from __future__ import annotations

import random

import pymysql
import pytest

from serverless_mysql.backoff import FullJitter
from serverless_mysql.retry import MAX_LOST_RERUNS, RetryPolicy

Op = pymysql.err.OperationalError
LOST = Op(2013, "Lost connection to MySQL server during query")
NEVER_SENT = Op(2006, "MySQL server has gone away (Broken pipe; nothing was sent)")
TIMED_OUT = Op(2013, "Lost connection to MySQL server during query (timed out)")
DEADLOCK = Op(1213, "Deadlock found when trying to get lock; try restarting transaction")


def policy(max_query_retries: int = 3) -> RetryPolicy:
    return RetryPolicy(query_backoff=FullJitter(0.01, 0.1, random.Random(1)), max_query_retries=max_query_retries)


# ---- connecting ----------------------------------------------------------------------------------------------
def test_access_denied_refreshes_credentials_once_and_only_when_they_can_change() -> None:
    denied = Op(1045, "Access denied for user 'app'")
    assert RetryPolicy.refresh_credentials(denied, refreshable=True, refreshed=False)
    assert not RetryPolicy.refresh_credentials(denied, refreshable=True, refreshed=True)
    assert not RetryPolicy.refresh_credentials(denied, refreshable=False, refreshed=False)
    assert not RetryPolicy.refresh_credentials(Op(1040, "Too many connections"), refreshable=True, refreshed=False)


def test_connect_failures_are_classified_for_the_pressure_policy() -> None:
    assert RetryPolicy.connect_failure(Op(1040, "Too many connections")) == "full"
    assert RetryPolicy.connect_failure(Op(2003, "Can't connect")) == "down"
    assert RetryPolicy.connect_failure(Op(1049, "Unknown database")) is None


# ---- a lost connection ---------------------------------------------------------------------------------------
def test_a_plain_read_is_rerun_a_write_is_not() -> None:
    p = policy()
    assert p.rerun_after_loss(LOST, "SELECT * FROM t", idempotent=None, reruns=0)
    assert not p.rerun_after_loss(LOST, "UPDATE t SET n = n + 1", idempotent=None, reruns=0)
    assert not p.rerun_after_loss(LOST, "SELECT * FROM t FOR UPDATE", idempotent=None, reruns=0)


def test_the_callers_word_beats_the_classifier() -> None:
    p = policy()
    assert p.rerun_after_loss(LOST, "UPDATE t SET n = 1", idempotent=True, reruns=0)
    assert not p.rerun_after_loss(LOST, "SELECT 1", idempotent=False, reruns=0)


def test_a_statement_never_sent_is_rerun_whatever_it_is() -> None:
    assert policy().rerun_after_loss(NEVER_SENT, "INSERT INTO t VALUES (1)", idempotent=False, reruns=0)


def test_a_timed_out_statement_is_never_rerun() -> None:
    # It may still be running on the server; also a never-sent write that timed out is not re-run (the deadline).
    p = policy()
    assert not p.rerun_after_loss(TIMED_OUT, "SELECT 1", idempotent=True, reruns=0)
    timed_out_write = Op(2006, "MySQL server has gone away (timed out: the deadline was reached; nothing was sent)")
    assert not p.rerun_after_loss(timed_out_write, "SELECT 1", idempotent=None, reruns=0)


def test_reruns_are_bounded() -> None:
    p = policy()
    assert p.rerun_after_loss(LOST, "SELECT 1", idempotent=None, reruns=MAX_LOST_RERUNS - 1)
    assert not p.rerun_after_loss(LOST, "SELECT 1", idempotent=None, reruns=MAX_LOST_RERUNS)
    assert not p.rerun_after_loss(NEVER_SENT, "SELECT 1", idempotent=None, reruns=MAX_LOST_RERUNS)


def test_lost_is_the_errors_predicate() -> None:
    assert RetryPolicy.is_lost(LOST) and RetryPolicy.is_lost(pymysql.err.InterfaceError(0, ""))
    assert not RetryPolicy.is_lost(DEADLOCK)


# ---- statements the server rolled back -----------------------------------------------------------------------
def test_transient_errors_are_retried_outside_transactions_only() -> None:
    p = policy()
    assert p.retry_transient(DEADLOCK, in_transaction=False)
    assert not p.retry_transient(DEADLOCK, in_transaction=True)
    assert not p.retry_transient(Op(1062, "Duplicate entry"), in_transaction=False)
    assert not p.retry_transient(LOST, in_transaction=False)


def test_no_transient_retry_when_max_query_retries_is_zero() -> None:
    assert not policy(max_query_retries=0).retry_transient(DEADLOCK, in_transaction=False)


def test_the_query_budget_is_bounded_by_count_and_deadline() -> None:
    now = [100.0]
    budget = policy(max_query_retries=3).query_budget(None, lambda: now[0])
    assert [budget.next_delay() is not None for _ in range(5)] == [True, True, True, False, False]
    tight = policy(max_query_retries=50).query_budget(100.0, lambda: now[0])
    assert tight.next_delay() is None  # no time left: no sleep at all


@pytest.mark.parametrize("sql", ["SELECT 1", "SHOW TABLES", "WITH x AS (SELECT 1) SELECT * FROM x"])
def test_reads_the_classifier_accepts(sql: str) -> None:
    assert policy().rerun_after_loss(LOST, sql, idempotent=None, reruns=0)
