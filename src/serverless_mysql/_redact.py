"""Secrets hidden from what ``get_config()`` shows: every entry whose key names one, at any depth."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["masked"]

_SECRET_KEYS = ("password", "passwd", "key", "secret", "token")


def masked(value: object, key: str = "") -> object:
    """``value`` with every entry whose key names a secret masked, at any depth (``ssl={"password": ...}``)."""
    if any(word in key.lower() for word in _SECRET_KEYS):
        return "****" if value else repr(value)
    if isinstance(value, Mapping):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [masked(item) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    return value
