"""Issue 13: SQLAlchemy (ORM and Core) on the managed connection, against the private MariaDB."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, String, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import ConfigError, DeadlineExceededError, ServerlessMySQL, TransactionAbortedError
from serverless_mysql.decorator import with_mysql
from serverless_mysql.sqlalchemy import create_engine
from tests.integration.conftest import ClientFactory, conn_id, kill_and_wait, values
from tests.integration.decorator_fixtures import clean_serverless_env
from tests.integration.sqlalchemy_fixtures import db, engine

pytestmark = pytest.mark.integration
Factory = Any
__all__ = ["clean_serverless_env", "db", "engine"]  # fixtures


class Context:
    """A Lambda context with ``ms`` milliseconds left."""

    def __init__(self, ms: int = 10_000) -> None:
        self.ms = ms

    def get_remaining_time_in_millis(self) -> int:
        return self.ms


def model(table: str) -> type[Any]:
    """A mapped class on the ``table`` fixture's table (``schema.name``; columns ``id``, ``v``)."""
    schema, name = table.split(".")

    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = name
        __table_args__ = {"schema": schema}  # noqa: RUF012 - SQLAlchemy's declarative form
        id: Mapped[int] = mapped_column(primary_key=True)
        v: Mapped[str] = mapped_column(String(200))

    return Item


def counters(db: ServerlessMySQL) -> dict[str, int]:
    """The session's statement counters, read on the client's own connection (see :func:`delta`)."""
    raw = db.get_client()
    assert raw is not None
    with raw.cursor() as cur:
        cur.execute(
            "SELECT LOWER(VARIABLE_NAME) AS k, VARIABLE_VALUE AS v FROM information_schema.SESSION_STATUS "
            "WHERE VARIABLE_NAME IN ('QUESTIONS', 'COM_BEGIN', 'COM_COMMIT', 'COM_ROLLBACK', 'COM_INSERT', "
            "'COM_SELECT', 'COM_SET_OPTION')"
        )
        return {row["k"]: int(row["v"]) for row in cur.fetchall()}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Statements between two :func:`counters` reads (a read counts once it is done: the first one is taken out)."""
    after = {**after, "questions": after["questions"] - 1, "com_select": after["com_select"] - 1}
    return {k: after[k] - before[k] for k in before if after[k] != before[k]}


# ---------------------------------------------------------------------------------------------- the engine
def test_import_serverless_mysql_imports_no_sqlalchemy() -> None:
    code = (
        "import sys, serverless_mysql; from serverless_mysql import ServerlessMySQL, with_mysql; "
        "db = ServerlessMySQL(host='127.0.0.1'); db.cursor; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_one_engine_per_client_and_clear_argument_errors(
    app_user: AppUser, db: ServerlessMySQL, client_factory: ClientFactory
) -> None:
    engine = create_engine(db, echo=False)
    assert create_engine(db, echo=False) is engine
    assert create_engine(client_factory(app_user)) is not engine
    with pytest.raises(ConfigError, match=r"other engine arguments \(echo, isolation_level\)"):
        create_engine(db, isolation_level="READ COMMITTED")
    with pytest.raises(ConfigError, match="pool_size, poolclass"):
        create_engine(db, poolclass=None, pool_size=5)
    with pytest.raises(TypeError, match="ServerlessMySQL"):
        create_engine("mysql://x")  # type: ignore[arg-type]
    assert db.get_client() is None, "creating the engine does not connect"


def test_first_use_learns_what_sqlalchemys_own_dialect_learns(app_user: AppUser, client_factory: ClientFactory) -> None:
    """The server settings read in one statement give the dialect the state PyMySQL's dialect gets with five."""
    import sqlalchemy

    ours = create_engine(client_factory(app_user))
    plain = sqlalchemy.create_engine(sqlalchemy.engine.URL.create("mysql+pymysql", **_url_args(app_user)))
    try:
        for engine in (ours, plain):
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        names = ("server_version_info", "is_mariadb", "default_schema_name", "default_isolation_level", "_sql_mode")
        for name in (*names, "_casing", "_server_ansiquotes", "_backslash_escapes", "_connection_charset"):
            assert getattr(ours.dialect, name) == getattr(plain.dialect, name), name
    finally:
        plain.dispose()


def _url_args(user: AppUser) -> dict[str, Any]:
    return {
        "username": user.name,
        "password": user.password,
        "host": user.host,
        "port": user.port,
        "database": user.database,
    }


def test_orm_insert_commit_is_seen_from_another_connection(
    mariadb: MariaDBServer, db: ServerlessMySQL, engine: Engine, table: str
) -> None:
    Item = model(table)
    db.connect()
    before = counters(db)
    with Session(engine) as session:
        session.add_all([Item(v="a"), Item(v="b")])
        session.commit()
    assert values(mariadb, table) == ["a", "b"]
    cost = delta(before, counters(db))
    # The first use initializes the dialect (version from the handshake, a few SELECTs); then the unit of work.
    assert cost["com_begin"] == 1 and cost["com_commit"] == 1 and cost.get("com_rollback", 0) == 0
    assert cost["com_insert"] >= 1
    before = counters(db)
    with Session(engine) as session:
        session.add(Item(v="c"))
        session.commit()
    # Warm: START TRANSACTION, one INSERT (MariaDB: INSERT ... RETURNING), COMMIT. Nothing at check-in.
    assert delta(before, counters(db)) == {"questions": 3, "com_begin": 1, "com_insert": 1, "com_commit": 1}
    assert values(mariadb, table) == ["a", "b", "c"]
    assert not db.in_transaction


def test_rollback_leaves_nothing(mariadb: MariaDBServer, db: ServerlessMySQL, engine: Engine, table: str) -> None:
    Item = model(table)
    with Session(engine) as session:
        session.add(Item(v="gone"))
        session.flush()  # the INSERT reached the server, inside the transaction
        assert mariadb.execute(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"] == 0  # not visible outside
        session.rollback()
    assert values(mariadb, table) == []
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {table} (v) VALUES ('core')"))
        conn.rollback()
    assert values(mariadb, table) == []
    assert not db.in_transaction


def test_exception_inside_session_begin_rolls_back(
    mariadb: MariaDBServer, db: ServerlessMySQL, engine: Engine, table: str
) -> None:
    Item = model(table)
    with pytest.raises(KeyError), Session(engine) as session, session.begin():
        session.add(Item(v="x"))
        session.flush()
        raise KeyError("handler bug")
    with pytest.raises(KeyError), engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {table} (v) VALUES ('y')"))
        raise KeyError("handler bug")
    assert values(mariadb, table) == []
    assert not db.in_transaction
    # The client is free again: its own statements autocommit.
    db.query(f"INSERT INTO {table} (v) VALUES ('plain')")
    assert values(mariadb, table) == ["plain"]


def test_db_query_inside_an_engine_transaction_is_part_of_it(
    mariadb: MariaDBServer, db: ServerlessMySQL, engine: Engine, table: str
) -> None:
    Item = model(table)
    with Session(engine) as session:
        session.add(Item(v="orm"))
        session.flush()
        db.query(f"INSERT INTO {table} (v) VALUES ('plain')")
        assert db.in_transaction
        session.rollback()
    assert values(mariadb, table) == []
    db.query(f"INSERT INTO {table} (v) VALUES ('autocommit')")
    assert values(mariadb, table) == ["autocommit"]


def test_connection_killed_between_invocations_next_session_reconnects_once(
    mariadb: MariaDBServer, app_user: AppUser, db: ServerlessMySQL, engine: Engine, table: str
) -> None:
    Item = model(table)
    with Session(engine) as session, session.begin():
        session.add(Item(v="first"))
    db.end()
    old = conn_id(db)
    mariadb.kill(old)
    mariadb.wait_for_connection_count(0, app_user.name)
    stats = db.get_stats()
    with Session(engine) as session, session.begin():
        session.add(Item(v="second"))
        assert session.scalars(select(Item.v).order_by(Item.id)).all() == ["first", "second"]
    after = db.get_stats()
    assert (after.reconnects - stats.reconnects, after.connects - stats.connects) == (1, 1)
    assert conn_id(db) != old
    assert values(mariadb, table) == ["first", "second"]


def test_connection_lost_inside_an_orm_transaction_is_an_error_and_nothing_is_committed(
    mariadb: MariaDBServer, app_user: AppUser, db: ServerlessMySQL, engine: Engine, table: str
) -> None:
    Item = model(table)
    with pytest.raises(TransactionAbortedError), Session(engine) as session, session.begin():
        session.add(Item(v="A"))
        session.flush()
        kill_and_wait(mariadb, app_user, conn_id(db))
        session.add(Item(v="B"))
        session.flush()  # never re-run on a new connection, never in autocommit
    assert values(mariadb, table) == []
    # Lost between the last statement and COMMIT: the commit fails too.
    with pytest.raises(TransactionAbortedError), Session(engine) as session, session.begin():
        session.add(Item(v="C"))
        session.flush()
        kill_and_wait(mariadb, app_user, conn_id(db))
    assert values(mariadb, table) == []
    assert not db.in_transaction
    with Session(engine) as session, session.begin():  # and the next transaction works again
        session.add(Item(v="D"))
    assert values(mariadb, table) == ["D"]


def test_one_server_connection_whatever_the_number_of_sessions(
    mariadb: MariaDBServer, app_user: AppUser, db: ServerlessMySQL, engine: Engine, table: str
) -> None:
    Item = model(table)
    sessions = [Session(engine) for _ in range(5)]
    for n, session in enumerate(sessions):
        session.add(Item(v=f"s{n}"))
        session.commit()
        assert session.get(Item, n + 1) is not None  # a read after commit: a new transaction, left open
        session.rollback()
    with engine.connect() as c1, engine.connect() as c2:  # two checkouts at once share the connection
        first = c1.scalar(text("SELECT CONNECTION_ID()"))
        c1.rollback()  # one transaction at a time (see test_one_transaction_at_a_time)
        assert c2.scalar(text("SELECT CONNECTION_ID()")) == first
        c2.rollback()
    for session in sessions:
        session.close()
    assert mariadb.connection_count(app_user.name) == 1
    assert db.get_stats().connects == 1


def test_one_transaction_at_a_time(db: ServerlessMySQL, engine: Engine, table: str) -> None:
    Item = model(table)
    with Session(engine) as session, session.begin():
        session.add(Item(v="x"))
        session.flush()
        with pytest.raises(RuntimeError, match="transaction is already open"), engine.begin() as conn:
            conn.execute(text("SELECT 1"))
        with pytest.raises(RuntimeError, match="transaction is already open"), db.transaction():
            pass


def test_autocommit_isolation_sends_no_transaction_statements(
    mariadb: MariaDBServer, db: ServerlessMySQL, engine: Engine, table: str
) -> None:
    Item = model(table)
    reads = engine.execution_options(isolation_level="AUTOCOMMIT")
    with Session(reads) as session:
        session.execute(select(Item)).all()  # the first use initializes the dialect
    before = counters(db)
    with Session(reads) as session:
        assert session.execute(select(Item)).all() == []
    assert delta(before, counters(db)) == {"questions": 1, "com_select": 1}
    before = counters(db)
    with Session(engine) as session:
        session.execute(select(Item)).all()
    assert delta(before, counters(db)) == {"questions": 3, "com_begin": 1, "com_select": 1, "com_rollback": 1}
    before = counters(db)
    with Session(engine.execution_options(isolation_level="READ COMMITTED")) as session:
        session.execute(select(Item)).all()
        session.rollback()
    assert delta(before, counters(db))["questions"] == 4  # SET TRANSACTION ISOLATION LEVEL first


def test_savepoints_dispose_and_engine_level_autocommit(
    mariadb: MariaDBServer,
    app_user: AppUser,
    db: ServerlessMySQL,
    engine: Engine,
    client_factory: ClientFactory,
    table: str,
) -> None:
    Item = model(table)
    with Session(engine) as session, session.begin():
        session.add(Item(v="outer"))
        with pytest.raises(ValueError), session.begin_nested():  # SAVEPOINT ... ROLLBACK TO SAVEPOINT
            session.add(Item(v="inner"))
            session.flush()
            raise ValueError("undo the inner part only")
    assert values(mariadb, table) == ["outer"]
    own = conn_id(db)
    engine.dispose()  # closes nothing: the connection is the client's
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT CONNECTION_ID()")) == own
        conn.rollback()
    other = client_factory(app_user)
    autocommit = create_engine(other, isolation_level="AUTOCOMMIT")
    with autocommit.connect() as conn:
        conn.execute(text(f"INSERT INTO {table} (v) VALUES ('autocommitted')"))
        assert not other.in_transaction
        conn.rollback()  # nothing to roll back: each statement committed on its own
    assert values(mariadb, table) == ["outer", "autocommitted"]


def test_raw_connection_is_a_dbapi_connection_in_autocommit(
    mariadb: MariaDBServer, db: ServerlessMySQL, engine: Engine, table: str
) -> None:
    raw = engine.raw_connection()
    cur = raw.cursor()
    cur.execute(f"INSERT INTO {table} (v) VALUES (%s)", ("raw",))
    assert cur.lastrowid == 1
    cur.execute("START TRANSACTION")
    cur.execute(f"INSERT INTO {table} (v) VALUES (%s)", ("undone",))
    raw.rollback()
    cur.execute(f"SELECT v FROM {table}")
    assert cur.fetchall() == [("raw",)]  # tuples, as SQLAlchemy expects of a DB-API cursor
    raw.close()
    assert db.get_client() is not None and not db.in_transaction


# ---------------------------------------------------------------------------------------------- @with_mysql
def test_with_mysql_handler_uses_db_and_the_engine_and_end_runs_after(
    clean_serverless_env: None, mariadb: MariaDBServer, app_user: AppUser, table: str
) -> None:
    Item = model(table)

    @with_mysql(**app_user.connect_kwargs(), sigterm=False)
    def handler(event: dict[str, Any], context: Any, db: ServerlessMySQL) -> int:
        with Session(create_engine(db)) as session, session.begin():
            session.add(Item(v=event["v"]))
            session.flush()
            db.query(f"INSERT INTO {table} (v) VALUES (%s)", (event["v"] + "-plain",))
        if event.get("leave_open"):
            session2 = Session(create_engine(db))
            session2.add(Item(v="left open"))
            session2.flush()
            holder.append(session2)
        return int(db.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"])

    holder: list[Session] = []
    assert handler({"v": "a"}, Context()) == 2
    assert handler({"v": "b", "leave_open": True}, Context()) == 5  # the count ran inside session2's transaction
    db = handler.db
    assert db.get_counter() == 2, "end() ran after each invocation"
    assert not db.in_transaction and db.get_stats().rollbacks_on_end == 1
    assert values(mariadb, table) == ["a", "a-plain", "b", "b-plain"]
    # The session left open still believes in its transaction: it is refused, never continued in autocommit.
    with pytest.raises(TransactionAbortedError, match="rolled back when the invocation"):
        holder[0].flush() if holder[0].new else holder[0].execute(text("SELECT 1"))
    holder[0].rollback()
    holder[0].close()
    assert handler({"v": "c"}, Context()) == 6


def test_the_lambda_deadline_bounds_sqlalchemy_statements(
    clean_serverless_env: None, app_user: AppUser, table: str
) -> None:
    @with_mysql(**app_user.connect_kwargs(), sigterm=False, deadline_margin=0.0)
    def handler(event: Any, context: Any, db: ServerlessMySQL) -> Any:
        with create_engine(db).connect() as conn:
            return conn.execute(text("SELECT SLEEP(5)")).scalar()

    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        handler({}, Context(ms=700))
    assert time.monotonic() - started < 2.0
    assert not handler.db.in_transaction


def test_housekeeping_still_kills_zombies_under_pressure(
    server_factory: Factory, make_user: Factory, client_factory: ClientFactory
) -> None:
    server = server_factory(max_connections=12)
    app = make_user(server, process=True)
    server.execute(f"CREATE TABLE {server.database}.orm (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(200))")
    Item = model(f"{server.database}.orm")
    zombies = server.open_zombies(app, 8)
    time.sleep(1.1)
    killed: list[int] = []
    db = client_factory(app, conn_utilization=0.5, zombie_min_timeout=1, on_kill=lambda t, idle: killed.append(t))
    with Session(create_engine(db)) as session, session.begin():
        session.add(Item(v="x"))
    db.end()
    assert killed and set(killed) <= set(zombies)
    assert db.get_stats().zombies_killed == len(killed)
    with Session(create_engine(db)) as session:
        assert session.scalars(select(Item.v)).all() == ["x"]


# ---------------------------------------------------------------------------------------------- db.cursor()
def test_cursor_is_a_dbapi_cursor_with_dict_rows(mariadb: MariaDBServer, db: ServerlessMySQL, table: str) -> None:
    with db.cursor() as cur:
        assert cur.execute(f"INSERT INTO {table} (v) VALUES (%s)", ("one",)) == 1
        assert cur.lastrowid == 1 and cur.rowcount == 1 and cur.description is None
        assert cur.executemany(f"INSERT INTO {table} (v) VALUES (%s)", [("two",), ("three",), ("four",)]) == 3
        assert cur.execute(f"SELECT id, v FROM {table} WHERE id > %(min)s ORDER BY id", {"min": 1}) == 3
        assert cur.description is not None and [d[0] for d in cur.description] == ["id", "v"]
        assert cur.fetchone() == {"id": 2, "v": "two"}
        assert cur.fetchmany(5) == [{"id": 3, "v": "three"}, {"id": 4, "v": "four"}]
        assert cur.fetchone() is None and cur.fetchall() == []
        cur.execute(f"UPDATE {table} SET v = CONCAT(v, '!') WHERE id <= %s", (2,))
        assert cur.rowcount == 2
        cur.execute(f"SELECT v FROM {table} ORDER BY id")
        assert [row["v"] for row in cur] == ["one!", "two!", "three", "four"]
    with pytest.raises(Exception, match="closed"):
        cur.execute("SELECT 1")
    assert values(mariadb, table) == ["one!", "two!", "three", "four"]
    assert db.get_stats().queries == 5  # executemany: one multi-row INSERT


def test_cursor_follows_the_liveness_and_rerun_rules(
    mariadb: MariaDBServer, app_user: AppUser, db: ServerlessMySQL, table: str
) -> None:
    cur = db.cursor()
    cur.execute("SELECT 1 AS one")
    kill_and_wait(mariadb, app_user, conn_id(db))
    cur.execute(f"INSERT INTO {table} (v) VALUES ('after kill')")  # found dead before use: reconnected first
    assert db.get_stats().reconnects == 1
    own = conn_id(db)
    killer = _later(0.3, lambda: mariadb.kill(own))
    cur.execute("SELECT SLEEP(2) AS s")  # a plain read lost mid-statement: re-run on a new connection
    killer.join()
    assert cur.fetchall() == [{"s": 0}] and db.get_stats().reconnects == 2
    with pytest.raises(TransactionAbortedError), db.transaction():
        cur.execute(f"INSERT INTO {table} (v) VALUES ('in tx')")
        kill_and_wait(mariadb, app_user, conn_id(db))
        cur.execute(f"INSERT INTO {table} (v) VALUES ('never')")
    assert values(mariadb, table) == ["after kill"]


def test_cursor_executemany_is_pymysqls(mariadb: MariaDBServer, app_user: AppUser, db: ServerlessMySQL) -> None:
    """Issue 18: the same executemany() calls through PyMySQL's own cursor and db.cursor() send the same statements
    (``%%`` formatted in the INSERT's prefix and ON DUPLICATE part, the same multi-row chunks) with the same results."""
    name = f"{mariadb.database}.`t_pct%{time.monotonic_ns() % 10**9}`"
    mariadb.execute(f"CREATE TABLE {name} (id INT AUTO_INCREMENT PRIMARY KEY, k INT UNIQUE, v VARCHAR(600))")
    quoted = name.replace("%", "%%")
    big = [(n, f"{n:04d}" + "x" * 496) for n in range(10, 4010)]  # 2 MB of values: PyMySQL sends 2 statements
    calls: list[tuple[str, list[Any]]] = [
        (f"INSERT INTO {quoted} (k, v) VALUES (%s, %s)", [(1, "a%"), (2, "b")]),
        (
            f"INSERT INTO {quoted} (k, v) VALUES (%(k)s, %(v)s) ON DUPLICATE KEY UPDATE v = CONCAT(v, '%%')",
            [{"k": 2, "v": "c"}, {"k": 3, "v": "d"}],
        ),
        (f"UPDATE {quoted} SET v = CONCAT(v, '%%', %s) WHERE k = %s", [("e", 1), ("f", 3), ("none", 99)]),
        (f"INSERT INTO {quoted} (k, v) VALUES (%s, %s)", big),
        (f"INSERT INTO {quoted} (k, v) VALUES (%s, %s)", []),
    ]

    def transcript(cursor: Any, questions: Callable[[], int]) -> list[Any]:
        mariadb.execute(f"TRUNCATE TABLE {name}")
        out: list[Any] = []
        for sql, params in calls:
            before = questions()
            returned = cursor.executemany(sql, params)
            out.append((returned, cursor.rowcount, cursor.lastrowid, questions() - before - 1))
        out.append([(row["k"], row["v"]) for row in mariadb.execute(f"SELECT k, v FROM {name} ORDER BY id")])
        return out

    def status(cur: Any) -> int:
        cur.execute("SHOW SESSION STATUS LIKE 'Questions'")
        row = cur.fetchone()
        return int(row["Value"] if isinstance(row, dict) else row[1])

    plain = app_user.connect(autocommit=True)
    try:
        with plain.cursor() as cur, plain.cursor() as side:
            expected = transcript(cur, lambda: status(side))
    finally:
        plain.close()
    with db.cursor() as ours, db.cursor() as ours_side:
        assert transcript(ours, lambda: status(ours_side)) == expected
    assert expected[3][3] == 2 and expected[-1][:2] == [(1, "a%%e"), (2, "b%")]
    mariadb.execute(f"DROP TABLE {name}")


def _later(seconds: float, fn: Callable[[], object]) -> Any:
    from tests.integration.conftest import later

    return later(seconds, fn)


def test_engine_statement_cost_per_invocation(
    mariadb: MariaDBServer, db: ServerlessMySQL, engine: Engine, table: str, capsys: Any
) -> None:
    """The numbers docs/sqlalchemy.md quotes: statements the server sees per warm invocation, by pattern."""
    Item = model(table)
    mariadb.execute(f"INSERT INTO {table} (v) VALUES ('seed')")
    cold = counters(db) if db.get_client() else None
    assert cold is None
    db.connect()
    before = counters(db)
    with Session(engine) as session:
        session.get(Item, 1)
    first = delta(before, counters(db))["questions"]

    def cost(fn: Callable[[], object]) -> int:
        b = counters(db)
        fn()
        return delta(b, counters(db)).get("questions", 0)

    def orm_write() -> None:
        with Session(engine) as s, s.begin():
            s.add(Item(v="w"))

    def orm_read() -> None:
        with Session(engine) as s:
            s.get(Item, 1)

    def orm_read_autocommit() -> None:
        with Session(engine.execution_options(isolation_level="AUTOCOMMIT")) as s:
            s.get(Item, 1)

    def plain_read() -> None:
        db.query(f"SELECT id, v FROM {table} WHERE id = %s", (1,))

    table_costs = {
        "plain db.query read": cost(plain_read),
        "ORM write (Session.begin + add)": cost(orm_write),
        "ORM read (Session.get, close)": cost(orm_read),
        "ORM read, AUTOCOMMIT": cost(orm_read_autocommit),
    }
    with capsys.disabled():
        print(f"\nstatements: first engine use {first} (dialect init + read), warm: {table_costs}")
    assert first == 1 + 3  # SQLAlchemy's first-use checks in one SELECT (once per engine), then the read
    assert table_costs == {
        "plain db.query read": 1,
        "ORM write (Session.begin + add)": 3,
        "ORM read (Session.get, close)": 3,
        "ORM read, AUTOCOMMIT": 1,
    }
