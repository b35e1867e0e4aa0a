"""The re-run classifier: only statements whose text proves they have no side effect are re-run after a lost answer."""

from __future__ import annotations

import pytest

from serverless_mysql._statements import PURE_FUNCTIONS
from serverless_mysql.client import is_plain_read

RERUN = [
    "SELECT * FROM t WHERE id = %s",
    "select 1",
    "  /* leading comment */ SELECT 1",
    "SELECT /* kill-me-read */ SLEEP(0.6) AS s",
    "-- a comment line\nSELECT 1",
    "# hash comment\nSELECT 1",
    "SELECT 1;",
    "SELECT 1; -- trailing comment",
    "SHOW TABLES",
    "SHOW CREATE TABLE t",
    "SHOW PROCEDURE STATUS",
    "SHOW GRANTS FOR CURRENT_USER()",
    "DESCRIBE t",
    "DESC t",
    "EXPLAIN SELECT * FROM t WHERE a = 1",
    "WITH x AS (SELECT 1) SELECT * FROM x",
    "WITH RECURSIVE c (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 5) SELECT n FROM c",
    "WITH a (x) AS (SELECT 1), b (y) AS (SELECT 2) SELECT x, y FROM a, b",
    "(SELECT 1) UNION (SELECT 2)",
    "SELECT COUNT(*), SUM(a), MIN(a), MAX(a), AVG(a) FROM t GROUP BY b HAVING COUNT(*) > 1",
    "SELECT NOW(), CONCAT(a, 'x'), COALESCE(a, b), IFNULL(a, 0), IF(a, 1, 2), NULLIF(a, b) FROM t",
    "SELECT CAST(a AS DECIMAL(10, 2)), CAST(b AS DATETIME(6)), CONVERT(c, CHAR(10)), CONVERT(d USING utf8mb4)",
    "SELECT SUBSTRING(a FROM 2 FOR 3), LOWER(a), UPPER(a), LENGTH(a), ROUND(a, 2) FROM t",
    "SELECT DATE_FORMAT(d, '%Y'), JSON_EXTRACT(j, '$.a'), JSON_UNQUOTE(JSON_EXTRACT(j, '$.b')) FROM t",
    "SELECT INSERT('abcd', 2, 1, 'x'), REPLACE(a, 'x', 'y') FROM t",
    "SELECT * FROM t WHERE a IN (1, 2) AND EXISTS (SELECT 1 FROM u WHERE u.id = t.id)",
    "SELECT * FROM t WHERE a IN %s",
    "SELECT * FROM t LIMIT %s OFFSET %s",
    "SELECT * FROM t WHERE a = %(a)s AND b LIKE %(b)s",
    "SELECT * FROM t WHERE a = ANY (SELECT b FROM u)",
    "SELECT * FROM (SELECT 1 AS x) AS d",
    "SELECT ROW_NUMBER() OVER (PARTITION BY a ORDER BY b) FROM t",
    "SELECT * FROM t USE INDEX (i) JOIN u ON (t.id = u.id)",
    "SELECT * FROM t WHERE MATCH (a) AGAINST ('x' IN BOOLEAN MODE)",
    "SELECT 'add_item(1)', \"NEXT VALUE FOR s\", `INSERT INTO` FROM t",
    "SELECT 'it''s', 'a\\\\b(', \"x\"\"(\" FROM t",
    "SELECT a /* add_item(1) */ FROM t -- add_item(2)\n",
    "SELECT t.update, t.`delete` FROM t",
    "SELECT @@version, @x",
    "SELECT * FROM t FOR SYSTEM_TIME ALL",
    "SELECT CONNECTION_ID() AS id",
    "SELECT seq AS id, REPEAT('x', 1000) AS v FROM seq_1_to_100",
    "SELECT a FROM t WHERE b = 1 -- FOR UPDATE is only a comment here",
]

NOT_RERUN = [
    # stored functions may write
    "SELECT add_item(%s)",
    "SELECT add_item (%s)",
    "SELECT 1, add_item(1)",
    "SELECT * FROM t WHERE id = add_item(1)",
    "SELECT * FROM t WHERE id IN (SELECT add_item(1))",
    "SELECT shop.add_item(1)",
    "SELECT `add_item`(1)",
    'SELECT "add_item"(1)',
    "SELECT `COUNT`(1)",
    "SELECT COUNT (a) FROM t",  # with a space COUNT may name a stored function
    "SELECT add_item %s",  # a tuple argument becomes (…)
    "SELECT 1 --add_item(1)",  # -- without a space is two minus signs, not a comment
    "WITH x AS (SELECT add_item(1)) SELECT * FROM x",
    "SELECT a, b (1) FROM t",
    # sequences, locks, session state
    "SELECT NEXT VALUE FOR seq",
    "select next value for seq",
    "SELECT PREVIOUS VALUE FOR seq",
    "SELECT NEXTVAL(seq)",
    "SELECT SETVAL(seq, 10)",
    "SELECT LASTVAL(seq)",
    "SELECT seq.nextval",
    "SELECT GET_LOCK('x', 1)",
    "SELECT RELEASE_LOCK('x')",
    "SELECT LAST_INSERT_ID()",
    "SELECT LAST_INSERT_ID(5)",
    "SELECT ROW_COUNT()",
    "SELECT FOUND_ROWS()",
    "SELECT @x := 1",
    # locking reads, INTO
    "SELECT * FROM t FOR UPDATE",
    "SELECT * FROM t FOR SHARE",
    "SELECT * FROM t LOCK IN SHARE MODE",
    "SELECT a INTO @v FROM t",
    "SELECT a FROM t INTO OUTFILE '/tmp/x'",
    "SELECT a FROM t PROCEDURE ANALYSE()",
    # writes and everything that is not a read
    "INSERT INTO t VALUES (1)",
    "UPDATE t SET a = 1",
    "DELETE FROM t",
    "REPLACE INTO t VALUES (1)",
    "WITH x AS (SELECT 1) DELETE FROM t",
    "WITH x AS (SELECT 1) UPDATE t SET a = 1",
    "EXPLAIN ANALYZE UPDATE t SET a = 1",
    "CALL proc()",
    "DO add_item(1)",
    "SET @a = 1",
    "START TRANSACTION",
    "VALUES (1)",
    "SELECT 1; DELETE FROM t",
    "SELECT 1; SELECT 2",
    # text the server reads differently than it looks
    "SELECT /*! add_item(1) */ 1",
    "SELECT /*!50000 add_item(1) */ 1",
    "SELECT /*M!100000 add_item(1) */ 1",
    "SELECT 'a\\', add_item(1), '",  # with NO_BACKSLASH_ESCAPES the call is outside the literals
    "SELECT 'a\\'b(', a FROM t",  # the same: read both ways, b( is a call in one of them
    "SELECT\u00a0add_item(1)",  # U+00A0 is part of a name for the server, not a space
    "SELECT COUNT\u00a0(a) FROM t",
    "SELECT 'unterminated",
    "SELECT 1 /* unterminated",
    "",
    "   ",
    "/* only a comment */",
    "(1)",
]


MARIADB = "5.5.5-10.11.6-MariaDB"  # what the handshake of the test server says
MYSQL = "8.0.35"


@pytest.mark.parametrize("sql", RERUN)
def test_side_effect_free_reads_are_re_run(sql: str) -> None:
    assert is_plain_read(sql, MARIADB), sql


@pytest.mark.parametrize("server", [None, MARIADB, MYSQL])
@pytest.mark.parametrize("sql", NOT_RERUN)
def test_anything_that_may_have_a_side_effect_is_not_re_run(sql: str, server: str | None) -> None:
    assert not is_plain_read(sql, server), sql


# Issue 18, item 4: each of these ran a user's stored function twice after a lost answer.
@pytest.mark.parametrize(
    "sql",
    ["SELECT lateral()", "SELECT lateral(1) AS x FROM t", "SELECT of()", "SELECT a FROM t WHERE of(a) = 1"],
)
@pytest.mark.parametrize("server", [None, MARIADB])
def test_lateral_and_of_are_function_names_on_mariadb(sql: str, server: str | None) -> None:
    assert not is_plain_read(sql, server), sql


def test_lateral_is_a_keyword_on_mysql_only() -> None:
    sql = "SELECT * FROM t JOIN LATERAL (SELECT u.a FROM u WHERE u.id = t.id) AS d"
    assert is_plain_read(sql, MYSQL)
    assert not is_plain_read(sql, "8.0.13")  # before LATERAL was reserved
    assert not is_plain_read(sql, MARIADB)


@pytest.mark.parametrize("name", ["UUID_TO_BIN", "BIN_TO_UUID", "IS_UUID", "ANY_VALUE", "REGEXP_LIKE", "JSON_TABLE"])
def test_mysql_only_built_ins_are_stored_functions_on_mariadb(name: str) -> None:
    sql = f"SELECT {name}(a) AS x FROM t"
    assert not is_plain_read(sql, MARIADB), sql
    assert not is_plain_read(sql), sql  # server unknown: not re-run
    assert is_plain_read(sql, MYSQL), sql


@pytest.mark.parametrize("name", ["SFORMAT", "NATURAL_SORT_KEY", "JSON_DETAILED", "MEDIAN", "NVL", "CHR", "SYS_GUID"])
def test_mariadb_only_built_ins_are_stored_functions_on_mysql(name: str) -> None:
    sql = f"SELECT {name}(a) AS x FROM t"
    assert not is_plain_read(sql, MYSQL), sql
    assert not is_plain_read(sql), sql
    assert is_plain_read(sql, MARIADB), sql


def test_built_ins_count_only_from_the_server_version_that_has_them() -> None:
    window = "SELECT RANK() OVER (ORDER BY a) AS r FROM t"
    assert is_plain_read(window, MYSQL) and is_plain_read(window, MARIADB)
    assert not is_plain_read(window, "5.7.44-log")  # no window functions in MySQL 5.7: rank() is a user's
    assert not is_plain_read("SELECT SFORMAT('{}', a) FROM t", "10.6.16-MariaDB")  # SFORMAT: MariaDB 10.7
    assert not is_plain_read("SELECT CONCAT(a) FROM t", "5.6.51")  # older than every supported server: no call
    assert is_plain_read("SELECT a FROM t", "5.6.51")
    for unreadable in ("", "TiDB", "x.y"):
        assert is_plain_read("SELECT CONCAT(a) FROM t", unreadable)  # unknown: the built-ins every server has
        assert not is_plain_read("SELECT ANY_VALUE(a) FROM t", unreadable)


def test_json_table_is_a_built_in_in_from_on_mariadb() -> None:
    sql = "SELECT * FROM JSON_TABLE('[1]', '$[*]' COLUMNS (x INT PATH '$')) AS jt"
    assert is_plain_read(sql, MARIADB) and is_plain_read(sql, MYSQL)
    assert not is_plain_read(sql, "10.5.23-MariaDB")  # before MariaDB had JSON_TABLE


def test_ansi_quotes_reading() -> None:
    """Under ANSI_QUOTES "…" is a name where a backslash does not escape, while it still does in '…'.

    Read with backslash escapes in both quotes, or in neither, the call is inside a literal; under ANSI_QUOTES
    (without NO_BACKSLASH_ESCAPES) it is outside, and the rest of the line a comment.
    """
    hidden = "SELECT '\\'' , \"\\\" , f() # \" # '\n"
    assert hidden == r"""SELECT '\'' , "\" , f() # " # '""" + "\n"
    assert not is_plain_read(hidden, MARIADB)
    assert is_plain_read(hidden.replace("f()", "1"), MARIADB)  # the same text without the call: re-run


def test_the_pure_list_leaves_out_every_function_with_a_side_effect_or_session_state() -> None:
    never = {
        "GET_LOCK",
        "RELEASE_LOCK",
        "RELEASE_ALL_LOCKS",
        "NEXTVAL",
        "SETVAL",
        "LASTVAL",
        "LAST_INSERT_ID",
        "ROW_COUNT",
        "FOUND_ROWS",
        "LOAD_FILE",
        "MASTER_POS_WAIT",
        "MASTER_GTID_WAIT",
    }
    assert not never & PURE_FUNCTIONS
    assert {"COUNT", "SUM", "NOW", "CONCAT", "COALESCE", "JSON_EXTRACT", "SLEEP"} <= PURE_FUNCTIONS
    for name in sorted(PURE_FUNCTIONS):
        assert is_plain_read(f"SELECT {name}(1)"), name
        assert is_plain_read(f"SELECT {name}(1)", MARIADB) and is_plain_read(f"SELECT {name}(1)", MYSQL), name
        assert not is_plain_read(f"SELECT db.{name}(1)"), name
        assert not is_plain_read(f"SELECT `{name}`(1)"), name


def test_not_a_string() -> None:
    assert not is_plain_read(b"SELECT 1")  # type: ignore[arg-type]
