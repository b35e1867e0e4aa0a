"""Which statements may be re-run after a lost answer: a conservative reader of the statement text.

A statement is re-run automatically only when its text proves it has no side effect: it is a ``SELECT``,
``SHOW``, ``DESCRIBE``/``DESC``, ``EXPLAIN`` or ``WITH … SELECT`` (optionally behind opening brackets) and

* it calls no function except the side-effect-free built-ins of the server it runs on (:data:`PURE_FUNCTIONS`,
  plus those the server's handshake version has: ``UUID_TO_BIN`` is MySQL's, ``SFORMAT`` MariaDB's; on the other
  server a stored function of that name runs), written without a space before the bracket (``COUNT (x)`` may
  name a stored function, so it counts as unknown); a qualified or quoted name (``db.f(…)``, ```f`(…)``) is
  always a stored function, and so is a word reserved only on the other server (``LATERAL(…)`` on MariaDB);
* it has no locking clause (``FOR UPDATE``, ``FOR SHARE``, ``LOCK IN SHARE MODE``), no ``INTO``, no
  ``PROCEDURE``, no sequence access (``NEXT VALUE FOR``, ``PREVIOUS VALUE FOR``, ``NEXTVAL``, ``SETVAL``,
  ``LASTVAL``, ``seq.nextval``), no user-variable assignment (``:=``), no write keyword (``INSERT``, ``UPDATE``,
  ``DELETE``, ``REPLACE``: ``WITH … DELETE``, ``EXPLAIN ANALYZE UPDATE``) and no second statement after a ``;``;
* it has no executable comment (``/*! … */``, ``/*M! … */``: the server runs their content).

String literals, quoted identifiers and comments are skipped as the server reads them. How quotes read depends
on the session's ``sql_mode``, which a statement may change at any time: with ``NO_BACKSLASH_ESCAPES`` a
backslash escapes nothing; with ``ANSI_QUOTES`` ``"`` delimits a name, where a backslash never escapes, while it
still does in ``'…'``. So the text is read all three ways and must pass each. ``%s`` / ``%(name)s``
placeholders directly after a name count as a bracket (an argument may be a tuple, which PyMySQL renders as
``(…)``).

Functions that read session state (``LAST_INSERT_ID()``, ``ROW_COUNT()``, ``FOUND_ROWS()``, ``LASTVAL()``) are
not on the list either: on the new connection they would answer for a different session. ``SLEEP()`` and
``BENCHMARK()`` are: they change no data, and a re-run is bounded by the deadline like any statement.

What text cannot show: a view whose definition calls a writing stored function. Pass ``idempotent=False`` for
reads from such views.
"""

from __future__ import annotations

import functools
import re

__all__ = ["PURE_FUNCTIONS", "is_call", "is_plain_read"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_READ_STATEMENTS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN"})

PURE_FUNCTIONS = _words(
    """
    ABS ACOS ADDDATE ADDTIME AES_DECRYPT AES_ENCRYPT ASCII ASIN ATAN ATAN2 AVG BENCHMARK BIN BIT_AND BIT_COUNT
    BIT_LENGTH BIT_OR BIT_XOR CAST CEIL CEILING CHAR CHARACTER_LENGTH CHARSET CHAR_LENGTH COALESCE COERCIBILITY
    COLLATION COMPRESS CONCAT CONCAT_WS CONNECTION_ID CONV CONVERT CONVERT_TZ COS COT COUNT CRC32 CURDATE
    CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER CURTIME DATABASE DATE DATEDIFF DATE_ADD DATE_FORMAT
    DATE_SUB DAY DAYNAME DAYOFMONTH DAYOFWEEK DAYOFYEAR DEFAULT DEGREES ELT EXP EXPORT_SET EXTRACT FIELD FIND_IN_SET
    FLOOR FORMAT FROM_BASE64 FROM_DAYS FROM_UNIXTIME GET_FORMAT GREATEST GROUP_CONCAT HEX HOUR IF IFNULL INET6_ATON
    INET6_NTOA INET_ATON INET_NTOA INSERT INSTR INTERVAL ISNULL IS_FREE_LOCK IS_IPV4 IS_IPV4_COMPAT IS_IPV4_MAPPED
    IS_IPV6 IS_USED_LOCK JSON_ARRAY JSON_ARRAY_APPEND JSON_ARRAY_INSERT JSON_CONTAINS JSON_CONTAINS_PATH JSON_DEPTH
    JSON_EXTRACT JSON_INSERT JSON_KEYS JSON_LENGTH JSON_MERGE JSON_OBJECT JSON_QUOTE JSON_REMOVE JSON_REPLACE
    JSON_SEARCH JSON_SET JSON_TYPE JSON_UNQUOTE JSON_VALID LAST_DAY LCASE LEAST LEFT LENGTH LN LOCALTIME
    LOCALTIMESTAMP LOCATE LOG LOG10 LOG2 LOWER LPAD LTRIM MAKEDATE MAKETIME MAKE_SET MATCH MAX MD5 MICROSECOND MID
    MIN MINUTE MOD MONTH MONTHNAME NOW NULLIF OCT OCTET_LENGTH ORD PERIOD_ADD PERIOD_DIFF PI POSITION POW POWER
    QUARTER QUOTE RADIANS RAND REPEAT REPLACE REVERSE RIGHT ROUND ROW RPAD RTRIM SCHEMA SECOND SEC_TO_TIME
    SESSION_USER SHA SHA1 SHA2 SIGN SIN SLEEP SOUNDEX SPACE SQRT STD STDDEV STDDEV_POP STDDEV_SAMP STRCMP
    STR_TO_DATE SUBDATE SUBSTR SUBSTRING SUBSTRING_INDEX SUBTIME SUM SYSDATE SYSTEM_USER TAN TIME TIMEDIFF TIMESTAMP
    TIMESTAMPADD TIMESTAMPDIFF TIME_FORMAT TIME_TO_SEC TO_BASE64 TO_DAYS TO_SECONDS TRIM TRUNCATE UCASE UNCOMPRESS
    UNCOMPRESSED_LENGTH UNHEX UNIX_TIMESTAMP UPPER USER UTC_DATE UTC_TIME UTC_TIMESTAMP UUID UUID_SHORT VARIANCE
    VAR_POP VAR_SAMP VERSION WEEK WEEKDAY WEEKOFYEAR WEIGHT_STRING YEAR YEARWEEK
    """
)
"""Built-in functions without side effects on every supported server (MariaDB >= 10.2.4, MySQL >= 5.7.8), callable
as ``NAME(`` in a statement that is re-run automatically."""

_Version = tuple[int, int, int]
# Side-effect-free built-ins that only some servers have, from which version: (MariaDB, MySQL); None: not a
# built-in there. On a server without it, NAME(…) calls the user's stored function of that name, if there is one.
_SINCE: dict[str, tuple[_Version | None, _Version | None]] = {
    "ANY_VALUE": (None, (5, 7, 5)),
    "JSON_PRETTY": (None, (5, 7, 22)),
    **dict.fromkeys(_words("BIN_TO_UUID IS_UUID UUID_TO_BIN"), (None, (8, 0, 0))),
    **dict.fromkeys(_words("JSON_TABLE REGEXP_LIKE"), (None, (8, 0, 4))),
    "CURRENT_ROLE": ((10, 0, 5), (8, 0, 0)),
    **dict.fromkeys(_words("REGEXP_INSTR REGEXP_REPLACE REGEXP_SUBSTR"), ((10, 0, 5), (8, 0, 4))),
    **dict.fromkeys(
        _words("CUME_DIST DENSE_RANK FIRST_VALUE LAG LAST_VALUE LEAD NTH_VALUE NTILE PERCENT_RANK RANK ROW_NUMBER"),
        ((10, 2, 0), (8, 0, 2)),
    ),
    **dict.fromkeys(_words("JSON_MERGE_PATCH JSON_MERGE_PRESERVE"), ((10, 2, 25), (5, 7, 22))),
    **dict.fromkeys(_words("JSON_ARRAYAGG JSON_OBJECTAGG"), ((10, 5, 0), (5, 7, 22))),
    "JSON_VALUE": ((10, 2, 3), (8, 0, 21)),
    "JSON_OVERLAPS": ((10, 9, 0), (8, 0, 17)),
    "RANDOM_BYTES": ((10, 10, 0), (5, 6, 17)),
    **dict.fromkeys(_words("JSON_COMPACT JSON_DETAILED JSON_EXISTS JSON_LOOSE JSON_QUERY"), ((10, 2, 4), None)),
    **dict.fromkeys(_words("CHR LENGTHB NVL NVL2"), ((10, 3, 1), None)),
    **dict.fromkeys(_words("MEDIAN PERCENTILE_CONT PERCENTILE_DISC"), ((10, 3, 3), None)),
    "SYS_GUID": ((10, 6, 1), None),
    **dict.fromkeys(_words("JSON_EQUALS JSON_NORMALIZE NATURAL_SORT_KEY SFORMAT"), ((10, 7, 0), None)),
}
_MARIADB_TABLE_FUNCTIONS: dict[str, _Version] = {"JSON_TABLE": (10, 6, 0)}  # after FROM/JOIN only: elsewhere a call
_FLOOR: tuple[_Version, _Version] = ((10, 2, 4), (5, 7, 8))  # older servers lack some of PURE_FUNCTIONS: no call
_SERVER_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")

# Reserved words that may stand before "(" without being a function call (operators, clauses, type names). A
# reserved word cannot name a stored function unless quoted or qualified, which is checked separately.
_PAREN_KEYWORDS = _words(
    """
    ALL AND AS BETWEEN BINARY BY CASE CHAR CONVERT CROSS DATABASE DEC DECIMAL DISTINCT DISTINCTROW DIV DOUBLE
    ELSE EXISTS FLOAT FROM GROUP HAVING IF IN INDEX INNER INT INTEGER INTERVAL IS JOIN KEY LEFT LIKE LIMIT MATCH
    MOD NATURAL NOT NUMERIC ON OR ORDER OUTER PARTITION RECURSIVE REGEXP RIGHT RLIKE SCHEMA SELECT STRAIGHT_JOIN
    THEN UNION USING VALUES VARBINARY VARCHAR WHEN WHERE WITH XOR
    """
)
# Reserved on some servers only, from which version: (MariaDB, MySQL). MariaDB accepts LATERAL and OF as function
# names (OF is not here at all: no read puts it before a bracket).
_KEYWORD_SINCE: dict[str, tuple[_Version | None, _Version | None]] = {
    "LATERAL": (None, (8, 0, 14)),
    "EXCEPT": ((10, 3, 0), (8, 0, 31)),
    "INTERSECT": ((10, 3, 0), (8, 0, 31)),
}
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

# How the server may read quotes: (a backslash escapes in '…', in "…"). NO_BACKSLASH_ESCAPES: in neither;
# ANSI_QUOTES: "…" is a name, where a backslash never escapes. The session's sql_mode may change at any time.
_READINGS = ((True, True), (False, False), (True, False))

# (kind, text, spaced): kind is "word", "string" ('…'), "quoted" (`…` or "…"), "placeholder" or "punct";
# spaced is True when whitespace or a comment separates the token from the one before.
_Token = tuple[str, str, bool]


_CALL = re.compile(
    r"(?:\s+|/\*.*?\*/|#[^\n]*(?:\n|$)|--\s[^\n]*(?:\n|$))*\(*\s*(?:CALL|EXECUTE)\b", re.IGNORECASE | re.DOTALL
)


def is_call(sql: str) -> bool:
    """True when ``sql`` may run a procedure, which may have committed part of its work before a refusal.

    ``CALL proc(...)`` and ``EXECUTE stmt`` (a prepared statement may be a ``CALL``) after blanks and comments, and
    any statement with an executable comment (``/*! CALL p() */`` runs on the server, but reads as a comment here).
    """
    return "/*!" in sql or "/*M!" in sql or _CALL.match(sql) is not None


def is_plain_read(sql: str, server: str | None = None) -> bool:
    """True when ``sql`` provably has no side effect, so running it twice is harmless (see the module docs).

    ``server`` is the server's version string from the handshake (``5.5.5-10.11.6-MariaDB``, ``8.0.35``); which
    names are built-ins depends on it. ``None``: only the built-ins every supported server has.
    """
    if not isinstance(sql, str):
        return False
    known = _known(server)
    for single, double in _READINGS:
        tokens = _tokenize(sql, single_escapes=single, double_escapes=double)
        if tokens is None or not _is_plain(tokens, known):
            return False
    return True


_Known = tuple[frozenset[str], frozenset[str], frozenset[str]]  # (functions, reserved words, table functions)


@functools.lru_cache(maxsize=8)
def _known(server: str | None) -> _Known:
    """The side-effect-free built-ins, the reserved words before a bracket and the table functions of ``server``."""
    parsed = _parse_server(server)
    if parsed is None:
        return PURE_FUNCTIONS, _PAREN_KEYWORDS, frozenset()
    index, version = parsed
    if version < _FLOOR[index]:
        return frozenset(), _PAREN_KEYWORDS, frozenset()

    def has(since: tuple[_Version | None, _Version | None]) -> bool:
        first = since[index]
        return first is not None and version >= first

    functions = PURE_FUNCTIONS | {name for name, since in _SINCE.items() if has(since)}
    keywords = _PAREN_KEYWORDS | {word for word, since in _KEYWORD_SINCE.items() if has(since)}
    tables = {name for name, first in _MARIADB_TABLE_FUNCTIONS.items() if index == 0 and version >= first}
    return functions, keywords, frozenset(tables)


def _parse_server(server: str | None) -> tuple[int, _Version] | None:
    """(0 for MariaDB or 1 for MySQL, its version) from the handshake's version string; None when unreadable."""
    if not server:
        return None
    mariadb = "mariadb" in server.lower()
    text = server.removeprefix("5.5.5-") if mariadb else server  # MariaDB's replication-compatible prefix
    m = _SERVER_VERSION.match(text)
    if m is None:
        return None
    return (0 if mariadb else 1), (int(m[1]), int(m[2]), int(m[3] or 0))


def _tokenize(sql: str, *, single_escapes: bool, double_escapes: bool) -> list[_Token] | None:
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
            end = _end_of_quoted(sql, i, escapes=single_escapes if c == "'" else double_escapes and c == '"')
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


def _is_plain(tokens: list[_Token], known: _Known) -> bool:
    functions, keywords, table_functions = known
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
        builtin = word in functions or (word in table_functions and prev[1].upper() in ("FROM", "JOIN"))
        call = opens and not qualified and builtin and nxt[1] == "(" and not nxt[2]
        if word in forbidden and not qualified and not call:
            return False
        if not opens or call:
            continue
        if qualified:
            return False  # db.name(…) or db.name %s: a stored function
        if word in keywords:
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
