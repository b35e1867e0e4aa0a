"""``docs/options.md``, generated from the option specs: ``python -m serverless_mysql.options [--check] [PATH]``.

The page's prose is written by hand; the tables between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` are
generated here from :data:`serverless_mysql.config.CLIENT_OPTIONS`, :data:`serverless_mysql._spec.DECORATOR_OPTIONS`
and the variables of :mod:`serverless_mysql.env`. ``tests/unit/test_options.py`` fails when the page is stale.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ._spec import DECORATOR_OPTIONS, OptionSpec
from ._url import URL_CONNECT_ARGS
from .config import CLIENT_OPTIONS, URL_OPTION_KINDS
from .env import markdown_table

__all__ = ["TABLES", "client_table", "decorator_table", "render", "url_table"]

DEFAULT_PAGE = Path("docs") / "options.md"


def _default(spec: OptionSpec) -> str:
    value = spec.resolved_default()
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, float) and spec.check is not None and getattr(spec.check, "unit", "") == "s":
        return f"`{value:g}` s"
    return f"`{value!r}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _rows(specs: Iterable[OptionSpec], *, with_range: bool) -> list[str]:
    rows = []
    for spec in specs:
        cells = [f"`{spec.name}`", _default(spec)]
        if with_range:
            cells.append(_cell(spec.check.describe()) if spec.check is not None else "")
        cells.append(_cell(spec.doc))
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def client_table() -> str:
    """Every option of ``ServerlessMySQL(**options)``."""
    head = ["| Option | Default | Unit / range | Meaning |", "|---|---|---|---|"]
    return "\n".join(head + _rows(CLIENT_OPTIONS, with_range=True))


def decorator_table() -> str:
    """The options ``@with_mysql`` takes besides the client's."""
    head = ["| Option | Default | Meaning |", "|---|---|---|"]
    return "\n".join(head + _rows(DECORATOR_OPTIONS, with_range=False))


_KIND_DOC = {"str": "text", "int": "integer", "float": "number", "bool": "boolean"}


def _kind(kind: str) -> str:
    if kind.startswith("choice:"):
        return "one of " + ", ".join(f"`{choice}`" for choice in kind[len("choice:") :].split(","))
    base = _KIND_DOC[kind.rstrip("?")]
    return f"{base} or `none`" if kind.endswith("?") else base


def url_table() -> str:
    """The query parameters a ``mysql://`` URL may carry: our options, then ``pymysql.connect`` arguments."""
    head = ["| Parameter | Type | Sets |", "|---|---|---|"]
    ours = [f"| `{name}` | {_kind(kind)} | option `{name}` |" for name, kind in URL_OPTION_KINDS.items()]
    theirs = [f"| `{name}` | {_kind(kind)} | `connect_args[{name!r}]` |" for name, kind in URL_CONNECT_ARGS.items()]
    return "\n".join(head + ours + theirs)


TABLES: Mapping[str, Callable[[], str]] = {
    "client-options": client_table,
    "decorator-options": decorator_table,
    "url-parameters": url_table,
    "env-table": markdown_table,
}
"""Marker name -> the function that generates the table between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``."""


def render(page: str) -> str:
    """``page`` with every generated table replaced by its current text; a missing marker raises ``ValueError``."""
    for name, make in TABLES.items():
        match = re.search(rf"<!-- {name}:start -->\n(.*?)\n<!-- {name}:end -->", page, re.DOTALL)
        if match is None:
            raise ValueError(f"the page lacks the markers <!-- {name}:start --> ... <!-- {name}:end -->")
        page = page[: match.start(1)] + make() + page[match.end(1) :]
    return page


def main(argv: list[str]) -> int:
    """Rewrite the page (default ``docs/options.md``); with ``--check`` only report whether it is stale."""
    check = "--check" in argv
    paths = [a for a in argv if a != "--check"]
    path = Path(paths[0]) if paths else DEFAULT_PAGE
    text = path.read_text(encoding="utf-8")
    fresh = render(text)
    if fresh == text:
        return 0
    if check:
        print(f"{path} is stale: run python -m serverless_mysql.options", file=sys.stderr)
        return 1
    path.write_text(fresh, encoding="utf-8")
    print(f"{path} regenerated")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
