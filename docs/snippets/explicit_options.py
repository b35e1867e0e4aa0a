from typing import Any

from serverless_mysql import ServerlessMySQL, with_mysql


@with_mysql(secret_id="prod/shop/mysql", database="shop", deadline_margin=0.5, after="end")
def handler(event: dict[str, Any], context: Any, db: ServerlessMySQL) -> None: ...


shop_db = ServerlessMySQL(host="db.internal", user="app", password="...", database="shop")


@with_mysql(db=shop_db)  # no client options here: they belong to ServerlessMySQL(...)
def other_handler(event: dict[str, Any], context: Any, db: ServerlessMySQL) -> None: ...
