from typing import Any

from serverless_mysql import ServerlessMySQL, with_mysql


# The secret's host is the cluster endpoint (shop.cluster-abc.eu-west-1.rds.amazonaws.com): server_role "auto"
# resolves to "writer" and reader_host="auto" to shop.cluster-ro-abc.eu-west-1.rds.amazonaws.com.
@with_mysql(secret_id="prod/shop/mysql", reader_host="auto", max_connection_age=300)
def handler(event: dict[str, Any], context: Any, db: ServerlessMySQL, reader: ServerlessMySQL) -> dict[str, Any]:
    db.query("INSERT INTO orders (item) VALUES (%s)", (event["item"],))  # on the writer, through any failover
    recent = reader.query("SELECT item FROM orders ORDER BY id DESC LIMIT 10")  # on a replica (may lag)
    return {"recent": [row["item"] for row in recent]}


# Not an Aurora endpoint name (a DNS alias, an RDS primary with replicas): say the role.
primary = ServerlessMySQL(host="mysql-primary.internal", server_role="writer", user="app", password="...")
