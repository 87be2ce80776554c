"""MkDocs hooks (``hooks:`` in mkdocs.yml): one site from the project docs and every package's docs.

- ``on_files`` adds each package's ``docs/`` to the site (`tools.docs_gen.site_sources`);
- ``on_page_markdown`` fills in the generated blocks, checks every connector's page against the
  connector page template, and checks that ``docs/compatibility.md`` matches ``compatibility.toml``.

Problems are logged as warnings, so ``mkdocs build --strict`` fails on them.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # MkDocs puts only this file's directory on sys.path
    sys.path.insert(0, str(ROOT))

from tools import docs_gen  # noqa: E402
from tools.workspace import Kind, Workspace, load  # noqa: E402

log = logging.getLogger("mkdocs.hooks.headwater")

_workspace: Workspace | None = None


def _current() -> Workspace:
    """The workspace, read once per build (``on_config`` runs first on every build and rebuild)."""
    assert _workspace is not None, "on_config has not run"
    return _workspace


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Read the workspace for this build."""
    global _workspace
    _workspace = load(ROOT)
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add every package's docs files to the site."""
    sources = docs_gen.site_sources(_current())
    for uri, path in sources.items():
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    for package in _current().connectors:
        if f"connectors/{package.short_name}/index.md" not in sources:
            log.warning(
                f"{package.name} has no docs/index.md; "
                "start from tools/templates/connector/docs/index.md"
            )
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Fill in generated blocks; warn about a page that breaks the template or is stale."""
    workspace = _current()
    uri = page.file.src_uri
    if uri == docs_gen.COMPATIBILITY_PAGE.name:
        expected = docs_gen.compatibility_page(workspace)
        if (ROOT / docs_gen.COMPATIBILITY_PAGE).read_text(encoding="utf-8") != expected:
            log.warning(f"{uri} does not match compatibility.toml; run `nox -s compat_table`")
    package = next(
        (
            p
            for p in workspace.packages
            if p.kind is Kind.CONNECTOR and uri == f"connectors/{p.short_name}/index.md"
        ),
        None,
    )
    uris = {Path(f.abs_src_path).resolve(): f.src_uri for f in files if f.abs_src_path}
    markdown = docs_gen.site_links(markdown, Path(page.file.abs_src_path or ROOT), uri, uris)
    expansion = docs_gen.expand(markdown, workspace, package)
    for problem in expansion.problems:
        log.warning(f"{uri}: {problem}")
    return expansion.markdown
