"""Which statements may be re-run after a lost answer: a conservative reader of the statement text.

A statement is re-run automatically only when its text proves it has no side effect: it is a ``SELECT``,
``SHOW``, ``DESCRIBE``/``DESC``, ``EXPLAIN`` or ``WITH … SELECT`` (optionally behind opening brackets) and

* it calls no function except the side-effect-free built-ins in :data:`PURE_FUNCTIONS`, written without a space
  before the bracket (``COUNT (x)`` may name a stored function, so it counts as unknown); a qualified or quoted
  name (``db.f(…)``, ```f`(…)``) is always a stored function;
* it has no locking clause (``FOR UPDATE``, ``FOR SHARE``, ``LOCK IN SHARE MODE``), no ``INTO``, no
  ``PROCEDURE``, no sequence access (``NEXT VALUE FOR``, ``PREVIOUS VALUE FOR``, ``NEXTVAL``, ``SETVAL``,
  ``LASTVAL``, ``seq.nextval``), no user-variable assignment (``:=``), no write keyword (``INSERT``, ``UPDATE``,
  ``DELETE``, ``REPLACE``: ``WITH … DELETE``, ``EXPLAIN ANALYZE UPDATE``) and no second statement after a ``;``;
* it has no executable comment (``/*! … */``, ``/*M! … */``: the server runs their content).

String literals, quoted identifiers and comments are skipped as the server reads them. Whether a backslash
escapes a quote depends on the session's ``sql_mode`` (``NO_BACKSLASH_ESCAPES``), so the text is read both ways
and must pass both. ``%s`` / ``%(name)s`` placeholders directly after a name count as a bracket (an argument may
be a tuple, which PyMySQL renders as ``(…)``).

Functions that read session state (``LAST_INSERT_ID()``, ``ROW_COUNT()``, ``FOUND_ROWS()``, ``LASTVAL()``) are
not on the list either: on the new connection they would answer for a different session. ``SLEEP()`` and
``BENCHMARK()`` are: they change no data, and a re-run is bounded by the deadline like any statement.

What text cannot show: a view whose definition calls a writing stored function. Pass ``idempotent=False`` for
reads from such views.
"""

from __future__ import annotations

import re

__all__ = ["PURE_FUNCTIONS", "is_call", "is_plain_read"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_READ_STATEMENTS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN"})

PURE_FUNCTIONS = _words(
    """
    ABS ACOS ADDDATE ADDTIME AES_DECRYPT AES_ENCRYPT ANY_VALUE ASCII ASIN ATAN ATAN2 AVG BENCHMARK BIN BIN_TO_UUID
    BIT_AND BIT_COUNT BIT_LENGTH BIT_OR BIT_XOR CAST CEIL CEILING CHAR CHARACTER_LENGTH CHARSET CHAR_LENGTH CHR
    COALESCE COERCIBILITY COLLATION COMPRESS CONCAT CONCAT_WS CONNECTION_ID CONV CONVERT CONVERT_TZ COS COT COUNT
    CRC32 CUME_DIST CURDATE CURRENT_DATE CURRENT_ROLE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER CURTIME DATABASE
    DATE DATEDIFF DATE_ADD DATE_FORMAT DATE_SUB DAY DAYNAME DAYOFMONTH DAYOFWEEK DAYOFYEAR DEFAULT DEGREES
    DENSE_RANK ELT EXP EXPORT_SET EXTRACT FIELD FIND_IN_SET FIRST_VALUE FLOOR FORMAT FROM_BASE64 FROM_DAYS
    FROM_UNIXTIME GET_FORMAT GREATEST GROUP_CONCAT HEX HOUR IF IFNULL INET6_ATON INET6_NTOA INET_ATON INET_NTOA
    INSERT INSTR INTERVAL ISNULL IS_FREE_LOCK IS_IPV4 IS_IPV4_COMPAT IS_IPV4_MAPPED IS_IPV6 IS_USED_LOCK IS_UUID
    JSON_ARRAY JSON_ARRAYAGG JSON_ARRAY_APPEND JSON_ARRAY_INSERT JSON_COMPACT JSON_CONTAINS JSON_CONTAINS_PATH
    JSON_DEPTH JSON_DETAILED JSON_EQUALS JSON_EXISTS JSON_EXTRACT JSON_INSERT JSON_KEYS JSON_LENGTH JSON_LOOSE
    JSON_MERGE JSON_MERGE_PATCH JSON_MERGE_PRESERVE JSON_NORMALIZE JSON_OBJECT JSON_OBJECTAGG JSON_OVERLAPS
    JSON_PRETTY JSON_QUERY JSON_QUOTE JSON_REMOVE JSON_REPLACE JSON_SEARCH JSON_SET JSON_TABLE JSON_TYPE
    JSON_UNQUOTE JSON_VALID JSON_VALUE LAG LAST_DAY LAST_VALUE LCASE LEAD LEAST LEFT LENGTH LENGTHB LN LOCALTIME
    LOCALTIMESTAMP LOCATE LOG LOG10 LOG2 LOWER LPAD LTRIM MAKEDATE MAKETIME MAKE_SET MATCH MAX MD5 MEDIAN
    MICROSECOND MID MIN MINUTE MOD MONTH MONTHNAME NATURAL_SORT_KEY NOW NTH_VALUE NTILE NULLIF NVL NVL2 OCT
    OCTET_LENGTH ORD PERCENTILE_CONT PERCENTILE_DISC PERCENT_RANK PERIOD_ADD PERIOD_DIFF PI POSITION POW POWER
    QUARTER QUOTE RADIANS RAND RANDOM_BYTES RANK REGEXP_INSTR REGEXP_LIKE REGEXP_REPLACE REGEXP_SUBSTR REPEAT
    REPLACE REVERSE RIGHT ROUND ROW ROW_NUMBER RPAD RTRIM SCHEMA SECOND SEC_TO_TIME SESSION_USER SFORMAT SHA SHA1
    SHA2 SIGN SIN SLEEP SOUNDEX SPACE SQRT STD STDDEV STDDEV_POP STDDEV_SAMP STRCMP STR_TO_DATE SUBDATE SUBSTR
    SUBSTRING SUBSTRING_INDEX SUBTIME SUM SYSDATE SYSTEM_USER SYS_GUID TAN TIME TIMEDIFF TIMESTAMP TIMESTAMPADD
    TIMESTAMPDIFF TIME_FORMAT TIME_TO_SEC TO_BASE64 TO_DAYS TO_SECONDS TRIM TRUNCATE UCASE UNCOMPRESS
    UNCOMPRESSED_LENGTH UNHEX UNIX_TIMESTAMP UPPER USER UTC_DATE UTC_TIME UTC_TIMESTAMP UUID UUID_SHORT UUID_TO_BIN
    VARIANCE VAR_POP VAR_SAMP VERSION WEEK WEEKDAY WEEKOFYEAR WEIGHT_STRING YEAR YEARWEEK
    """
)
"""Built-in functions without side effects, callable as ``NAME(`` in a statement that is re-run automatically."""

# Reserved words that may stand before "(" without being a function call (operators, clauses, type names). A
# reserved word cannot name a stored function unless quoted or qualified, which is checked separately.
_PAREN_KEYWORDS = _words(
    """
    ALL AND AS BETWEEN BINARY BY CASE CHAR CONVERT CROSS DATABASE DEC DECIMAL DISTINCT DISTINCTROW DIV DOUBLE
    ELSE EXCEPT EXISTS FLOAT FROM GROUP HAVING IF IN INDEX INNER INT INTEGER INTERSECT INTERVAL IS JOIN KEY LATERAL
    LEFT LIKE LIMIT MATCH MOD NATURAL NOT NUMERIC OF ON OR ORDER OUTER PARTITION RECURSIVE REGEXP RIGHT RLIKE
    SCHEMA SELECT STRAIGHT_JOIN THEN UNION USING VALUES VARBINARY VARCHAR WHEN WHERE WITH XOR
    """
)
# Words (not reserved) that may stand before a value, so before a placeholder: LIMIT %s OFFSET %s, ESCAPE %s.
_VALUE_KEYWORDS = _words("AGAINST ANY COLLATE ESCAPE FIRST FOLLOWING NEXT OFFSET PRECEDING ROW ROWS SEPARATOR SOME")
# Never in a statement that is re-run: writes, locks, INTO, sequences, procedures (as bare words, not calls).
_FORBIDDEN_WORDS = _words(
    "CURRVAL DELETE DUMPFILE INSERT INTO LASTVAL LOCK NEXTVAL OUTFILE PROCEDURE REPLACE SETVAL UPDATE"
)
_SEQUENCE_WORDS = frozenset({"NEXTVAL", "CURRVAL", "LASTVAL", "SETVAL"})  # also forbidden after a "." (seq.nextval)
_SHOW_WORDS = frozenset({"PROCEDURE"})  # SHOW PROCEDURE STATUS, SHOW CREATE PROCEDURE: reads
_COMPARISON_END = frozenset("=<>")  # the last character of =, <>, !=, <=, >=, <=>

_SPACE = " \t\n\r\f\v"  # the server's whitespace; other characters >= U+0080 are identifier characters
_WORD = re.compile(r"[0-9A-Za-z_$\u0080-\U0010ffff]+")
_PLACEHOLDER = re.compile(r"%(?:s|\([^()%]*\)s)")

# (kind, text, spaced): kind is "word", "string" ('…'), "quoted" (`…` or "…"), "placeholder" or "punct";
# spaced is True when whitespace or a comment separates the token from the one before.
_Token = tuple[str, str, bool]


_CALL = re.compile(r"(?:\s+|/\*.*?\*/|#[^\n]*(?:\n|$)|--\s[^\n]*(?:\n|$))*\(*\s*CALL\b", re.IGNORECASE | re.DOTALL)


def is_call(sql: str) -> bool:
    """True for ``CALL proc(...)`` (after blanks and comments): a procedure may have committed part of its work."""
    return _CALL.match(sql) is not None


def is_plain_read(sql: str) -> bool:
    """True when ``sql`` provably has no side effect, so running it twice is harmless (see the module docs)."""
    if not isinstance(sql, str):
        return False
    for backslash_escapes in (True, False):
        tokens = _tokenize(sql, backslash_escapes=backslash_escapes)
        if tokens is None or not _is_plain(tokens):
            return False
    return True


def _tokenize(sql: str, *, backslash_escapes: bool) -> list[_Token] | None:
    """The statement's tokens without comments.

    None for text that must never be re-run: executable comments, unterminated literals or comments.
    """
    tokens: list[_Token] = []
    i, n = 0, len(sql)
    spaced = False
    while i < n:
        c = sql[i]
        if c in _SPACE:
            i, spaced = i + 1, True
        elif c == "#" or (sql.startswith("--", i) and (i + 2 == n or sql[i + 2] in _SPACE or sql[i + 2] < " ")):
            end = sql.find("\n", i)
            i, spaced = (n if end < 0 else end + 1), True
        elif sql.startswith("/*", i):
            if sql.startswith(("/*!", "/*M!"), i):
                return None  # the server executes the content of an executable comment
            end = sql.find("*/", i + 2)
            if end < 0:
                return None
            i, spaced = end + 2, True
        elif c in "'\"`":
            end = _end_of_quoted(sql, i, escapes=backslash_escapes and c != "`")
            if end < 0:
                return None
            tokens.append(("string" if c == "'" else "quoted", sql[i:end], spaced))
            i, spaced = end, False
        else:
            m = _WORD.match(sql, i) or _PLACEHOLDER.match(sql, i)
            if m is not None:
                kind = "word" if m.re is _WORD else "placeholder"
                tokens.append((kind, m.group(), spaced))
                i = m.end()
            elif sql.startswith(":=", i):
                tokens.append(("punct", ":=", spaced))
                i += 2
            else:
                tokens.append(("punct", c, spaced))
                i += 1
            spaced = False
    return tokens


def _end_of_quoted(sql: str, start: int, *, escapes: bool) -> int:
    """The index after the literal or quoted name that starts at ``start`` (a doubled quote stays inside), or -1."""
    quote = sql[start]
    i, n = start + 1, len(sql)
    while i < n:
        c = sql[i]
        if escapes and c == "\\":
            i += 2
        elif c == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return -1


def _is_plain(tokens: list[_Token]) -> bool:
    k = 0
    while k < len(tokens) and tokens[k][1] == "(":
        k += 1
    if k == len(tokens) or tokens[k][0] != "word":
        return False
    first = tokens[k][1].upper()
    if first not in _READ_STATEMENTS or (k and first not in ("SELECT", "WITH")):
        return False
    forbidden = _FORBIDDEN_WORDS - _SHOW_WORDS if first == "SHOW" else _FORBIDDEN_WORDS
    depth = 0
    preamble = first == "WITH"  # WITH name [(columns)] AS (…), … : before the main statement
    for idx, (kind, text, _) in enumerate(tokens):
        prev = tokens[idx - 1] if idx else ("punct", "", False)
        nxt = tokens[idx + 1] if idx + 1 < len(tokens) else ("punct", "", False)
        opens = nxt[1] == "(" or nxt[0] == "placeholder"  # a placeholder may become "(…)"
        if kind == "punct":
            if text == ";":
                return all(t[1] == ";" for t in tokens[idx:])  # a second statement is never re-run
            if text == ":=":
                return False
            depth += text == "("
            depth -= text == ")"
            continue
        if kind == "quoted":
            if opens:
                return False  # `name`(…) or "name"(…): a stored function
            continue
        if kind != "word":
            continue
        word = text.upper()
        qualified = prev[1] == "."
        if preamble and depth == 0 and prev[1] == ")" and word != "AS":
            preamble = False  # the CTEs are over: this is the main statement
        if word in _SEQUENCE_WORDS or (word in ("NEXT", "PREVIOUS") and nxt[1].upper() == "VALUE"):
            return False
        if word == "SHARE" and prev[1].upper() == "FOR":
            return False
        call = opens and not qualified and word in PURE_FUNCTIONS and nxt[1] == "(" and not nxt[2]
        if word in forbidden and not qualified and not call:
            return False
        if not opens or call:
            continue
        if qualified:
            return False  # db.name(…) or db.name %s: a stored function
        if word in _PAREN_KEYWORDS:
            continue
        if nxt[0] == "placeholder":
            if word in _VALUE_KEYWORDS:
                continue
            return False  # name %s with a tuple argument is name (…): a call
        if _contextual_keyword(word, prev, preamble=preamble, depth=depth):
            continue
        return False  # a call of anything else may write
    return True


def _contextual_keyword(word: str, prev: _Token, *, preamble: bool, depth: int) -> bool:
    """True when ``word (`` is syntax, not a call, given the token before it (these words are not reserved)."""
    if word in ("ANY", "SOME"):
        return prev[0] == "punct" and prev[1] in _COMPARISON_END  # = ANY (subquery)
    if word in ("OVER", "AGAINST"):
        return prev[1] == ")"  # f(…) OVER (…), MATCH (…) AGAINST (…)
    if word == "COLUMNS":
        return prev[0] == "string"  # JSON_TABLE(doc, '$[*]' COLUMNS (…))
    prev_word = prev[1].upper() if prev[0] == "word" else prev[1]
    if prev_word == "AS":
        return True  # CAST(x AS DATETIME(6)), FROM (…) AS d (a, b): a type or a column list
    # WITH [RECURSIVE] name (columns) AS (…), name (columns) AS (…)
    return prev_word in ("WITH", "RECURSIVE") or (preamble and depth == 0 and prev_word == ",")
