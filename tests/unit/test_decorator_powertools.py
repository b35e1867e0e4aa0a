"""``@with_mysql`` with Powertools' Logger, Tracer, Metrics and ``@event_source``, stacked in every order."""

from __future__ import annotations

import io
import itertools
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from serverless_mysql import ServerlessMySQL, with_mysql
from serverless_mysql.lambda_context import LocalLambdaContext
from tests.unit.test_decorator import FakeDB, clean_env, no_sigterm_install

__all__ = ["clean_env", "no_sigterm_install"]  # autouse fixtures, re-used here

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


@pytest.fixture
def powertools(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    monkeypatch.setenv("POWERTOOLS_DEV", "0")
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent, event_source

    logs = io.StringIO()
    # A fresh service name per test: Powertools Loggers of one service share their first handler.
    logger = Logger(service=f"orders-{uuid.uuid4().hex[:8]}", level="DEBUG", logger_handler=logging.StreamHandler(logs))
    tracer = Tracer(service="orders", disabled=True)
    metrics = Metrics(namespace="ServerlessMySQLTest", service="orders")
    metrics.clear_metrics()
    yield {
        "logger": logger,
        "tracer": tracer,
        "metrics": metrics,
        "event_source": event_source(data_class=APIGatewayProxyEvent),
        "APIGatewayProxyEvent": APIGatewayProxyEvent,
        "logs": logs,
    }
    metrics.clear_metrics()


API_EVENT = {"httpMethod": "GET", "path": "/orders/42", "pathParameters": {"id": "42"}, "body": None}


def emf_blobs(text: str) -> list[dict[str, Any]]:
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("{") and '"_aws"' in line:
            out.append(json.loads(line))
    return out


ORDERS = list(itertools.permutations(["with_mysql", "logger", "tracer", "metrics", "event_source"]))


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_every_order_works(
    order: tuple[str, ...], powertools: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """``order`` lists the decorators from the innermost (closest to the function) to the outermost."""
    fake = FakeDB()
    seen: list[tuple[Any, Any]] = []

    def handler(event: Any, context: Any, db: ServerlessMySQL) -> dict[str, Any]:
        seen.append((event, db))
        db.query("SELECT 1")
        powertools["logger"].info("handled")
        return {"statusCode": 200}

    decorators: dict[str, Decorator] = {
        "with_mysql": with_mysql(db=fake, metrics=powertools["metrics"]),
        "logger": powertools["logger"].inject_lambda_context,
        "tracer": powertools["tracer"].capture_lambda_handler,
        "metrics": powertools["metrics"].log_metrics,
        "event_source": powertools["event_source"],
    }
    decorated: Callable[..., Any] = handler
    for name in order:
        decorated = decorators[name](decorated)

    for invocation in range(2):
        context = LocalLambdaContext(timeout=3.0, function_name="orders")
        assert decorated(dict(API_EVENT), context) == {"statusCode": 200}
        event, db = seen[-1]
        assert db is fake
        assert isinstance(event, powertools["APIGatewayProxyEvent"])
        assert event.path == "/orders/42"
        # cleanup ran once per invocation, inside the deadline, which is then cleared
        assert fake.calls.count("end") == invocation + 1
        assert fake.deadlines[-1] is None
        assert fake.deadlines[-2] == pytest.approx(2.5, abs=0.2)
        out = capsys.readouterr().out
        blobs = emf_blobs(out)
        # our metrics are flushed with this invocation, by @metrics.log_metrics, whatever the order
        assert len(blobs) == 1, out
        names = {m["Name"] for m in blobs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
        assert {"ConnectRetries", "ZombiesKilled", "HousekeepingTime", "ConnectionUtilization"} <= names
        assert names >= {"ConnectionReused"}
        reused = blobs[0]["ConnectionReused"]
        assert (reused[0] if isinstance(reused, list) else reused) == (0 if invocation == 0 else 1)
        # the user's log line carries the Lambda context keys injected by the Logger
        lines = powertools["logs"].getvalue().splitlines()
        logs = [json.loads(line) for line in lines if '"message":"handled"' in line.replace(" ", "")]
        assert len(logs) == invocation + 1, lines
        assert logs[-1]["function_name"] == "orders"


@pytest.fixture
def restore_library_loggers() -> Iterator[None]:
    """copy_config_to_registered_loggers replaces handlers and turns propagation off: undo it afterwards."""
    saved = {
        name: (lg.handlers[:], lg.level, lg.propagate)
        for name, lg in logging.Logger.manager.loggerDict.items()
        if name.startswith("serverless_mysql") and isinstance(lg, logging.Logger)
    }
    yield
    for name, (handlers, level, propagate) in saved.items():
        lg = logging.getLogger(name)
        lg.handlers, lg.level, lg.propagate = handlers, level, propagate


def test_library_debug_logs_go_through_the_users_powertools_logger(
    powertools: dict[str, Any], restore_library_loggers: None
) -> None:
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

    logger: Logger = powertools["logger"]
    copy_config_to_registered_loggers(source_logger=logger, include={"serverless_mysql"})
    fake = FakeDB()

    @logger.inject_lambda_context
    @with_mysql(db=fake)
    def handler(event: Any, context: Any, db: ServerlessMySQL) -> int:
        return 1

    handler({}, LocalLambdaContext(function_name="orders"))
    records = [json.loads(line) for line in powertools["logs"].getvalue().splitlines() if line.startswith("{")]
    done = [r for r in records if r.get("event") == "invoke_done"]
    assert done, records
    assert done[0]["function_name"] == "orders"  # structured: Lambda context keys and our extra= fields
    assert done[0]["handler"].endswith("handler")
    assert "housekeeping_ms" in done[0]
