"""A custom ``backoff`` callable is asked once per retry that is then made (issue 19, item 2).

A user's callable may count, log or charge each call, as it can with serverless-mysql: it must not be asked for a
delay the client then does not wait, whether the retries are spent (``max_retries``) or the wait's time is.
The server stays full for the whole test; the clock is fake, so the count is exact.
"""

from __future__ import annotations

from typing import Any

import pytest

from serverless_mysql import DeadlineExceededError, RetriesExhaustedError, ServerlessMySQL
from serverless_mysql.pressure import FINAL_RESERVE
from tests.integration.conftest import ClientFactory, fill

pytestmark = pytest.mark.integration
Factory = Any


class Recorder:
    """A backoff callable that records its calls and always asks for ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls: list[tuple[int, float]] = []

    def __call__(self, attempt: int, previous: float) -> float:
        self.calls.append((attempt, previous))
        return self.delay


def full_server_client(
    server_factory: Factory, make_user: Factory, client_factory: ClientFactory, **options: Any
) -> tuple[ServerlessMySQL, list[Any]]:
    server = server_factory(max_connections=10)
    hog, app = make_user(server), make_user(server)
    held = fill(server, hog, 10)
    fake = [0.0]

    def sleep(seconds: float) -> None:
        fake[0] += seconds

    return client_factory(app, clock=lambda: fake[0], sleep=sleep, **options), held


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_a_backoff_callable_is_called_once_per_retry_made(
    server_factory: Factory, make_user: Factory, client_factory: ClientFactory, max_retries: int
) -> None:
    backoff = Recorder(0.1)
    db, held = full_server_client(
        server_factory, make_user, client_factory, backoff=backoff, max_retries=max_retries, max_connect_wait=60
    )
    with pytest.raises(RetriesExhaustedError):
        db.connect()
    stats = db.get_stats()
    assert stats.connect_attempts == max_retries + 1 and stats.connect_retries == max_retries
    assert backoff.calls == [(n, 0.0 if n == 1 else 0.1) for n in range(1, max_retries + 1)]
    for conn in held:
        conn.close()


def test_a_backoff_callable_is_not_called_when_the_time_ends_the_wait_first(
    server_factory: Factory, make_user: Factory, client_factory: ClientFactory
) -> None:
    backoff = Recorder(0.3)
    db, held = full_server_client(
        server_factory, make_user, client_factory, backoff=backoff, max_retries=100, max_connect_wait=1.0
    )
    with pytest.raises(DeadlineExceededError):
        db.connect()
    stats = db.get_stats()
    # Attempts at 0, 0.3, 0.6, 0.9 and a final one cut to land FINAL_RESERVE before the end; then the time is up.
    assert 1.0 - FINAL_RESERVE - 0.9 > 0
    assert stats.connect_attempts == 5 and stats.connect_retries == 4
    assert len(backoff.calls) == stats.connect_retries
    for conn in held:
        conn.close()
