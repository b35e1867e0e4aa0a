"""Where connection credentials come from.

The client asks its credentials provider for :class:`Credentials` before every new connection. Providers that
can be refreshed (a Secrets Manager secret after rotation) are asked again with ``refresh=True`` once after an
access-denied error (1045).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["Credentials", "CredentialsProvider"]


@dataclass(frozen=True)
class Credentials:
    """Connection fields supplied by a provider; ``None`` means "not supplied".

    Options given explicitly to the client beat these fields. ``connect_args`` are merged into the arguments
    of ``pymysql.connect`` (an IAM token provider uses them to require TLS and the clear-text auth plugin).
    The password never appears in ``repr``.
    """

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    database: str | None = None
    connect_args: Mapping[str, Any] = field(default_factory=dict, repr=False)


@runtime_checkable
class CredentialsProvider(Protocol):
    """Supplies credentials for each new connection.

    ``refreshable`` says whether asking again with ``refresh=True`` may give different credentials (so that an
    access-denied error is worth one more connect). A provider may also have a ``tls`` mapping: the
    ``pymysql.connect`` TLS arguments it requires; the client then refuses ``connect_args`` that would switch
    them off or weaken them (``ssl_disabled``, ``ssl_verify_identity=False``, ...).
    """

    refreshable: bool

    def get_credentials(self, *, refresh: bool = False) -> Credentials:
        """Return the credentials for the next connection; ``refresh`` bypasses any cache."""
        ...
