from serverless_mysql import ServerlessMySQL

db = ServerlessMySQL(host="db.example.com", user="app", password="...", database="shop")
# [docs:cursor]
with db.cursor() as cur:
    cur.execute("INSERT INTO orders (customer, item) VALUES (%s, %s)", ("ada", "notebook"))
    order_id = cur.lastrowid
    cur.executemany("INSERT INTO orders (customer, item) VALUES (%s, %s)", [("bob", "pen"), ("eve", "ink")])
    cur.execute("SELECT id, item FROM orders WHERE customer = %s", ("ada",))
    rows = cur.fetchall()  # [{"id": 1, "item": "notebook"}]: dict rows, like db.query()
# [/docs:cursor]
db.end()
