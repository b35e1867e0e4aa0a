"""Configuration of ``@with_mysql`` from environment variables ``SERVERLESS_MYSQL_<OPTION>``.

Every option that reads from text (of :class:`~serverless_mysql.ServerlessMySQL` and of the decorator) has a
variable named ``SERVERLESS_MYSQL_`` + the option name in upper case, e.g. ``SERVERLESS_MYSQL_HOST``,
``SERVERLESS_MYSQL_CONN_UTILIZATION``, ``SERVERLESS_MYSQL_SECRET_ID``. Values are converted to the option's type
(:func:`serverless_mysql._text.from_text`, shared with URL parameters); a bad value raises
:class:`~serverless_mysql.ConfigError` naming the variable. An empty variable counts as unset. An option given
explicitly to the decorator always beats its variable. The variables, their kinds and summaries come from the
option specs (:data:`serverless_mysql.config.CLIENT_OPTIONS`, :data:`serverless_mysql._spec.DECORATOR_OPTIONS`);
``docs/options.md`` shows them (``python -m serverless_mysql.options``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from functools import lru_cache

from ._record import record
from ._spec import DECORATOR_OPTIONS, OptionSpec
from ._text import from_text
from .config import CLIENT_OPTIONS

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DECORATOR_DEFAULTS",
    "PREFIX",
    "EnvVar",
    "EnvVarWarning",
    "env_name",
    "env_vars",
    "markdown_table",
    "read_env",
]

PREFIX = "SERVERLESS_MYSQL_"

DECORATOR_DEFAULTS: Mapping[str, Any] = {o.name: o.default for o in DECORATOR_OPTIONS if o.kind is not None}
"""The decorator's own options that have a variable, with their defaults (``metrics`` and ``db`` have none;
``secret_max_age``'s ``None`` means the provider's default)."""


class EnvVarWarning(UserWarning):
    """A ``SERVERLESS_MYSQL_*`` variable that no option reads (probably a typo)."""


@record(frozen=True)  # not a NamedTuple: see _record
class EnvVar:
    """One environment variable: its name, the option it sets, how its text is converted, and its default."""

    name: str
    option: str
    kind: str
    """``str``, ``int``, ``float``, ``bool``, ``float?``/``bool?`` (may be ``none``), ``json`` or ``choice:a,b``."""
    default: Any
    description: str
    client: bool
    """True for :class:`ServerlessMySQL` options, False for the decorator's own."""
    secret: bool = False
    """Whether the value must never be echoed (password, URL with credentials, connect args)."""


def env_name(option: str) -> str:
    """``SERVERLESS_MYSQL_`` + the option name in upper case."""
    return PREFIX + option.upper()


def _var(spec: OptionSpec, *, client: bool) -> EnvVar:
    kind = spec.kind
    assert kind is not None  # filtered by the caller
    return EnvVar(env_name(spec.name), spec.name, kind, spec.default, spec.env_doc, client, spec.secret)


@lru_cache(maxsize=1)
def env_vars() -> tuple[EnvVar, ...]:
    """Every variable the decorator reads, in documentation order (client options, then the decorator's)."""
    client = [_var(o, client=True) for o in CLIENT_OPTIONS if o.kind is not None]
    own = [_var(o, client=False) for o in DECORATOR_OPTIONS if o.kind is not None]
    return (*client, *own)


@lru_cache(maxsize=1)
def _by_name() -> Mapping[str, EnvVar]:
    return {var.name: var for var in env_vars()}


def read_env(environ: Mapping[str, str] | None = None) -> dict[str, tuple[str, Any]]:
    """Read every ``SERVERLESS_MYSQL_*`` variable that is set and not empty.

    Parameters
    ----------
    environ : Mapping[str, str], optional
        The environment (default ``os.environ``).

    Returns
    -------
    dict[str, tuple[str, Any]]
        Option name -> (variable name, converted value).

    Raises
    ------
    ConfigError
        A value cannot be converted; the message names the variable (and never echoes a password or URL).

    Warns
    -----
    EnvVarWarning
        For a ``SERVERLESS_MYSQL_*`` variable no option reads, with the closest known name.
    """
    env = os.environ if environ is None else environ
    by_name = _by_name()
    out: dict[str, tuple[str, Any]] = {}
    for name, raw in env.items():
        if not name.startswith(PREFIX):
            continue
        var = by_name.get(name)
        if var is None:
            import difflib  # noqa: PLC0415 - only for the warning

            close = difflib.get_close_matches(name, by_name, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            warnings.warn(f"environment variable {name} is not read by serverless_mysql{hint}", EnvVarWarning, 2)
            continue
        if raw.strip() == "":
            continue
        out[var.option] = (name, from_text(var.kind, raw, what=f"environment variable {name}", show=not var.secret))
    return out


def markdown_table() -> str:
    """The Markdown table of variables in ``docs/options.md``."""
    specs = {o.name: o for o in (*CLIENT_OPTIONS, *DECORATOR_OPTIONS)}
    lines = ["| Variable | Option | Type | Default | Meaning |", "|---|---|---|---|---|"]
    lines += [
        f"| `{var.name}` | `{var.option}` | {_kind_doc(var.kind)} | "
        f"{_default_doc(var.kind, specs[var.option].resolved_default())} | {var.description} |"
        for var in env_vars()
    ]
    return "\n".join(lines)


def _kind_doc(kind: str) -> str:
    if kind.startswith("choice:"):
        return " \\| ".join(f"`{c}`" for c in kind.split(":", 1)[1].split(","))
    return {"str": "text", "json": "JSON object", "float?": "float or `none`", "bool?": "bool or `auto`"}.get(
        kind, kind
    )


def _default_doc(kind: str, default: Any) -> str:
    if default is None:
        return "`auto`" if kind == "bool?" else "—"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, float) and default.is_integer():
        return f"`{default:g}`"
    return f"`{default}`"


if __name__ == "__main__":  # pragma: no cover
    print(markdown_table())
