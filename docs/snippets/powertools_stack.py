from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.data_classes import SQSEvent, event_source

from serverless_mysql import ServerlessMySQL, with_mysql

logger, tracer, metrics = Logger(), Tracer(), Metrics(namespace="Shop")
copy_config_to_registered_loggers(source_logger=logger, include={"serverless_mysql"})  # our logs as JSON


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=SQSEvent)
@with_mysql(metrics=metrics)
def handler(event: SQSEvent, context: Any, db: ServerlessMySQL) -> None:
    for record in event.records:
        db.query("INSERT INTO inbox (body) VALUES (%s)", (record.body,))
