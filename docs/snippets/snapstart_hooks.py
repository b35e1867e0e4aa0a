from snapshot_restore_py import register_after_restore, register_before_snapshot

from serverless_mysql import ServerlessMySQL

db = ServerlessMySQL(host="db.internal", user="app", password="...", database="shop")
register_before_snapshot(db.quit)
register_after_restore(db.reseed)
