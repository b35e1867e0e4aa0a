"""No password, token or secret value appears in anything the library said during the whole fault suite.

``conftest.py`` captured every ``serverless_mysql`` log record at DEBUG (message, arguments, structured
``extra`` fields, tracebacks), and the tests handed it the exceptions (whole chains), reprs, configs and stats
they saw; every password, secret string and token the suite used is registered. This runs last.
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import LEAKS_KEY


def test_no_secret_in_any_log_repr_or_exception_message(request: pytest.FixtureRequest) -> None:
    sink = request.config.stash[LEAKS_KEY]
    if len(sink.texts) < 2 or not sink.secrets:
        pytest.skip("nothing was captured (partial run)")
    # The capture itself works: it saw the library's structured DEBUG events and exception texts.
    assert any("event='connect'" in text for _, text in sink.texts), "no connect log captured"
    assert any("Traceback" in text for _, text in sink.texts), "no exception captured"
    found = sink.leaks()
    assert not found, f"secrets leaked (test, secret prefix): {sorted(set(found))}"
