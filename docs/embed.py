"""Keep the code in README.md and docs/*.md identical to the files that ``make test`` checks.

Usage (from the repository root)::

    python docs/embed.py          # rewrite every embedded block from its source
    python docs/embed.py --check  # list what is stale or unchecked; exit status 1 if anything is

Two kinds of marker, each on a line of its own in the Markdown:

- ``<!-- snippet: docs/snippets/app.py -->`` (or ``PATH#REGION``) followed by a fenced block: the block is the
  file, or the lines between ``# [docs:REGION]`` and ``# [/docs:REGION]`` in it (``--`` instead of ``#`` in
  SQL). Region marker lines are never shown. The file is linted and type-checked (``make lint``), and run where
  a test can run it (``tests/integration/test_docs_snippets.py``).
- ``<!-- generated: NAME -->`` ... ``<!-- /generated: NAME -->``: text rendered from the code (the error class
  tree, the module map), see ``GENERATORS``.

``tests/unit/test_docs.py`` fails on anything :func:`problems` reports.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNIPPETS = ROOT / "docs" / "snippets"
PACKAGE = ROOT / "src" / "serverless_mysql"

LANGUAGES = {".py": "python", ".yaml": "yaml", ".yml": "yaml", ".json": "json", ".sql": "sql", ".sh": "sh"}
SNIPPET_RE = re.compile(r"^<!-- snippet: (?P<path>[^#\s]+)(?:#(?P<region>[\w-]+))? -->$")
GENERATED_START_RE = re.compile(r"^<!-- generated: (?P<name>[\w-]+) -->$")
FENCE_RE = re.compile(r"^(?P<fence>```+)(?P<lang>[\w+-]*)\s*$")
REGION_RE = re.compile(r"^\s*(?:#|--) \[(?P<end>/?)docs:(?P<name>[\w-]+)\]\s*$")
LINK_RE = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)\)")
MAKE_RE = re.compile(r"\bmake[ \t]+(?:-C[ \t]+(?P<dir>\S+)[ \t]+)?(?P<targets>(?:[a-z][\w-]*[ \t]*)+)")
TEMPLATE_H2 = ("Getting started", "Details", "Limits and trade-offs")
"""The page template: a purpose paragraph under the title, then these sections in this order (others may sit
between them)."""
GENERATED_PAGES = {"RELIABILITY.md", "options.md"}
"""Pages written by code elsewhere (the fault tests, the options helper): no template, but links are checked."""


def pages() -> list[Path]:
    """The Markdown that users read: README.md and docs/*.md."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Block:
    """A fenced code block: where it is, its language, its text and the snippet marker above it (if any)."""

    page: Path
    line: int
    lang: str
    text: str
    marker: str | None


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def code_blocks(page: Path, text: str | None = None) -> Iterator[Block]:
    """Every fenced block of ``page`` (``text`` overrides the file's content)."""
    lines = (page.read_text(encoding="utf-8") if text is None else text).splitlines()
    i = 0
    while i < len(lines):
        match = FENCE_RE.match(lines[i].strip())
        if not match:
            i += 1
            continue
        fence, start = match["fence"], i
        indent = len(lines[i]) - len(lines[i].lstrip())
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].strip() != fence:
            line = lines[i]
            body.append(line[indent:] if not line[:indent].strip() else line.lstrip())
            i += 1
        previous = lines[start - 1].strip() if start else ""
        marker = previous if SNIPPET_RE.match(previous) else None
        yield Block(page, start + 1, match["lang"], "\n".join(body), marker)
        i += 1


def snippet_source(path: str, region: str | None) -> str:
    """The text a snippet marker stands for: the file or one region of it, without region marker lines."""
    file = ROOT / path
    lines = file.read_text(encoding="utf-8").splitlines()
    if region is not None:
        inside, picked, found = False, [], False
        for line in lines:
            match = REGION_RE.match(line)
            if match and match["name"] == region:
                inside, found = not match["end"], True
                continue
            if inside:
                picked.append(line)
        if not found:
            raise KeyError(f"{path} has no region {region!r}")
        lines = picked
    return "\n".join(line for line in lines if not REGION_RE.match(line)).strip("\n")


# Generated sections ---------------------------------------------------------------------------------------------


def error_tree() -> str:
    """The exception classes of ``serverless_mysql`` as a tree, drawn from the classes themselves."""
    sys.path.insert(0, str(ROOT / "src"))
    import serverless_mysql  # noqa: PLC0415 - only the generator needs the package

    base = serverless_mysql.ServerlessMySQLError
    public = {getattr(serverless_mysql, name) for name in serverless_mysql.__all__}
    lines = [f"{base.__name__}  (an Exception)"]

    def walk(cls: type[BaseException], prefix: str) -> None:
        children = sorted((c for c in cls.__subclasses__() if c in public), key=lambda c: str(c.__name__))
        for n, child in enumerate(children):
            last = n == len(children) - 1
            also = [b.__name__ for b in child.__bases__ if b is not cls and not issubclass(b, base)]
            note = f"  (also a {', '.join(also)})" if also else ""
            lines.append(f"{prefix}{'└── ' if last else '├── '}{child.__name__}{note}")
            walk(child, prefix + ("    " if last else "│   "))

    walk(base, "")
    return "```text\n" + "\n".join(lines) + "\n```"


def module_map() -> str:
    """A table of the package's modules, each described by the first line of its docstring."""
    rows = ["| Module | What it holds |", "|---|---|"]
    for file in sorted(PACKAGE.rglob("*.py")):
        doc = ast.get_docstring(ast.parse(file.read_text(encoding="utf-8"))) or ""
        first = doc.strip().splitlines()[0] if doc.strip() else "(no docstring)"
        name = file.relative_to(PACKAGE).as_posix()
        cell = re.sub(r":\w+:`~?(?:[\w]+\.)*(\w+)`", r"`\1`", first.replace("``", "`")).replace("|", "\\|")
        rows.append(f"| [`{name}`](../src/serverless_mysql/{name}) | {cell} |")
    return "\n".join(rows)


GENERATORS: dict[str, Callable[[], str]] = {"error-tree": error_tree, "module-map": module_map}


# Rewriting ------------------------------------------------------------------------------------------------------


def render(text: str) -> str:
    """``text`` with every snippet block and generated section replaced by what its source says now."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        snippet = SNIPPET_RE.match(line.strip())
        generated = GENERATED_START_RE.match(line.strip())
        opening = FENCE_RE.match(lines[i + 1].strip()) if snippet and i + 1 < len(lines) else None
        if snippet and opening:
            indent = lines[i + 1][: len(lines[i + 1]) - len(lines[i + 1].lstrip())]
            end = i + 2
            while end < len(lines) and lines[end].strip() != opening["fence"]:
                end += 1
            lang = LANGUAGES.get(Path(snippet["path"]).suffix, "text")
            body = snippet_source(snippet["path"], snippet["region"]).splitlines()
            out.append(f"{indent}```{lang}")
            out.extend(f"{indent}{b}" if b else "" for b in body)
            out.append(f"{indent}```")
            i = end + 1
            continue
        if generated:
            closing = f"<!-- /generated: {generated['name']} -->"
            end = i + 1
            while end < len(lines) and lines[end].strip() != closing:
                end += 1
            if end < len(lines):
                out.extend(GENERATORS[generated["name"]]().splitlines())
                out.append(closing)
                i = end + 1
                continue
        i += 1
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


# Checks ---------------------------------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor a link may point at in ``page``: headings (GitHub's slugs, duplicates numbered) and ids."""
    text = page.read_text(encoding="utf-8")
    text_outside_code = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    found: set[str] = set(re.findall(r"<a (?:id|name)=\"([^\"]+)\"", text_outside_code))
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", text_outside_code, flags=re.MULTILINE):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> Iterator[tuple[int, str]]:
    """Relative link targets of ``page`` with their line numbers (code blocks and inline code skipped)."""
    in_code = False
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE_RE.match(line.strip()):
            in_code = not in_code
            continue
        if in_code:
            continue
        for match in LINK_RE.finditer(re.sub(r"`[^`]*`", "``", line)):
            target = match["target"]
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                yield number, target


def link_problems(page: Path) -> list[str]:
    """Relative links of ``page`` whose file or anchor does not exist."""
    out = []
    for number, target in links(page):
        path_part, _, anchor = target.partition("#")
        file = (page.parent / path_part).resolve() if path_part else page
        rel = _rel(file)
        where = f"{_rel(page)}:{number}"
        if not file.exists():
            out.append(f"{where}: link to {target}: {rel} does not exist")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            out.append(f"{where}: link to {target}: {rel} has no heading or id {anchor!r}")
    return out


def makefile_targets(directory: Path) -> set[str]:
    """The targets a Makefile defines (plain ``name:`` rules and ``.PHONY`` names)."""
    text = (directory / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, flags=re.MULTILINE))
    for phony in re.findall(r"^\.PHONY:(.*)$", text, flags=re.MULTILINE):
        targets.update(phony.split())
    return targets


def block_problems(block: Block) -> list[str]:
    """What is wrong with one code block: stale snippet, unchecked Python, unparsable data, unknown make target."""
    where = f"{_rel(block.page)}:{block.line}"
    if block.marker is not None:
        snippet = SNIPPET_RE.match(block.marker)
        assert snippet is not None
        if not (ROOT / snippet["path"]).is_file():
            return [f"{where}: snippet source {snippet['path']} does not exist"]
        try:
            source = snippet_source(snippet["path"], snippet["region"])
        except KeyError as exc:
            return [f"{where}: {exc.args[0]}"]
        if block.text.strip("\n") != source:
            return [f"{where}: block differs from {block.marker[5:-4]}: run `python docs/embed.py`"]
        return []
    if block.lang == "":
        return [f"{where}: a fenced block without a language"]
    if block.lang == "text":
        return []  # generated sections (checked as a whole) and plain output
    if block.lang == "json":
        try:
            json.loads(block.text)
        except ValueError as exc:
            return [f"{where}: JSON does not parse: {exc}"]
        return []
    if block.lang in {"sh", "bash", "console"}:
        out: list[str] = []
        for match in MAKE_RE.finditer(block.text):
            directory = ROOT / (match["dir"] or ".")
            known = makefile_targets(directory)
            out.extend(
                f"{where}: `make {target}`: no such target in {_rel(directory / 'Makefile')}"
                for target in match["targets"].split()
                if target not in known
            )
        return out
    return [f"{where}: a {block.lang} block without a source: put it in docs/snippets/ and add a snippet marker"]


def template_problems(page: Path) -> list[str]:
    """A hand-written docs page that does not follow the template (title, purpose, the sections in order)."""
    if page.name in GENERATED_PAGES or page.parent != ROOT / "docs" or page.name == "index.md":
        return []
    return text_template_problems(_rel(page), page.read_text(encoding="utf-8"))


def text_template_problems(name: str, text: str) -> list[str]:
    """:func:`template_problems` for the Markdown ``text`` of a page called ``name``."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    lines = [line for line in text.splitlines() if line.strip()]
    out = []
    if not lines or not lines[0].startswith("# "):
        out.append(f"{name}: the first line must be the page title (# ...)")
    elif len(lines) < 2 or lines[1].startswith("#"):
        out.append(f"{name}: a paragraph saying what the page is for must follow the title")
    h2 = [line[3:].strip() for line in lines if line.startswith("## ")]
    positions = [h2.index(section) if section in h2 else -1 for section in TEMPLATE_H2]
    if -1 in positions or positions != sorted(positions):
        out.append(f"{name}: sections must include {', '.join(TEMPLATE_H2)} in this order (has {h2})")
    return out


def generated_problems(page: Path) -> list[str]:
    """Generated sections of ``page`` that differ from what the code renders now."""
    text = page.read_text(encoding="utf-8")
    out = []
    for match in re.finditer(r"^<!-- generated: ([\w-]+) -->$", text, flags=re.MULTILINE):
        name = match[1]
        if name not in GENERATORS:
            out.append(f"{_rel(page)}: unknown generated section {name!r}")
        elif f"<!-- /generated: {name} -->" not in text:
            out.append(f"{_rel(page)}: generated section {name!r} is not closed")
    if not out and render(text) != text:
        out.append(f"{_rel(page)}: a snippet or generated section is stale: run `python docs/embed.py`")
    return out


def referenced_snippets() -> set[str]:
    """Paths named by a snippet marker anywhere in the pages."""
    found = set()
    for page in pages():
        for line in page.read_text(encoding="utf-8").splitlines():
            match = SNIPPET_RE.match(line.strip())
            if match:
                found.add(match["path"])
    return found


def unreferenced_snippets() -> list[str]:
    """Files in docs/snippets/ that no page shows: dead examples that would still be linted."""
    used = referenced_snippets()
    return [
        f"{_rel(file)} is not shown by any page"
        for file in sorted(SNIPPETS.iterdir())
        if file.is_file() and file.suffix in LANGUAGES and _rel(file) not in used
    ]


def problems() -> list[str]:
    """Everything :mod:`tests.unit.test_docs` fails on, as one list of readable lines."""
    out: list[str] = []
    for page in pages():
        for block in code_blocks(page):
            out.extend(block_problems(block))
        out.extend(generated_problems(page))
        out.extend(link_problems(page))
        out.extend(template_problems(page))
    out.extend(unreferenced_snippets())
    return out


def main(argv: list[str]) -> int:
    """Rewrite the pages (default) or only report (``--check``)."""
    if "--check" not in argv:
        for page in pages():
            text = page.read_text(encoding="utf-8")
            new = render(text)
            if new != text:
                page.write_text(new, encoding="utf-8")
                print(f"rewrote {_rel(page)}")
    found = problems()
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
