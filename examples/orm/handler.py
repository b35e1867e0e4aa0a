"""Example Lambda function: the orders API of ``examples/handler.py``, written with the SQLAlchemy ORM.

``template.yaml`` deploys it as ``OrmExampleFunction`` (``Handler: handler.handler``) next to ``ExampleFunction``:
same layers, same ``SERVERLESS_MYSQL_*`` variables, same table (``examples/schema.sql``) and the same events and
answers (see ``examples/README.md``). SQLAlchemy is not in the serverless-mysql layer: this function ships it
itself (``requirements.txt``, installed by ``Makefile`` when ``sam build`` runs).

The engine is ``serverless_mysql.sqlalchemy.create_engine(db)``: its only connection is the client's managed
connection, so ``@with_mysql``'s deadline, reconnects and housekeeping apply to the ORM too. Statements per
invocation (docs/sqlalchemy.md): ``create`` is one transaction (START TRANSACTION, INSERT, COMMIT); ``get`` and
``list`` read with ``isolation_level="AUTOCOMMIT"``, so they send their one SELECT and nothing else.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, DateTime, Integer, String, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from serverless_mysql import with_mysql
from serverless_mysql.sqlalchemy import create_engine

if TYPE_CHECKING:
    from serverless_mysql import ServerlessMySQL

MAX_TEXT = 64  # VARCHAR(64) in schema.sql
MAX_QUANTITY = 1000
MAX_LIST = 100


class Base(DeclarativeBase):
    """The declarative base of this function's mapped classes."""


class Order(Base):
    """A row of ``orders`` (examples/schema.sql)."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer: Mapped[str] = mapped_column(String(MAX_TEXT))
    item: Mapped[str] = mapped_column(String(MAX_TEXT))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP(3)"))

    def as_json(self) -> dict[str, Any]:
        """The order as Lambda can serialize it (datetimes as ISO 8601 strings)."""
        return {
            "id": self.id,
            "customer": self.customer,
            "item": self.item,
            "quantity": self.quantity,
            "created_at": self.created_at.isoformat(),
        }


class BadRequest(ValueError):
    """The event is not a valid request; answered with status 400."""


def _positive_int(event: dict[str, Any], key: str, *, default: int | None = None, maximum: int | None = None) -> int:
    value = event.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"{key!r} must be a positive integer")
    if maximum is not None and value > maximum:
        raise BadRequest(f"{key!r} must be at most {maximum}")
    return value


def _text(event: dict[str, Any], key: str) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise BadRequest(f"{key!r} must be a non-empty string of at most {MAX_TEXT} characters")
    return value.strip()


@with_mysql
def handler(event: dict[str, Any], context: Any, db: ServerlessMySQL) -> dict[str, Any]:
    """Serve one request of the orders API, through the ORM."""
    engine = create_engine(db)  # one engine per client: after the first invocation, a lookup
    reads = engine.execution_options(isolation_level="AUTOCOMMIT")  # one SELECT, no transaction around it
    try:
        if not isinstance(event, dict):
            raise BadRequest("the event must be a JSON object")
        action = event.get("action", "get")
        if action == "get":
            order_id = _positive_int(event, "id")
            with Session(reads) as session:
                order = session.get(Order, order_id)
                if order is None:
                    return {"status": 404, "error": f"order {order_id} not found"}
                return {"status": 200, "order": order.as_json()}
        if action == "create":
            order = Order(
                customer=_text(event, "customer"),
                item=_text(event, "item"),
                quantity=_positive_int(event, "quantity", default=1, maximum=MAX_QUANTITY),
            )
            # One transaction: the unit of work commits at the end of the block, or rolls back on any error.
            with Session(engine, expire_on_commit=False) as session, session.begin():
                session.add(order)
            return {"status": 201, "id": order.id}
        if action == "list":
            customer = _text(event, "customer")
            limit = _positive_int(event, "limit", default=10, maximum=MAX_LIST)
            query = select(Order).where(Order.customer == customer).order_by(Order.id.desc()).limit(limit)
            with Session(reads) as session:
                return {"status": 200, "orders": [o.as_json() for o in session.scalars(query)]}
        raise BadRequest(f"unknown action {action!r}; use 'get', 'create' or 'list'")
    except BadRequest as exc:
        return {"status": 400, "error": str(exc)}
