"""Where connection credentials come from.

The client asks its credentials provider for :class:`Credentials` before every new connection. Providers that
can be refreshed (a Secrets Manager secret after rotation) are asked again with ``refresh=True`` once after an
access-denied error (1045). While it asks, :func:`time_left` tells a provider how much of the client's deadline
is left, so that a provider calling the network can bound its timeouts by it.
"""

from __future__ import annotations

from collections.abc import Mapping  # noqa: F401 - typing.get_type_hints(Credentials) resolves its names here
from typing import Any, Protocol, runtime_checkable  # noqa: F401 - likewise

from ._credentials import Credentials, time_budget, time_left

__all__ = ["Credentials", "CredentialsProvider", "CredentialsSource", "time_budget", "time_left"]


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


class CredentialsSource(Protocol):
    """What the client calls on option ``credentials``.

    A provider may also have ``refreshable`` (``True`` if asking again with ``refresh=True`` can fix an
    access-denied error; read with a default of ``False``) and ``tls`` (TLS arguments ``connect_args`` may not
    weaken); :class:`~serverless_mysql.CredentialsProvider` is the full protocol.
    """

    def get_credentials(self, *, refresh: bool = False) -> Credentials:
        """The credentials for the next connection; ``refresh`` bypasses any cache."""
        ...
