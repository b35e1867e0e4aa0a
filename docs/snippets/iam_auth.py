from typing import Any

from serverless_mysql import ServerlessMySQL, with_mysql


@with_mysql(
    iam_auth=True,
    host="shop.proxy-abc123.eu-west-1.rds.amazonaws.com",
    user="app_iam",  # CREATE USER app_iam IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS'
    database="shop",
    connect_args={"ssl_ca": "/opt/python/global-bundle.pem"},
)
def handler(event: dict[str, Any], context: Any, db: ServerlessMySQL) -> None: ...
