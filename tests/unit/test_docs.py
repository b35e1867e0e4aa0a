"""README.md and docs/*.md: every code block comes from a checked file, every link resolves, pages keep the template.

The checks live in ``docs/embed.py`` (which also rewrites the blocks); this module runs them on the real pages and
shows on small made-up pages that each check fails when it should.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from serverless_mysql.env import env_vars
from tests.layer.cfn import load_template

ROOT = Path(__file__).resolve().parents[2]


def _load_embed() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_embed", ROOT / "docs" / "embed.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


embed: Any = _load_embed()


PAGES = embed.pages()


def _ids(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


# The real pages ----------------------------------------------------------------------------------------------------


def test_the_pages_are_the_readme_and_the_docs_folder() -> None:
    names = {_ids(p) for p in PAGES}
    assert "README.md" in names
    for page in (
        "index.md",
        "decorator.md",
        "client.md",
        "connection-management.md",
        "overload.md",
        "errors.md",
        "deploying.md",
        "shutdown-extension.md",
        "snapstart.md",
        "credentials.md",
        "contributing.md",
        "migrating-from-serverless-mysql.md",
        "RELIABILITY.md",
    ):
        assert f"docs/{page}" in names, page


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_every_code_block_comes_from_its_source(page: Path) -> None:
    problems = [p for block in embed.code_blocks(page) for p in embed.block_problems(block)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_snippets_and_generated_sections_are_current(page: Path) -> None:
    problems = embed.generated_problems(page)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    problems = embed.link_problems(page)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=_ids)
def test_docs_pages_follow_the_template(page: Path) -> None:
    problems = embed.template_problems(page)
    assert not problems, "\n".join(problems)


def test_every_snippet_file_is_shown_somewhere() -> None:
    assert embed.unreferenced_snippets() == []
    python = list((ROOT / "docs" / "snippets").glob("*.py"))
    assert len(python) >= 8, "the snippets folder lost its Python files"


def test_the_index_links_every_page() -> None:
    """docs/index.md is the map: a page it does not link is a page nobody finds."""
    linked = {target.partition("#")[0] for _, target in embed.links(ROOT / "docs" / "index.md")}
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} | {"options.md"}
    assert pages - {"index.md"} <= linked


def test_only_real_variables_are_named() -> None:
    """Every SERVERLESS_MYSQL_* name in the pages and snippets is one the code reads (a renamed option shows up)."""
    real = {var.name for var in env_vars()}
    texts = [*PAGES, *sorted((ROOT / "docs" / "snippets").iterdir())]
    named = {
        (path.name, name)
        for path in texts
        if path.is_file()
        for name in re.findall(r"\bSERVERLESS_MYSQL_[A-Z_]+[A-Z]\b", path.read_text(encoding="utf-8"))
    }
    assert named, "no variable named anywhere: the pattern is broken"
    assert {(file, name) for file, name in named if name not in real} == set()


def test_readme_is_the_short_front_door() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.encode()) <= 15_000
    # .ci/run runs `make test` because README gives it as the test command.
    assert "make test" in text and "make demo" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for page in ("docs/index.md", "docs/decorator.md", "docs/deploying.md", "docs/options.md"):
        assert f"]({page})" in text, page


def test_make_lint_checks_the_snippets() -> None:
    """The snippets count as checked only because `make lint` (part of `make test`) runs ruff and mypy on docs/."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    src = re.search(r"^SRC\s*:=(.*)$", makefile, flags=re.MULTILINE)
    assert src is not None and "docs" in src.group(1).split()
    mypy = re.search(r"mypy --strict (.*)$", makefile, flags=re.MULTILINE)
    assert mypy is not None and "docs" in mypy.group(1).split()
    assert "lint" in re.search(r"^test:(.*)$", makefile, flags=re.MULTILINE).group(1).split()  # type: ignore[union-attr]


def test_function_yaml_matches_the_template_and_the_pins() -> None:
    """The SAM fragment users copy: the layer export our stack makes, the Powertools layer version we pin."""
    fragment = load_template(ROOT / "docs" / "snippets" / "function.yaml")["MyFunction"]
    template = load_template(ROOT / "template.yaml")
    props = fragment["Properties"]
    assert fragment["Type"] == "AWS::Serverless::Function"
    stack = re.search(r'^stack_name = "(.+)"$', (ROOT / "samconfig.toml").read_text(encoding="utf-8"), re.MULTILINE)
    assert stack is not None
    assert template["Outputs"]["LayerArn"]["Export"]["Name"] == {"Fn::Sub": "${AWS::StackName}-LayerArn"}
    assert props["Layers"][0] == {"Fn::ImportValue": f"{stack.group(1)}-LayerArn"}
    pinned = re.search(
        r"^aws-lambda-powertools==(\S+)$",
        (ROOT / "layer" / "requirements-powertools.txt").read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    assert pinned is not None
    assert props["Layers"][1].endswith(f"/python/x86_64/{props['Runtime']}/{pinned.group(1)}}}}}")
    layer = template["Resources"]["ServerlessMySQLLayer"]["Properties"]
    assert props["Runtime"] in layer["CompatibleRuntimes"]


# The checks themselves, on made-up pages ---------------------------------------------------------------------------


def _page(tmp_path: Path, text: str, name: str = "page.md") -> Path:
    page = tmp_path / name
    page.write_text(text, encoding="utf-8")
    return page


def _problems(page: Path) -> list[str]:
    return [p for block in embed.code_blocks(page) for p in embed.block_problems(block)]


def test_a_stale_block_is_reported_and_rewritten(tmp_path: Path) -> None:
    marker = "<!-- snippet: docs/snippets/snapstart_hooks.py -->"
    stale = f"{marker}\n```python\nimport os\n```\n"
    assert any("differs" in p for p in _problems(_page(tmp_path, stale)))
    fresh = embed.render(stale)
    source = (ROOT / "docs" / "snippets" / "snapstart_hooks.py").read_text(encoding="utf-8").strip()
    assert fresh == f"{marker}\n```python\n{source}\n```\n"
    assert _problems(_page(tmp_path, fresh)) == []


def test_a_python_block_without_source_is_reported(tmp_path: Path) -> None:
    problems = _problems(_page(tmp_path, "Text\n\n```python\nprint('never type-checked')\n```\n"))
    assert len(problems) == 1 and "without a source" in problems[0]
    assert _problems(_page(tmp_path, "```\nno language\n```\n")) != []
    assert _problems(_page(tmp_path, "```sql\nDROP TABLE t;\n```\n")) != []


def test_a_snippet_file_no_page_shows_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snippets = tmp_path / "docs" / "snippets"
    snippets.mkdir(parents=True)
    (snippets / "shown.py").write_text("x = 1\n", encoding="utf-8")
    (snippets / "dead.py").write_text("y = 2\n", encoding="utf-8")
    _page(tmp_path, "<!-- snippet: docs/snippets/shown.py -->\n```python\nx = 1\n```\n", "README.md")
    monkeypatch.setattr(embed, "ROOT", tmp_path)
    monkeypatch.setattr(embed, "SNIPPETS", snippets)
    assert embed.unreferenced_snippets() == ["docs/snippets/dead.py is not shown by any page"]


def test_a_missing_snippet_file_or_region_is_reported(tmp_path: Path) -> None:
    missing = "<!-- snippet: docs/snippets/nope.py -->\n```python\n```\n"
    assert any("does not exist" in p for p in _problems(_page(tmp_path, missing)))
    region = "<!-- snippet: docs/snippets/app.py#nope -->\n```python\n```\n"
    assert any("no region" in p for p in _problems(_page(tmp_path, region)))


def test_regions_show_only_their_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "s.py").write_text("a = 1\n# [docs:mid]\nb = 2\n# [/docs:mid]\nc = 3\n", encoding="utf-8")
    monkeypatch.setattr(embed, "ROOT", tmp_path)
    assert embed.snippet_source("s.py", "mid") == "b = 2"
    assert embed.snippet_source("s.py", None) == "a = 1\nb = 2\nc = 3"


def test_shell_blocks_may_name_only_real_make_targets(tmp_path: Path) -> None:
    good = "```sh\nmake test\nmake -C layer zip extension-zip\nmake clean test PYTHON=python3.12\n```\n"
    assert _problems(_page(tmp_path, good)) == []
    bad = _problems(_page(tmp_path, "```sh\nmake tests\nmake -C layer nope\n```\n"))
    assert len(bad) == 2 and "tests" in bad[0] and "layer/Makefile" in bad[1]


def test_json_blocks_must_parse(tmp_path: Path) -> None:
    assert _problems(_page(tmp_path, '```json\n{"id": 1}\n```\n')) == []
    assert _problems(_page(tmp_path, '```json\n{"id": 1,}\n```\n')) != []


def test_broken_links_and_anchors_are_reported(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## `end()` housekeeping\n\n## Same\n\n## Same\n", encoding="utf-8")
    page = _page(
        tmp_path,
        "[a](other.md#end-housekeeping) [b](other.md#same-1) [c](#top) [d](https://example.com/x)\n"
        "# Top\n[e](missing.md) [f](other.md#nope) `[g](inline-code.md)`\n",
    )
    problems = embed.link_problems(page)
    assert len(problems) == 2, problems
    assert "missing.md" in problems[0] and "'nope'" in problems[1]


def test_slugs_follow_github() -> None:
    assert embed.slug("`end()` housekeeping") == "end-housekeeping"
    assert embed.slug("Walkthrough: `sam build`, `sam deploy --guided`") == "walkthrough-sam-build-sam-deploy---guided"
    assert embed.slug("Coming from serverless-mysql (npm)") == "coming-from-serverless-mysql-npm"


def test_a_page_off_the_template_is_reported() -> None:
    good = "# T\n\nWhat for.\n\n## Getting started\n\n## Details\n\n## Extra\n\n## Limits and trade-offs\n"
    assert embed.text_template_problems("p.md", good) == []
    assert embed.text_template_problems("p.md", good.replace("What for.\n\n", "")) != []
    assert embed.text_template_problems("p.md", good.replace("## Details\n\n", "")) != []
    swapped = good.replace("## Getting started", "## X").replace("## Limits and trade-offs", "## Getting started")
    assert embed.text_template_problems("p.md", swapped) != []


def test_the_error_tree_is_drawn_from_the_classes() -> None:
    tree = embed.error_tree()
    assert tree.startswith("```text\nServerlessMySQLError")
    assert "│   └── ConfigTypeError  (also a TypeError)" in tree
    assert "└── TransactionAbortedError" in tree
