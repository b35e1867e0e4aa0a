"""The reader client of ``@with_mysql(reader_host=...)``: the writer's options with the host replaced.

Same credentials and options as ``db`` (one credentials provider: a secret is fetched once for both), the host
(and the port, when ``host:port`` gives one) replaced, ``server_role="reader"``. ``reader_host="auto"`` derives
an Aurora reader endpoint from a cluster endpoint, whether the writer's host is an option or comes from the
secret (then at each connect, from the secret's host).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._cluster import reader_endpoint, split_host_port
from ..client import ServerlessMySQL
from ..config import CONNECTION_OPTIONS, OPTION_NAMES, Config
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import CredentialsSource
    from ..credentials import Credentials

__all__ = ["AUTO", "ReaderCredentials", "reader_client"]

AUTO = "auto"


class ReaderCredentials:
    """The writer's credentials provider, with the host replaced by the reader endpoint derived from it."""

    def __init__(self, inner: CredentialsSource) -> None:
        self._inner = inner
        self.refreshable = bool(getattr(inner, "refreshable", False))
        tls = getattr(inner, "tls", None)
        if tls is not None:
            self.tls = tls

    def get_credentials(self, *, refresh: bool = False) -> Credentials:
        """The writer's credentials with ``host`` the reader endpoint of its cluster endpoint."""
        creds = self._inner.get_credentials(refresh=refresh)
        if creds.host is None:
            raise ConfigError("option 'reader_host' is 'auto' but the credentials supply no host to derive it from")
        return dataclasses.replace(creds, host=reader_endpoint(creds.host))

    def __repr__(self) -> str:
        return f"ReaderCredentials({self._inner!r})"


def reader_client(
    writer: ServerlessMySQL,
    reader_host: str,
    *,
    iam_credentials: Callable[[dict[str, Any]], CredentialsSource] | None = None,
) -> ServerlessMySQL:
    """A second client for ``reader_host`` (``host``, ``host:port`` or ``"auto"``) with ``writer``'s options.

    ``iam_credentials(options)`` builds the IAM token provider for the reader's host (a token is signed for one
    host), when the writer uses IAM authentication.
    """
    cfg: Config = writer._config
    options: dict[str, Any] = {
        name: getattr(cfg, name)
        for name in OPTION_NAMES
        if name != "url" and (name not in CONNECTION_OPTIONS or name in cfg.explicit)
    }
    options["server_role"] = "reader"
    if reader_host.strip().lower() == AUTO:
        if "host" in cfg.explicit:
            options["host"] = reader_endpoint(cfg.host)
        elif cfg.credentials is not None and iam_credentials is None:
            options["credentials"] = ReaderCredentials(cfg.credentials)  # the secret's host, at each connect
        else:
            raise ConfigError("option 'reader_host' is 'auto' but no writer host is given to derive it from")
    else:
        host, port = split_host_port(reader_host)
        options["host"] = host
        if port is not None:
            options["port"] = port  # given: beats a secret's port (otherwise the writer's, wherever it comes from)
    if iam_credentials is not None:
        options["credentials"] = iam_credentials(options)
        options.pop("password", None)
    return ServerlessMySQL(**options)
