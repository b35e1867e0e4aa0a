import os

os.environ.setdefault("SERVERLESS_MYSQL_URL", "mysql://app:pw@127.0.0.1:3306/shop")  # instead of SECRET_ID

import app  # after the variables: the client is created when the module is imported

from serverless_mysql.lambda_context import LocalLambdaContext

print(app.handler({"id": 1}, LocalLambdaContext(timeout=3.0)))  # with context=None there is no deadline
