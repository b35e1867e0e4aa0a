"""What :mod:`~serverless_mysql.secrets` and its provider share (a leaf module, so neither imports the other back)."""

from __future__ import annotations

__all__ = ["MIN_FETCH_TIME", "DeadlineReachedError"]

MIN_FETCH_TIME = 0.05
"""Seconds: with less left before the client's deadline, a fetch is not tried (DeadlineExceededError)."""


class DeadlineReachedError(Exception):
    """Raised inside the provider when no time is left to fetch; reported as DeadlineExceededError."""
