"""The fault matrix's record: each matrix test reports what it observed; ``docs/RELIABILITY.md`` is rendered from it.

Matrix tests call ``matrix.record(...)`` (the ``matrix`` fixture) *before* asserting, with the outcome they
observed (``"ok"`` or the exception's class name) and the data properties they then verify through a separate
root connection. ``tests/faults/conftest.py`` adds each test's result (passed, failed, xfailed) and, after the
last matrix test, ``test_reliability_doc.py`` renders the document and compares it with the committed file: the
document cannot drift from what the suite really shows. Regenerate it with::

    SMYSQL_WRITE_RELIABILITY=1 .venv/bin/pytest tests/faults

Everything rendered is deterministic (no timings, no thread ids, no ports): a run either reproduces the file
byte for byte or something changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = ["FAULTS", "OPERATIONS", "Collector", "Observation", "render"]

DOC_PATH: Final = Path(__file__).resolve().parents[2] / "docs" / "RELIABILITY.md"
WRITE_ENV: Final = "SMYSQL_WRITE_RELIABILITY"

# Row and column order of the document. A fault or operation missing here is a programming error in a test.
FAULTS: Final[dict[str, str]] = {
    "blackhole": "Network blackhole: the proxy stops forwarding in both directions, no RST, sockets stay open",
    "reset": "TCP reset: the proxy aborts every connection with RST on both sides",
    "delay": "Latency: the proxy holds every packet 0.2 s (well inside every timeout)",
    "cut": "Cut mid-stream: the proxy aborts the connection after N more bytes from the server "
    "(mid result set; for writes and COMMIT right after the statement reached the server)",
    "silent_drop": "Silent drop of the idle connection only (a NAT or conntrack entry expired): its packets vanish, "
    "new connections work",
    "crash": "Server crash (SIGKILL) and restart on the same datadir and port",
    "kill": "KILL of the client's connection from another session, while it is idle",
    "kill_busy": "KILL of the client's connection from another session, while a statement runs",
    "wait_timeout": "The server's wait_timeout closes the idle connection (as after a Lambda freeze)",
    "saturation": "max_connections saturated by another account's idle connections",
    "rotation": "Password rotation: ALTER USER changes the password (and the secret) between invocations",
    "secret_not_found": "Secrets Manager: the secret does not exist (moto)",
    "secret_access_denied": "Secrets Manager: AccessDeniedException on GetSecretValue",
    "secret_throttled": "Secrets Manager: ThrottlingException on every GetSecretValue (botocore retries it)",
    "secret_unreachable": "Secrets Manager endpoint unreachable: it accepts TCP and never answers (no moto)",
}
OPERATIONS: Final[dict[str, str]] = {
    "connect": "connect",
    "read": "read",
    "write": "write",
    "transaction": "transaction",
    "end": "end()",
    "quit": "quit()",
    "decorator": "decorator invocation",
}
_STATUS_TEXT: Final = {
    "passed": "as documented",
    "xfailed": "**KNOWN BUG** (strict xfail)",
    "xpassed": "**XPASS** (bug fixed? remove the xfail)",
    "failed": "**FAILED**",
    "skipped": "skipped",
}


@dataclass
class Observation:
    """One cell of the matrix: what a test did, what it observed and what it verified."""

    fault: str
    operation: str
    scenario: str
    expected: str
    outcome: str
    checks: tuple[str, ...]
    nodeid: str
    status: str = "running"
    note: str = ""

    @property
    def key(self) -> tuple[int, int, str]:
        return list(FAULTS).index(self.fault), list(OPERATIONS).index(self.operation), self.nodeid


@dataclass
class Collector:
    """Session-wide store of observations (kept in ``config.stash`` by the conftest)."""

    observations: dict[str, Observation] = field(default_factory=dict)
    matrix_nodeids: set[str] = field(default_factory=set)
    results: dict[str, str] = field(default_factory=dict)  # nodeid -> passed/failed/xfailed/xpassed/skipped
    incomplete: list[str] = field(default_factory=list)

    def add(self, obs: Observation) -> None:
        if obs.fault not in FAULTS:
            raise ValueError(f"unknown fault {obs.fault!r}; add it to tests/faults/reliability.py FAULTS")
        if obs.operation not in OPERATIONS:
            raise ValueError(f"unknown operation {obs.operation!r}")
        if obs.nodeid in self.observations:
            raise ValueError(f"{obs.nodeid} recorded twice")
        self.observations[obs.nodeid] = obs

    def set_status(self, nodeid: str, status: str) -> None:
        obs = self.observations.get(nodeid)
        if obs is not None:
            obs.status = status


def _cell(obs: Observation) -> str:
    mark = {"passed": "", "xfailed": " ⚠ bug", "failed": " ✘", "xpassed": " ✘", "skipped": " (skipped)"}.get(
        obs.status, " ?"
    )
    return f"{obs.outcome}{mark}"


def render(observations: Iterable[Observation]) -> str:
    """The whole ``docs/RELIABILITY.md`` text for these observations."""
    obs = sorted(observations, key=lambda o: o.key)
    lines = [
        "# Reliability: the fault-injection matrix",
        "",
        "<!-- GENERATED from the test-suite by tests/faults/test_reliability_doc.py: do not edit by hand.",
        "     A test fails when this file differs from what the suite observes. Regenerate with",
        "     SMYSQL_WRITE_RELIABILITY=1 .venv/bin/pytest tests/faults -->",
        "",
        "Every cell below is one test in `tests/faults/` that injects a real fault between `ServerlessMySQL` (or",
        "`@with_mysql`) and a real MariaDB server, runs one operation, records the outcome it observed, and then",
        "checks the data through a **separate root connection**:",
        "",
        "- every write is applied exactly once or not at all (never twice);",
        "- every transaction is all or nothing;",
        "- the account's connection count is back to its baseline afterwards (nothing leaked);",
        "- nothing hangs: every operation finishes within its connect/read timeouts and the deadline set with",
        "  `set_deadline()` (or the Lambda context's remaining time), with pytest-timeout as a backstop.",
        "",
        "Outcome `ok` means the operation succeeded, with transparent recovery where the fault required it; any",
        "other outcome is the documented exception class from `serverless_mysql.errors`. A cell marked ⚠ is a",
        "known library bug: the test is a strict xfail and the details table shows expected vs observed.",
        "",
        "## Summary",
        "",
    ]
    ops_present = [op for op in OPERATIONS if any(o.operation == op for o in obs)]
    faults_present = [f for f in FAULTS if any(o.fault == f for o in obs)]
    lines.append("| Fault | " + " | ".join(OPERATIONS[op] for op in ops_present) + " |")
    lines.append("|---|" + "---|" * len(ops_present))
    for fault in faults_present:
        cells = []
        for op in ops_present:
            here = [o for o in obs if o.fault == fault and o.operation == op]
            cells.append("<br>".join(_cell(o) for o in here) if here else "n/a")
        lines.append(f"| {fault} | " + " | ".join(cells) + " |")
    counts: dict[str, int] = {}
    for o in obs:
        counts[o.status] = counts.get(o.status, 0) + 1
    lines += [
        "",
        f"{len(obs)} cells: " + ", ".join(f"{n} {_STATUS_TEXT.get(s, s)}" for s, n in sorted(counts.items())) + ".",
        "`n/a`: the combination is meaningless (e.g. a Secrets Manager failure cannot affect a connection that",
        "is already open) or is covered by a neighbouring cell.",
        "",
        "## Details",
    ]
    for fault in faults_present:
        lines += ["", f"### {fault}", "", FAULTS[fault] + ".", ""]
        lines.append("| Operation | Scenario | Expected | Observed | Verified afterwards | Status |")
        lines.append("|---|---|---|---|---|---|")
        for o in (o for o in obs if o.fault == fault):
            checks = "; ".join(o.checks) if o.checks else "-"
            status = _STATUS_TEXT.get(o.status, o.status)
            if o.note:
                status += f": {o.note}"
            lines.append(
                f"| {OPERATIONS[o.operation]} | {o.scenario} | {o.expected} | {o.outcome} | {checks} | {status} |"
            )
    lines.append("")
    return "\n".join(lines)
