"""docs/RELIABILITY.md is generated from the fault matrix run; this test fails when the committed file differs.

It runs after every other test (``conftest.py`` moves it to the end). It compares only after a complete matrix
run: every ``test_matrix_*.py`` module collected, nothing deselected or skipped, no matrix test failed (a failed
matrix test already fails the run, and its cell could not be rendered truthfully).
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from tests.faults.conftest import COLLECTOR_KEY
from tests.faults.reliability import DOC_PATH, WRITE_ENV, render

HERE = Path(__file__).resolve().parent


def test_reliability_doc_matches_the_matrix_run(request: pytest.FixtureRequest) -> None:
    collector = request.config.stash[COLLECTOR_KEY]
    modules = {p.name for p in HERE.glob("test_matrix_*.py")}
    collected = {Path(nodeid.split("::")[0]).name for nodeid in collector.matrix_nodeids}
    if not modules:
        pytest.fail("no tests/faults/test_matrix_*.py module exists")
    if missing := sorted(modules - collected):
        pytest.skip(f"partial run: matrix modules not collected: {missing}")
    if collector.incomplete:
        pytest.skip(f"partial run: {len(collector.incomplete)} matrix tests deselected")
    unfinished = sorted(n for n in collector.matrix_nodeids if collector.results.get(n) is None)
    if unfinished:
        pytest.skip(f"partial run: {len(unfinished)} matrix tests did not run (e.g. {unfinished[0]})")
    skipped = sorted(n for n, s in collector.results.items() if s == "skipped")
    if skipped:
        pytest.skip(f"{len(skipped)} matrix tests were skipped (e.g. {skipped[0]}); the document needs all of them")
    failed = sorted(n for n, s in collector.results.items() if s in ("failed", "xpassed"))
    if failed:
        pytest.skip(f"{len(failed)} matrix tests failed (e.g. {failed[0]}); fix them, then compare the document")
    unrecorded = sorted(collector.matrix_nodeids - set(collector.observations))
    assert not unrecorded, f"matrix tests that never called matrix(...): {unrecorded}"

    produced = render(collector.observations.values())
    committed = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
    if produced == committed:
        return
    if os.environ.get(WRITE_ENV) == "1":
        DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
        DOC_PATH.write_text(produced, encoding="utf-8")
        return
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            produced.splitlines(keepends=True),
            "docs/RELIABILITY.md (committed)",
            "docs/RELIABILITY.md (this run)",
        )
    )
    pytest.fail(
        f"docs/RELIABILITY.md differs from what the fault matrix observed. If the change is intended, regenerate "
        f"it with {WRITE_ENV}=1 .venv/bin/pytest tests/faults and commit it.\n{diff}"
    )
