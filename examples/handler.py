"""Example Lambda function: a tiny orders API on MySQL/MariaDB through ``@with_mysql``.

``template.yaml`` deploys it as ``ExampleFunction`` (``Handler: handler.handler``) with the serverless-mysql layer,
AWS's Powertools layer and these environment variables (every option has one, ``SERVERLESS_MYSQL_<OPTION>``):

- ``SERVERLESS_MYSQL_SECRET_ID``: the RDS-format secret (username, password, host, port, dbname).
- ``SERVERLESS_MYSQL_HOST`` / ``SERVERLESS_MYSQL_DATABASE``: optional, beat the secret's host / dbname
  (e.g. an RDS Proxy endpoint, or a secret that holds only username and password).
- ``SERVERLESS_MYSQL_CONN_UTILIZATION``: share of the server's connections this fleet may use.

The table comes from ``examples/schema.sql`` (load it once; the handler never runs DDL). Events, as sent by
``sam remote invoke --event-file examples/events/<name>.json`` or ``aws lambda invoke``::

    {"action": "get", "id": 42}
        -> {"status": 200, "order": {"id": 42, "customer": ..., "item": ..., "quantity": ..., "created_at": ...}}
        -> {"status": 404, "error": "order 42 not found"}
    {"action": "create", "customer": "ada", "item": "notebook", "quantity": 2}
        -> {"status": 201, "id": 43}
    {"action": "list", "customer": "ada", "limit": 10}
        -> {"status": 200, "orders": [...]}  (newest first)
    anything invalid
        -> {"status": 400, "error": "..."}  (no database round trip at all)

Each valid invocation runs exactly one statement; the decorator adds its housekeeping after it (``end()``: at
most one extra statement, and only every so often), and the connection stays open for the next invocation of
this execution environment.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from serverless_mysql import with_mysql

if TYPE_CHECKING:
    from serverless_mysql import ServerlessMySQL

MAX_TEXT = 64  # VARCHAR(64) in schema.sql
MAX_QUANTITY = 1000
MAX_LIST = 100

_COLUMNS = "id, customer, item, quantity, created_at"


class BadRequest(ValueError):
    """The event is not a valid request; answered with status 400."""


def _positive_int(event: dict[str, Any], key: str, *, default: int | None = None, maximum: int | None = None) -> int:
    value = event.get(key, default)
    # bool is an int subclass: {"id": true} is not an id.
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


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    # Lambda serializes the return value with json: datetimes become ISO 8601 strings.
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


@with_mysql
def handler(event: dict[str, Any], context: Any, db: ServerlessMySQL) -> dict[str, Any]:
    """Serve one request of the orders API (see the module docstring for the events)."""
    try:
        if not isinstance(event, dict):
            raise BadRequest("the event must be a JSON object")
        action = event.get("action", "get")
        if action == "get":
            order_id = _positive_int(event, "id")
            rows = db.query(f"SELECT {_COLUMNS} FROM orders WHERE id = %s", (order_id,))
            if not rows:
                return {"status": 404, "error": f"order {order_id} not found"}
            return {"status": 200, "order": _jsonable(rows[0])}
        if action == "create":
            values = (_text(event, "customer"), _text(event, "item"))
            quantity = _positive_int(event, "quantity", default=1, maximum=MAX_QUANTITY)
            result = db.query("INSERT INTO orders (customer, item, quantity) VALUES (%s, %s, %s)", (*values, quantity))
            return {"status": 201, "id": result.insert_id}
        if action == "list":
            customer = _text(event, "customer")
            limit = _positive_int(event, "limit", default=10, maximum=MAX_LIST)
            rows = db.query(
                f"SELECT {_COLUMNS} FROM orders WHERE customer = %s ORDER BY id DESC LIMIT %s", (customer, limit)
            )
            return {"status": 200, "orders": [_jsonable(row) for row in rows]}
        raise BadRequest(f"unknown action {action!r}; use 'get', 'create' or 'list'")
    except BadRequest as exc:
        return {"status": 400, "error": str(exc)}
