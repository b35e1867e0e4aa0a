"""The errno predicates of serverless_mysql.errors, on PyMySQL's own exception classes (no server)."""

from __future__ import annotations

import ssl

import pymysql
import pytest

from serverless_mysql import errors
from serverless_mysql.errors import (
    ConnectError,
    ServerlessMySQLError,
    connect_failure_kind,
    error_number,
    is_connection_lost,
    is_retryable_connect_error,
    is_timeout,
    is_transient_query_error,
    was_never_sent,
)

Op = pymysql.err.OperationalError


def test_error_number_reads_the_first_argument_only_when_it_is_an_int() -> None:
    assert error_number(Op(1040, "Too many connections")) == 1040
    assert error_number(pymysql.err.InterfaceError(0, "")) == 0
    assert error_number(Op("not a number")) is None
    assert error_number(Op(True, "a bool is not an errno")) is None
    assert error_number(ValueError()) is None


def test_errno_of_a_library_error_follows_the_cause_chain() -> None:
    try:
        try:
            raise Op(2013, "Lost connection")
        except Op as exc:
            raise ConnectError("wrapped") from exc
    except ConnectError as err:
        assert err.errno == 2013
    assert ServerlessMySQLError("no cause").errno is None


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (1040, "full"),  # too many connections
        (1041, "full"),  # out of resources
        (1203, "full"),  # max_user_connections
        (1053, "down"),  # server shutdown
        (2003, "down"),  # cannot reach the host
        (2006, "down"),
        (2013, "down"),
        (1045, None),  # access denied: no retry fixes it
        (1049, None),  # unknown database
        (1064, None),
    ],
)
def test_connect_failures_are_full_down_or_final(code: int, kind: str | None) -> None:
    exc = Op(code, "message")
    assert connect_failure_kind(exc) == kind
    assert is_retryable_connect_error(exc) is (kind is not None)


def test_1226_is_retryable_only_for_the_connection_limit() -> None:
    per_hour = Op(1226, "User 'app' has exceeded the 'max_questions' resource (current value: 10)")
    connections = Op(1226, "User 'app' has exceeded the 'max_user_connections' resource (current value: 2)")
    assert not is_retryable_connect_error(per_hour) and connect_failure_kind(per_hour) is None
    assert is_retryable_connect_error(connections) and connect_failure_kind(connections) == "full"


def test_a_tls_failure_behind_2003_is_final_but_a_dropped_handshake_is_not() -> None:
    bad_certificate = Op(2003, "Can't connect to MySQL server (certificate verify failed)")
    bad_certificate.original_exception = ssl.SSLCertVerificationError("certificate verify failed")  # type: ignore[attr-defined]
    dropped = Op(2003, "Can't connect to MySQL server (EOF)")
    dropped.original_exception = ssl.SSLEOFError("EOF occurred in violation of protocol")  # type: ignore[attr-defined]
    refused = Op(2003, "Can't connect to MySQL server (Connection refused)")
    refused.original_exception = ConnectionRefusedError()  # type: ignore[attr-defined]
    assert not is_retryable_connect_error(bad_certificate)
    assert is_retryable_connect_error(dropped)
    assert is_retryable_connect_error(refused)


@pytest.mark.parametrize("code", [2006, 2013, 1053, 1152, 1927, 4031])
def test_lost_connection_codes(code: int) -> None:
    assert is_connection_lost(Op(code, "gone"))


def test_lost_connection_by_class_and_message() -> None:
    assert is_connection_lost(pymysql.err.InterfaceError(0, ""))  # PyMySQL on a closed socket
    assert is_connection_lost(pymysql.err.InternalError("Packet sequence number wrong - got 1 expected 0"))
    assert not is_connection_lost(pymysql.err.InternalError(1105, "unknown error"))
    assert not is_connection_lost(Op(1205, "Lock wait timeout exceeded"))
    assert not is_connection_lost(pymysql.err.ProgrammingError(1064, "syntax"))


@pytest.mark.parametrize(("code", "transient"), [(1205, True), (1213, True), (1317, True), (3132, True), (3133, True)])
def test_transient_statement_errors(code: int, transient: bool) -> None:
    assert is_transient_query_error(Op(code, "rolled back")) is transient


@pytest.mark.parametrize("code", [1062, 1064, 2006, 2013, 1146])
def test_other_statement_errors_are_not_transient(code: int) -> None:
    assert not is_transient_query_error(Op(code, "x"))


def test_never_sent_is_2006_only() -> None:
    assert was_never_sent(Op(2006, "MySQL server has gone away (timed out; nothing was sent)"))
    assert not was_never_sent(Op(2013, "Lost connection to MySQL server during query"))
    assert not was_never_sent(pymysql.err.InterfaceError(0, ""))


def test_timeout_is_read_from_the_message() -> None:
    assert is_timeout(Op(2013, "Lost connection to MySQL server during query (timed out)"))
    assert is_timeout(Op(2006, "MySQL server has gone away (timed out: the deadline was reached; nothing was sent)"))
    assert not is_timeout(Op(2013, "Lost connection to MySQL server during query"))


def test_the_sets_do_not_overlap_where_they_must_not() -> None:
    # A statement error the server rolled back keeps the connection: never "lost", never a connect retry.
    for code in (errors.ER_LOCK_WAIT_TIMEOUT, errors.ER_LOCK_DEADLOCK, errors.ER_QUERY_INTERRUPTED):
        assert not is_connection_lost(Op(code, "x")) and connect_failure_kind(Op(code, "x")) is None
