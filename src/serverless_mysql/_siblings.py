"""The connections of this environment's other worker processes (Lambda Managed Instances).

With ``AWS_LAMBDA_MAX_CONCURRENCY`` set, Lambda's runtime client forks that many worker processes; each imports
the handler and so has its own client and connection. While a worker's invocation runs (an HTTP call, some
computing) its connection sleeps between statements and looks, to another worker's housekeeping, exactly like the
connection of a frozen environment: a zombie to kill under pressure. So each worker writes the thread ids of its
connections into a directory private to the environment (named after the runtime process, the workers' parent),
and housekeeping never counts those as zombies. Outside a multi-concurrent environment this does nothing.

Entries are never removed: a closed connection's id stays listed until its worker reconnects, which costs
nothing (the server does not reuse thread ids until they wrap around).
"""

from __future__ import annotations

import logging
import os

__all__ = ["record", "thread_ids"]

logger = logging.getLogger(__name__)

MAX_CONCURRENCY_VAR = "AWS_LAMBDA_MAX_CONCURRENCY"


def _directory() -> str | None:
    if not os.environ.get(MAX_CONCURRENCY_VAR):
        return None
    base = os.environ.get("TMPDIR") or "/tmp"  # noqa: S108 - Lambda's /tmp is private to the environment
    return os.path.join(base, f"serverless-mysql-workers-{os.getppid()}")


def record(owner: int, thread_id: int) -> None:
    """Note that ``owner`` (a client of this process) now holds the connection ``thread_id``."""
    directory = _directory()
    if directory is None:
        return
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        name = os.path.join(directory, f"{os.getpid()}-{owner}")
        partial = f"{name}.new"
        with open(partial, "w", encoding="ascii") as fh:
            fh.write(str(thread_id))
        os.replace(partial, name)  # readers never see a half-written id
    except OSError as exc:
        logger.debug("worker connection not recorded: %s", exc, extra={"event": "siblings_error"})


def thread_ids() -> frozenset[int]:
    """The thread ids of every connection recorded by the workers of this environment (this one included)."""
    directory = _directory()
    if directory is None:
        return frozenset()
    ids: set[int] = set()
    try:
        names = os.listdir(directory)
    except OSError:
        return frozenset()
    for name in names:
        if name.endswith(".new"):
            continue
        try:
            with open(os.path.join(directory, name), encoding="ascii") as fh:
                ids.add(int(fh.read()))
        except (OSError, ValueError):
            continue
    return frozenset(ids)
