from serverless_mysql import Rows, ServerlessMySQL


def place_order(db: ServerlessMySQL, item: str) -> int:
    with db.transaction() as tx:  # commits on success, rolls back on any exception
        order = tx.query("INSERT INTO orders (item) VALUES (%s)", (item,))
        tx.query("UPDATE stock SET n = n - 1 WHERE item = %s", (item,))
    return order.insert_id


def place_order_chain(db: ServerlessMySQL, item: str) -> list[Rows]:
    return (  # serverless-mysql's chain form: nothing runs before commit()
        db.transaction()
        .query("INSERT INTO orders (item) VALUES (%s)", (item,))
        .query(lambda last, results: ("INSERT INTO audit (order_id) VALUES (%s)", (last.insert_id,)))
        .query(lambda last, results: None)  # returning None skips a step (its result is [])
        .rollback(lambda error: print("rolled back:", error))
        .commit()  # a list with the rows of every statement
    )
