"""What the client gives back: a statement's rows, and the client's counters (a leaf module: imports nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Rows", "Stats"]


class Rows(list[dict[str, Any]]):
    """The rows of a statement as dicts, plus ``affected_rows``, ``insert_id`` and ``columns``."""

    affected_rows: int = 0
    insert_id: int = 0
    columns: tuple[str, ...] = ()


@dataclass
class Stats:
    """Cumulative counters of one client (:meth:`ServerlessMySQL.get_stats` returns a copy)."""

    connects: int = 0
    connect_attempts: int = 0
    connect_retries: int = 0
    refused_full: int = 0
    refused_down: int = 0
    refused_read_only: int = 0  # connects of a writer client that reached a read-only server (retried)
    connect_wait_seconds: float = 0.0
    reconnects: int = 0
    queries: int = 0
    query_retries: int = 0
    read_only_reruns: int = 0  # statements a read-only server refused, run again on a writable one
    housekeeping_runs: int = 0
    housekeeping_statements: int = 0
    housekeeping_seconds: float = 0.0
    zombies_killed: int = 0
    kill_errors: int = 0
    housekeeping_errors: int = 0
    pressure_quits: int = 0
    age_quits: int = 0  # connections end() closed for max_connection_age
    idle_timeout_changes: int = 0
    rollbacks_on_end: int = 0
    last_utilization: float | None = None
