"""The relative-link check (tools/links.py) and the site's link rewriting (tools/docs_gen.py)."""

from __future__ import annotations

from pathlib import Path

from tools import docs_gen, links


def test_broken_files_and_anchors_are_found_and_code_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\n## Pipeline files\n\ntext\n")
    page = tmp_path / "README.md"
    page.write_text(
        "See [the guide](docs/guide.md), [pipelines](docs/guide.md#pipeline-files),\n"
        "[the web](https://example.com/x.md) and [top](#readme).\n"
        "Broken: [gone](docs/gone.md) and [anchor](docs/guide.md#windows).\n"
        "`[not a link](nowhere.md)`\n\n```\n[also not](nowhere.md)\n```\n\n# Readme\n"
    )
    assert links.broken_links(page) == [
        f"{page}:3: docs/gone.md (no such file)",
        f"{page}:3: docs/guide.md#windows (no heading #windows in guide.md)",
    ]


def test_slugs_match_mkdocs_headings() -> None:
    assert links.slug("Stopping and resuming") == "stopping-and-resuming"
    assert links.slug("`WindowResult` and friends!") == "windowresult-and-friends"


def test_repository_links_become_site_links(tmp_path: Path) -> None:
    core_docs = tmp_path / "core" / "docs"
    core_docs.mkdir(parents=True)
    (tmp_path / "docs").mkdir()
    uris = {
        (core_docs / "index.md").resolve(): "packages/core/index.md",
        (core_docs / "state.md").resolve(): "packages/core/state.md",
        (tmp_path / "docs" / "architecture.md").resolve(): "architecture.md",
    }
    index = "[core](../core/docs/index.md#pipeline-files) [web](https://x.org/a.md)"
    assert docs_gen.site_links(index, tmp_path / "docs" / "index.md", "index.md", uris) == (
        "[core](packages/core/index.md#pipeline-files) [web](https://x.org/a.md)"
    )
    page = "[arch](../../docs/architecture.md) [state](state.md) [src](../src/x.py)"
    assert docs_gen.site_links(page, core_docs / "index.md", "packages/core/index.md", uris) == (
        "[arch](../../architecture.md) [state](state.md) [src](../src/x.py)"
    )
