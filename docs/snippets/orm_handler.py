from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, String, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from serverless_mysql import ServerlessMySQL, with_mysql
from serverless_mysql.sqlalchemy import create_engine


class Base(DeclarativeBase):
    """The base of the mapped classes."""


class Order(Base):
    """A row of `orders` (examples/schema.sql)."""

    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    customer: Mapped[str] = mapped_column(String(64))
    item: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP(3)"))


@with_mysql  # configured by SERVERLESS_MYSQL_* variables, as for any @with_mysql handler
def handler(event: dict[str, Any], context: Any, db: ServerlessMySQL) -> dict[str, Any]:
    engine = create_engine(db)  # the same engine on every call: one per client
    if event["action"] == "create":
        order = Order(customer=event["customer"], item=event["item"], quantity=event.get("quantity", 1))
        with Session(engine, expire_on_commit=False) as session, session.begin():  # one transaction
            session.add(order)
        return {"status": 201, "id": order.id}
    reads = engine.execution_options(isolation_level="AUTOCOMMIT")  # a lone SELECT needs no transaction
    with Session(reads) as session:
        if event["action"] == "get":
            found = session.get(Order, event["id"])
            return {"status": 200, "item": found.item} if found else {"status": 404}
        query = select(Order).where(Order.customer == event["customer"]).order_by(Order.id.desc()).limit(10)
        return {"status": 200, "ids": [o.id for o in session.scalars(query)]}
