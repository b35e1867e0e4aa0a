"""A custom ``backoff`` callable is asked once per retry that is then made (issue 19, item 2).

A user's callable may count, log or charge each call, as it can with serverless-mysql: it must not be asked for a
delay the client then does not wait, whether the retries are spent (``max_retries``) or the wait's time is.
The server stays full for the whole test; the clock is fake, so the count is exact.
"""

from __future__ import annotations

import pytest

from serverless_mysql import DeadlineExceededError, RetriesExhaustedError
from serverless_mysql.pressure import FINAL_RESERVE
from tests.integration.conftest import ClientFactory, FullServer, fake_clock_client

pytestmark = pytest.mark.integration


class Recorder:
    """A backoff callable that records its calls and always asks for ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls: list[tuple[int, float]] = []

    def __call__(self, attempt: int, previous: float) -> float:
        self.calls.append((attempt, previous))
        return self.delay


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_a_backoff_callable_is_called_once_per_retry_made(
    full_server: FullServer, client_factory: ClientFactory, max_retries: int
) -> None:
    backoff = Recorder(0.1)
    db = fake_clock_client(
        client_factory, full_server.app, backoff=backoff, max_retries=max_retries, max_connect_wait=60
    )
    with pytest.raises(RetriesExhaustedError):
        db.connect()
    stats = db.get_stats()
    assert stats.connect_attempts == max_retries + 1 and stats.connect_retries == max_retries
    assert backoff.calls == [(n, 0.0 if n == 1 else 0.1) for n in range(1, max_retries + 1)]


def test_a_backoff_callable_is_not_called_when_the_time_ends_the_wait_first(
    full_server: FullServer, client_factory: ClientFactory
) -> None:
    backoff = Recorder(0.3)
    db = fake_clock_client(client_factory, full_server.app, backoff=backoff, max_retries=100, max_connect_wait=1.0)
    with pytest.raises(DeadlineExceededError):
        db.connect()
    stats = db.get_stats()
    # Attempts at 0, 0.3, 0.6, 0.9 and a final one cut to land FINAL_RESERVE before the end; then the time is up.
    assert 1.0 - FINAL_RESERVE - 0.9 > 0
    assert stats.connect_attempts == 5 and stats.connect_retries == 4
    assert len(backoff.calls) == stats.connect_retries
