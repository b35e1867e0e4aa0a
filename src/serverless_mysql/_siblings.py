"""The connections of this environment's other worker processes (Lambda Managed Instances).

With ``AWS_LAMBDA_MAX_CONCURRENCY`` set, Lambda's runtime client forks that many worker processes; each imports
the handler and so has its own client and connection. While a worker's invocation runs (an HTTP call, some
computing) its connection sleeps between statements and looks, to another worker's housekeeping, exactly like the
connection of a frozen environment: a zombie to kill under pressure. So each worker writes the thread ids of its
connections into a directory private to the environment (named after the runtime process, the workers' parent),
and housekeeping never counts those as zombies. Outside a multi-concurrent environment this does nothing.

Each entry names the server its connection went to (the socket's peer address: after a failover, or for a reader
client, it is another server), and housekeeping reads only the ids of the server it measures.

The directory's name is predictable, so it is used only when it is a real directory of ours that no one else can
write or read (created 0700); entries are written with ``O_EXCL | O_NOFOLLOW`` under a fresh name, then renamed.
Anything else: no registry (logged at debug), which only means housekeeping does not know the siblings.

Entries are never removed: a closed connection's id stays listed until its worker reconnects, which costs
nothing (the server does not reuse thread ids until they wrap around).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat

__all__ = ["record", "thread_ids"]

logger = logging.getLogger(__name__)

MAX_CONCURRENCY_VAR = "AWS_LAMBDA_MAX_CONCURRENCY"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_MAX_ENTRY = 512  # bytes: a server address and an id


def _directory(*, create: bool) -> str | None:
    if not os.environ.get(MAX_CONCURRENCY_VAR):
        return None
    base = os.environ.get("TMPDIR") or "/tmp"  # noqa: S108 - checked below: ours, private
    path = os.path.join(base, f"serverless-mysql-workers-{os.getppid()}")
    try:
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(path, 0o700)
        info = os.lstat(path)
    except OSError as exc:
        logger.debug("worker registry unusable: %s", exc, extra={"event": "siblings_error"})
        return None
    uid = os.getuid() if hasattr(os, "getuid") else info.st_uid
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & 0o077:
        logger.debug(
            "worker registry not used: %s is not a private directory of this user",
            path,
            extra={"event": "siblings_unsafe"},
        )
        return None
    return path


def record(owner: int, thread_id: int, server: str) -> None:
    """Note that ``owner`` (a client of this process) now holds the connection ``thread_id`` on ``server``."""
    directory = _directory(create=True)
    if directory is None:
        return
    name = os.path.join(directory, f"{os.getpid()}-{owner}")
    partial = f"{name}.{os.urandom(6).hex()}.new"
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        try:
            os.write(fd, f"{server}\n{thread_id}".encode())
        finally:
            os.close(fd)
        os.replace(partial, name)  # readers never see a half-written entry
    except (OSError, UnicodeError) as exc:
        logger.debug("worker connection not recorded: %s", exc, extra={"event": "siblings_error"})
        with contextlib.suppress(OSError):
            os.unlink(partial)


def thread_ids(server: str) -> frozenset[int]:
    """The thread ids of every connection to ``server`` recorded by the workers of this environment (this one too)."""
    directory = _directory(create=False)
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
            fd = os.open(os.path.join(directory, name), os.O_RDONLY | _NOFOLLOW)
            try:
                text = os.read(fd, _MAX_ENTRY).decode()
            finally:
                os.close(fd)
            where, _, number = text.rpartition("\n")
            if where == server:
                ids.add(int(number))
        except (OSError, ValueError):
            continue
    return frozenset(ids)
