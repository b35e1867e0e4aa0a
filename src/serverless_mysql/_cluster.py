"""Aurora clusters and RDS endpoints: what a host name says, and how a client learns a server accepts writes.

A leaf module (no I/O, nothing of the client's imported): the host-name rules of ``server_role="auto"``,
``rds_proxy=None`` and ``reader_host="auto"``, the statement a writer client sends on a new connection, and the
jittered ``max_connection_age``. See docs/aurora.md.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping

from ._checks import Choice
from .errors import ConfigError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any, Literal

    Role = Literal["writer", "reader", "any"]

__all__ = [
    "ROLES",
    "ROLE_CHECK",
    "connection_retire_at",
    "detect_rds_proxy",
    "is_writable",
    "parse_writability",
    "read_only_variables",
    "reader_endpoint",
    "resolve_role",
    "split_host_port",
    "writability_sql",
]

ROLES = ("writer", "reader", "any", "auto")
"""The values of option ``server_role``; ``"auto"`` resolves to one of the others from the host name."""
ROLE_CHECK = Choice(*ROLES)

_RDS_SUFFIXES = (".rds.amazonaws.com", ".rds.amazonaws.com.cn")
AGE_JITTER = 0.1
"""A connection's ``max_connection_age`` is cut by up to this fraction, drawn per connection."""


def _rds_labels(host: str) -> list[str] | None:
    """The labels of an RDS host name (``name.cluster-id.region.rds.amazonaws.com``), or ``None`` for another."""
    host = host.lower().rstrip(".")
    if not host.endswith(_RDS_SUFFIXES):
        return None
    return host.split(".")


def detect_rds_proxy(host: str) -> bool:
    """True for RDS Proxy endpoints (``<name>.proxy-<id>.<region>.rds.amazonaws.com``)."""
    host = host.lower().rstrip(".")
    return ".proxy-" in host and host.endswith(_RDS_SUFFIXES)


def resolve_role(role: str, host: str) -> Role:
    """``role`` itself, or for ``"auto"`` the role ``host`` names: a cluster endpoint is the writer's.

    ``<name>.cluster-<id>.<region>.rds.amazonaws.com`` is ``"writer"``, ``<name>.cluster-ro-<id>...`` is
    ``"reader"``, anything else (an instance or custom endpoint, RDS Proxy, an address) is ``"any"``.
    """
    if role != "auto":
        return role  # type: ignore[return-value]  # checked by the option's Choice
    labels = _rds_labels(host)
    if labels is None or len(labels) < 3:
        return "any"
    second = labels[1]
    if second.startswith("cluster-ro-"):
        return "reader"
    if second.startswith("cluster-custom-"):
        return "any"  # a custom endpoint names a chosen set of instances, readers as often as not
    if second.startswith("cluster-"):
        return "writer"
    return "any"


def reader_endpoint(host: str) -> str:
    """The reader endpoint of an Aurora cluster endpoint (``.cluster-`` -> ``.cluster-ro-``).

    Raises :class:`ConfigError` for a host that is not a cluster (writer) endpoint.
    """
    if resolve_role("auto", host) != "writer":
        raise ConfigError(
            f"option 'reader_host' is 'auto' but the host {host!r} is not an Aurora cluster endpoint "
            "(<name>.cluster-<id>.<region>.rds.amazonaws.com); give the reader host explicitly"
        )
    name, rest = host.split(".", 1)
    return f"{name}.cluster-ro-{rest[len('cluster-') :]}"


def split_host_port(value: str) -> tuple[str, int | None]:
    """``host`` or ``host:port`` (``[v6]:port`` for an IPv6 address) into host and port (``None``: not given)."""
    text = value.strip()
    port_text = ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port_text = rest[1:] or "x"
        elif rest:
            host = ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port_text = port_text or "x"
    else:
        host = text  # a bare IPv6 address has several colons and no port
    if not host:
        raise ConfigError(f"option 'reader_host' must be a host or host:port, not {value!r}")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"option 'reader_host' has an invalid port in {value!r} (1-65535)")
    return host, int(port_text)


WITHOUT_SUPER_READ_ONLY = ("read_only", "innodb_read_only")
"""The read-only variables every server has (MariaDB, and MySQL before 5.7.8, have no ``super_read_only``)."""


def read_only_variables(version: str) -> tuple[str, ...]:
    """The read-only variables a server of this handshake version has.

    ``super_read_only`` exists in MySQL from 5.7.8, never in MariaDB (whose version reads ``...-MariaDB``):
    asking for it there would fail.
    """
    if "mariadb" not in version.lower() and _version_tuple(version) >= (5, 7, 8):
        return (*WITHOUT_SUPER_READ_ONLY, "super_read_only")
    return WITHOUT_SUPER_READ_ONLY


def writability_sql(names: tuple[str, ...]) -> str:
    """The statement that tells whether a server accepts writes, with its connection limits, as one value.

    One column, not one per variable: PyMySQL parses a descriptor per column, and in the failover drill's window a
    thousand waiting environments each ran this statement about once a second (0.36 ms of client CPU with four
    columns). The limits ride along: housekeeping needs them, so a new connection never reads them on their own.
    """
    values = ", ".join([*(f"@@global.{name}" for name in names), "@@max_connections", "@@max_user_connections"])
    return f"SELECT CONCAT_WS(',', {values}) AS state"


def parse_writability(value: object, names: tuple[str, ...]) -> tuple[dict[str, str], tuple[int, int]]:
    """The read-only variables and the limits that :func:`writability_sql` ``(names)`` answered.

    Returns ``({name: value}, (max_connections, max_user_connections))``.
    """
    parts = (value.decode() if isinstance(value, bytes) else str(value)).split(",")
    if len(parts) != len(names) + 2:
        raise ValueError(f"unexpected answer to the writability check: {value!r}")
    return dict(zip(names, parts[:-2], strict=True)), (int(parts[-2]), int(parts[-1]))


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("-", 1)[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def is_writable(flags: Mapping[str, Any]) -> bool:
    """True when none of the read-only variables in ``flags`` is set (``ON``, ``1``)."""
    return not any(str(value).upper() in ("1", "ON") for value in flags.values())


def connection_retire_at(opened: float, max_age: float | None, rng: random.Random) -> float:
    """When a connection opened at ``opened`` is retired at ``end()``: its age, cut by up to 10 % (no herd)."""
    if max_age is None:
        return math.inf
    return opened + max_age * (1.0 - AGE_JITTER * rng.random())
