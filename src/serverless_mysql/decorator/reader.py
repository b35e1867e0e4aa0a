"""The reader client of ``@with_mysql(reader_host=...)``: the writer's options with the host replaced.

Same credentials and options as ``db`` (one credentials provider: a secret is fetched once for both), the host
(and the port, when ``host:port`` gives one) replaced, ``server_role="reader"``. ``reader_host="auto"`` derives
an Aurora reader endpoint from a cluster endpoint, whether the writer's host is an option or comes from the
secret (then at each connect, from the secret's host).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._cluster import reader_endpoint, split_host_port
from .._record import replace
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
        return replace(creds, host=reader_endpoint(creds.host))

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
    if iam_credentials is None and cfg.credentials is not None and _signs_for_one_host(cfg.credentials):
        raise ConfigError(
            "option 'reader_host' cannot be used with option 'db' when that client uses IAM authentication: its "
            "token is signed for the writer's host; build the reader's client with its own IamAuthCredentials, or "
            "pass iam_auth=True and the writer's options instead of db="
        )
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


def _signs_for_one_host(credentials: CredentialsSource | None) -> bool:
    """An IAM token provider: what it returns is valid for the host it signs for only."""
    from ..iam import IamAuthCredentials  # noqa: PLC0415 - only with reader_host and a client given with db=

    return isinstance(credentials, IamAuthCredentials)
