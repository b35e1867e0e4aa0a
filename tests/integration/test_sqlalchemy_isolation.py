"""Issue 18: every SQLAlchemy connection of a client keeps its own autocommit and isolation level, and its own
transaction, whatever the client's other connections (in this thread or another) do meanwhile."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.orm import Session

import serverless_mysql
from harness.mariadb import AppUser, MariaDBServer
from serverless_mysql import ServerlessMySQL
from serverless_mysql.decorator import with_mysql
from serverless_mysql.sqlalchemy import create_engine
from tests.integration.conftest import values
from tests.integration.decorator_fixtures import clean_serverless_env
from tests.integration.sqlalchemy_fixtures import db, engine
from tests.integration.test_sqlalchemy import Context, counters, delta, model

pytestmark = pytest.mark.integration
__all__ = ["clean_serverless_env", "db", "engine"]  # fixtures


def trx_isolation(mariadb: MariaDBServer, conn: Connection) -> str:
    """The isolation level of ``conn``'s open transaction, as the server runs it (it has read an InnoDB table)."""
    own = conn.scalar(text("SELECT CONNECTION_ID()"))
    time.sleep(0.15)  # InnoDB refreshes what INNODB_TRX shows at most every 0.1 s
    rows = mariadb.execute(
        "SELECT trx_isolation_level AS level FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = %s", (own,)
    )
    assert len(rows) == 1, f"no open InnoDB transaction on connection {own}"
    return str(rows[0]["level"])


def test_a_default_connection_begins_real_transactions_while_an_autocommit_one_is_checked_out(
    mariadb: MariaDBServer, db: ServerlessMySQL, engine: Engine, table: str
) -> None:
    Item = model(table)
    reads = engine.execution_options(isolation_level="AUTOCOMMIT")  # what docs/sqlalchemy.md recommends for reads
    with reads.connect() as autocommit:
        autocommit.execute(text(f"SELECT COUNT(*) FROM {table}"))
        with engine.connect() as conn:
            conn.execute(text(f"INSERT INTO {table} (v) VALUES ('undone')"))
            assert db.in_transaction, "START TRANSACTION was sent"
            conn.rollback()
        with pytest.raises(KeyError), Session(engine) as session, session.begin():
            session.add(Item(v="orm undone"))
            session.flush()
            raise KeyError("roll back")
        autocommit.execute(text(f"INSERT INTO {table} (v) VALUES ('autocommitted')"))
        assert not db.in_transaction
    assert values(mariadb, table) == ["autocommitted"]


@pytest.mark.parametrize("inner_level", ["AUTOCOMMIT", None, "READ COMMITTED"])
def test_an_inner_connection_checked_in_leaves_the_outer_autocommit_one_as_it_was(
    mariadb: MariaDBServer, db: ServerlessMySQL, engine: Engine, table: str, inner_level: str | None
) -> None:
    reads = engine.execution_options(isolation_level="AUTOCOMMIT")
    inner_engine = engine if inner_level is None else engine.execution_options(isolation_level=inner_level)
    with reads.connect() as outer:
        outer.execute(text("SELECT 1"))
        outer.commit()  # SQLAlchemy begins the connection's next transaction at its next statement
        with inner_engine.connect() as inner:
            inner.execute(text("SELECT 1"))
            inner.rollback()
        outer.execute(text(f"INSERT INTO {table} (v) VALUES ('kept')"))
        assert not db.in_transaction, "the outer connection still runs without transactions"
    assert values(mariadb, table) == ["kept"]  # not rolled back when the outer connection closed


def test_an_isolation_level_stays_with_its_connection(
    mariadb: MariaDBServer, db: ServerlessMySQL, engine: Engine, table: str
) -> None:
    with engine.connect() as conn:
        conn.execute(text(f"SELECT * FROM {table}"))
        default = trx_isolation(mariadb, conn)
    assert default == "REPEATABLE READ"  # the server's default (the private MariaDB's configuration)
    serializable = engine.execution_options(isolation_level="SERIALIZABLE")
    with serializable.connect() as ser:
        ser.execute(text(f"SELECT * FROM {table}"))
        assert trx_isolation(mariadb, ser) == "SERIALIZABLE"
        ser.rollback()
        with engine.connect() as conn:  # a default connection while the SERIALIZABLE one is checked out
            before = counters(db)
            conn.execute(text(f"SELECT * FROM {table}"))
            conn.rollback()
            assert delta(before, counters(db)) == {"questions": 3, "com_begin": 1, "com_select": 1, "com_rollback": 1}
            conn.execute(text(f"SELECT * FROM {table}"))
            assert trx_isolation(mariadb, conn) == default
            conn.rollback()
        with engine.execution_options(isolation_level="READ COMMITTED").connect() as other:
            other.execute(text(f"SELECT * FROM {table}"))
            assert trx_isolation(mariadb, other) == "READ COMMITTED"
            other.rollback()
        ser.execute(text(f"SELECT * FROM {table}"))  # the inner ones' check-in did not reset it
        assert trx_isolation(mariadb, ser) == "SERIALIZABLE"
        ser.rollback()


@pytest.mark.parametrize("level", ["AUTOCOMMIT", "SERIALIZABLE"])
def test_threads_do_not_see_each_others_settings(
    mariadb: MariaDBServer, db: ServerlessMySQL, engine: Engine, table: str, level: str
) -> None:
    with engine.connect() as warm:  # the dialect's first-use checks, before the threads start
        warm.execute(text("SELECT 1"))
    checked_out, main_done = threading.Event(), threading.Event()
    seen: dict[str, Any] = {}

    def other_thread() -> None:
        with engine.execution_options(isolation_level=level).connect() as conn:
            if level == "AUTOCOMMIT":  # a statement, and no transaction (another level's would hold the client)
                conn.execute(text("SELECT 1"))
            checked_out.set()
            main_done.wait(10)
            conn.execute(text(f"INSERT INTO {table} (v) VALUES ('{level}')"))
            seen["in_transaction"] = db.in_transaction
            if level != "AUTOCOMMIT":
                conn.execute(text(f"SELECT * FROM {table}"))
                seen["level"] = trx_isolation(mariadb, conn)
                conn.commit()

    worker = threading.Thread(target=other_thread)
    worker.start()
    try:
        assert checked_out.wait(10)
        with engine.connect() as conn:  # this thread: a default connection, a transaction rolled back
            conn.execute(text(f"INSERT INTO {table} (v) VALUES ('undone')"))
            conn.execute(text(f"SELECT * FROM {table}"))
            assert trx_isolation(mariadb, conn) == "REPEATABLE READ"
            conn.rollback()
    finally:
        main_done.set()
        worker.join(10)
    # and the other thread kept its own setting
    assert seen == ({"in_transaction": False} if level == "AUTOCOMMIT" else {"in_transaction": True, "level": level})
    assert values(mariadb, table) == [level]


# ---------------------------------------------------------------------------------------------- the owner race
_LIBRARY = str(Path(serverless_mysql.__file__).parent)


class _PauseAt:
    """A tracer that stops its thread at the ``at``-th opcode it runs in the library's own code (counting all)."""

    def __init__(self, at: int | None, paused: threading.Event, resume: threading.Event) -> None:
        self.at, self.paused, self.resume = at, paused, resume
        self.count = 0
        self.where = ""

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Any:
        if not frame.f_code.co_filename.startswith(_LIBRARY):
            return None
        frame.f_trace_opcodes = True
        if event == "opcode":
            if self.count == self.at:
                self.where = f"{frame.f_code.co_name}, line {frame.f_lineno}, offset {frame.f_lasti}"
                self.paused.set()
                self.resume.wait(2)  # long enough for the other thread; never a deadlock if it cannot proceed
            self.count += 1
        return self


def test_a_stale_connection_ending_while_another_thread_begins_drops_no_commit(
    clean_serverless_env: None, mariadb: MariaDBServer, app_user: AppUser, table: str
) -> None:
    """Issue 18, suspected: a connection whose transaction the end of an invocation rolled back is ended (rollback,
    close) in one thread while another thread begins a transaction. Every interleaving is tried: the ending thread
    is stopped at each opcode it runs in the library, in turn, and the other thread begins there. The other
    thread's COMMIT must still be sent (and the client released)."""
    Item = model(table)
    stale: list[Session] = []

    @with_mysql(**app_user.connect_kwargs(), sigterm=False)
    def handler(event: Any, context: Any, db: ServerlessMySQL) -> None:
        session = Session(create_engine(db))
        session.add(Item(v="left open"))
        session.flush()
        stale.append(session)  # never closed: @with_mysql rolls its transaction back when the invocation ends

    def end_stale_concurrently(at: int | None, row: str) -> int:
        handler({}, Context())
        db = handler.db
        paused, resume = threading.Event(), threading.Event()
        tracer = _PauseAt(at, paused, resume)

        def end_stale() -> None:
            sys.settrace(tracer)
            try:
                stale.pop().close()  # ROLLBACK of a transaction the client no longer has: nothing is sent
            finally:
                sys.settrace(None)
                paused.set()

        ender = threading.Thread(target=end_stale)
        ender.start()
        assert paused.wait(10)
        conn = create_engine(db).connect()  # this thread begins while the other one is stopped
        conn.execute(text(f"INSERT INTO {table} (v) VALUES ('{row}')"))
        resume.set()
        ender.join(10)
        conn.commit()
        conn.close()
        if db.in_transaction:  # COMMIT was not sent, and this thread still holds the client: free it
            db._abandon_transaction()
            pytest.fail(f"the COMMIT of {row!r} was never sent (the ending thread stopped in {tracer.where})")
        return tracer.count

    opcodes = end_stale_concurrently(None, "unstopped")
    assert opcodes > 0
    for at in range(opcodes):
        end_stale_concurrently(at, f"at {at}")
    assert values(mariadb, table) == ["unstopped", *(f"at {at}" for at in range(opcodes))]


def test_the_connect_event_runs_per_stand_in_not_per_checkout(
    mariadb: MariaDBServer, db: ServerlessMySQL, engine: Engine, table: str
) -> None:
    made: list[object] = []
    event.listen(engine, "connect", lambda dbapi_conn, record: made.append(dbapi_conn))
    for _ in range(5):  # warm invocations: no setup statement of the user's runs again
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    assert len(made) == 1
    # A checked-in AUTOCOMMIT stand-in is handed out again reset: the next default connection begins transactions.
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as autocommit:
        autocommit.execute(text(f"INSERT INTO {table} (v) VALUES ('autocommitted')"))
        assert not db.in_transaction
    with engine.connect() as conn:
        conn.execute(text(f"INSERT INTO {table} (v) VALUES ('undone')"))
        assert db.in_transaction
        assert conn.get_isolation_level() != "AUTOCOMMIT"
        conn.rollback()
    # Two connections checked out at once: a second stand-in, made once.
    for _ in range(2):
        with engine.connect() as outer, engine.connect() as inner:  # one transaction at a time: no statement
            assert outer.connection.dbapi_connection is not inner.connection.dbapi_connection
    assert len(made) == 2
    assert values(mariadb, table) == ["autocommitted"]
