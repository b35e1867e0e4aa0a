from serverless_mysql import ServerlessMySQL

db = ServerlessMySQL(host="db.example.com", user="app", password="...", database="shop")  # nothing connects yet

rows = db.query("SELECT id, name FROM items WHERE id = %s", (42,))  # connects on first use
rows[0]["name"]  # rows are dicts
created = db.query("INSERT INTO items (name) VALUES (%(name)s)", {"name": "book"})
print(created.insert_id, created.affected_rows)  # the list carries these too
db.end()  # housekeeping; the connection stays open
