# app.py: deployed with the serverless-mysql layer (and AWS's Powertools layer, because of SECRET_ID)
from typing import Any

from serverless_mysql import ServerlessMySQL, with_mysql


@with_mysql  # configured by SERVERLESS_MYSQL_* environment variables
def handler(event: dict[str, Any], context: Any, db: ServerlessMySQL) -> dict[str, Any]:
    if event.get("action") == "create":
        with db.transaction() as tx:  # all items or none: commits on success, rolls back on any exception
            ids = [
                tx.query(
                    "INSERT INTO orders (customer, item, quantity) VALUES (%s, %s, %s)",
                    (event["customer"], line["item"], line["quantity"]),
                ).insert_id
                for line in event["items"]
            ]
        return {"status": 201, "ids": ids}
    rows = db.query("SELECT id, customer, item, quantity FROM orders WHERE id = %s", (event["id"],))
    if not rows:
        return {"status": 404}
    return {"status": 200, "order": rows[0]}  # rows are dicts
