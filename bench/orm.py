"""Issue 13: the fleet's handler through SQLAlchemy's ORM on ``serverless_mysql.sqlalchemy.create_engine(db)``.

* :class:`WithMySQLOrm` (strategy ``with_mysql-orm``): ``@with_mysql`` as the ``with_mysql`` strategy, but the
  handler runs the event's statement in a ``Session`` (SQLAlchemy's default: a transaction around it), so the
  fleet report shows its statements per invocation next to the plain client's.
* ``python -m bench.orm``: per-invocation cost of the ORM path against the plain client on a warm connection
  (interleaved batches, medians), and the statements the server sees per invocation, by pattern.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from bench import REPO_ROOT
from bench.fleet import Env, FakeContext
from bench.strategies import PYMYSQL_CONNECT_ARGS, DbTarget, WithMySQL, _sql, _WithMySQLEnv
from serverless_mysql.sqlalchemy import ServerlessMySQLDialect, create_engine

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

__all__ = ["WithMySQLOrm", "orm_overhead"]

_PLACEHOLDER = re.compile(r"%s")


def _named(event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The event's ``%s`` statement as SQLAlchemy ``text()`` with ``:p0, :p1, ...`` parameters."""
    sql, args = _sql(event)
    counter = iter(range(len(args)))
    return _PLACEHOLDER.sub(lambda _: f":p{next(counter)}", sql), {f"p{i}": v for i, v in enumerate(args)}


class WithMySQLOrm(WithMySQL):
    """``@with_mysql`` with the handler's statement run through a SQLAlchemy ``Session`` on ``create_engine(db)``."""

    name = "with_mysql-orm"

    def __init__(self, target: DbTarget, options: dict[str, Any] | None = None) -> None:
        super().__init__(target, options)
        # On Lambda each environment imports and warms SQLAlchemy in its own init phase. Here hundreds of
        # environments share a host process: done at the first invocation, SQLAlchemy's lazy imports and first
        # compilation (a few hundred ms) would stall every environment of the host under load.
        text("SELECT 1").compile(dialect=ServerlessMySQLDialect())
        Session().close()

    def new_env(self, env_id: int) -> Env:
        holder: list[_WithMySQLEnv] = []

        def handler(event: dict[str, Any], context: Any, db: Any) -> int:
            holder[0].db = db
            sql, params = _named(event)
            with Session(create_engine(db)) as session:
                return len(session.execute(text(sql), params).all())

        decorated = self._with_mysql(**self.target.kwargs(), **self.options)(handler)
        env = _WithMySQLEnv(decorated)
        holder.append(env)
        with self._lock:
            self.envs.append(env)
        return env


# ---- micro measurement ------------------------------------------------------------------------------------------


class _Base(DeclarativeBase):
    pass


class Item(_Base):
    """The row the micro measurement reads."""

    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    v: Mapped[str] = mapped_column(String(64))


def _questions(db: Any) -> int:
    """The session's Questions counter, read on the client's own connection (the read counts once it is done)."""
    with db.get_client().cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Questions'")
        return int(cur.fetchone()["Value"])


def orm_overhead(batches: int, per_batch: int) -> dict[str, Any]:
    """Median wall and CPU microseconds per decorated invocation (warm connection, ``end()`` included) and
    statements per invocation: ``db.query`` against ``Session.get`` (default and AUTOCOMMIT) and a Core read."""
    from harness.mariadb import MariaDBServer
    from serverless_mysql import with_mysql

    with MariaDBServer(max_connections=20) as server:
        server.execute(f"CREATE TABLE {server.database}.items (id INT PRIMARY KEY, v VARCHAR(64))")
        server.execute(f"INSERT INTO {server.database}.items VALUES (1, 'one')")
        user = server.create_user()
        options = {**user.connect_kwargs(), "connect_args": dict(PYMYSQL_CONNECT_ARGS), "sigterm": False}

        def plain(event: Any, context: Any, db: Any) -> Any:
            return db.query("SELECT id, v FROM items WHERE id = %s", (1,))[0]["v"]

        def orm(event: Any, context: Any, db: Any) -> Any:
            with Session(create_engine(db)) as session:
                item = session.get(Item, 1)
                return item.v if item else None

        def orm_autocommit(event: Any, context: Any, db: Any) -> Any:
            reads = create_engine(db).execution_options(isolation_level="AUTOCOMMIT")
            with Session(reads) as session:
                item = session.get(Item, 1)
                return item.v if item else None

        def core(event: Any, context: Any, db: Any) -> Any:
            with create_engine(db).connect() as conn:
                return conn.execute(text("SELECT id, v FROM items WHERE id = :id"), {"id": 1}).one().v

        handlers: dict[str, Callable[..., Any]] = {
            name: with_mysql(**options)(fn)
            for name, fn in (("plain", plain), ("orm", orm), ("orm_autocommit", orm_autocommit), ("core", core))
        }
        statements: dict[str, float] = {}
        for name, handler in handlers.items():
            handler({}, FakeContext(60))  # connect, initialize the dialect
            db = handler.db  # type: ignore[attr-defined]
            n = 200
            before = _questions(db)
            for _ in range(n):
                handler({}, FakeContext(60))
            # minus the second read of the counter; housekeeping statements (about 1 in 10 end()s) included
            statements[name] = (_questions(db) - before - 1) / n
        timings: dict[str, list[float]] = {name: [] for name in handlers}
        cpu: dict[str, list[float]] = {name: [] for name in handlers}
        for _ in range(batches):
            for name, handler in handlers.items():
                t, c = time.perf_counter(), time.process_time()
                for _ in range(per_batch):
                    handler({}, FakeContext(60))
                timings[name].append((time.perf_counter() - t) / per_batch * 1e6)
                cpu[name].append((time.process_time() - c) / per_batch * 1e6)
        for handler in handlers.values():
            handler.db.quit()  # type: ignore[attr-defined]
    med = {name: statistics.median(values) for name, values in timings.items()}
    cpu_med = {name: statistics.median(values) for name, values in cpu.items()}
    return {
        "batches": batches,
        "per_batch": per_batch,
        "median_wall_us": med,
        "median_cpu_us": cpu_med,  # this process only: the client's and SQLAlchemy's Python work
        "wall_overhead_vs_plain_us": {name: med[name] - med["plain"] for name in med if name != "plain"},
        "cpu_overhead_vs_plain_us": {name: cpu_med[name] - cpu_med["plain"] for name in med if name != "plain"},
        "statements_per_invocation": statements,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--per-batch", type=int, default=200)
    args = parser.parse_args(argv)
    print(json.dumps(orm_overhead(args.batches, args.per_batch), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
