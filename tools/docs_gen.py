"""The generated parts of the docs site: the compatibility page and the connector pages' blocks.

Every connector's ``docs/index.md`` follows one template, the one new connectors are scaffolded with
(``tools/templates/connector/docs/index.md``): the level-2 sections of `SECTIONS`, in that order,
with generated blocks where the page says

    <!-- headwater:install -->         the install line for the package
    <!-- headwater:options -->         the options tables of each connector the package registers
    <!-- headwater:options NAME -->    the options tables of the connector registered as NAME
    <!-- headwater:compatibility -->   the core minors the current version is released for
    <!-- headwater:connectors -->      every connector package (for the connectors overview)
    <!-- headwater:stats -->           lines per connector and part (tools/connector_stats.py)

Options tables come from the ``options`` of the ``ConnectorSpec`` of each entry point in the
``headwater.connectors`` group (one table per role: source, sink, lookup...), through
``pydantic.TypeAdapter(model).json_schema()``; that needs the package installed, and pydantic,
which is imported only then.

``python -m tools compat-table`` writes `COMPATIBILITY_PAGE` (``--check`` only compares).
"""

from __future__ import annotations

import argparse
import json
import posixpath
import re
import sys
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from tools import connector_stats
from tools.workspace import (
    COMPATIBILITY_FILE,
    REPOSITORY,
    CoreStatus,
    Kind,
    Package,
    Workspace,
    WorkspaceError,
    load,
)

__all__ = [
    "COMPATIBILITY_PAGE",
    "ENTRY_POINT_GROUP",
    "SECTIONS",
    "DocsError",
    "Expansion",
    "compatibility_page",
    "expand",
    "main",
    "options_table",
    "site_sources",
]

COMPATIBILITY_PAGE = Path("docs/compatibility.md")
ENTRY_POINT_GROUP = "headwater.connectors"
SECTIONS = (
    "What it does",
    "Install",
    "Guarantees",
    "Options",
    "Metrics",
    "Limitations",
    "Compatibility",
)
"""The level-2 sections every connector page has, in this order."""

_MARKER = re.compile(r"^<!--\s*headwater:(?P<kind>[a-z]+)(?:\s+(?P<arg>\S+))?\s*-->[ \t]*$", re.M)
_FENCE = re.compile(r"^(```|~~~)")


class DocsError(Exception):
    """A generated block cannot be produced."""


@dataclass(frozen=True)
class Expansion:
    """A page with its generated blocks filled in, and what was wrong with it."""

    markdown: str
    problems: list[str]


def site_sources(workspace: Workspace) -> dict[str, Path]:
    """Every package's docs files, keyed by their path in the site.

    A lockstep package's ``docs/`` appears under ``packages/<dir>/``, a connector's under
    ``connectors/<name>/`` (``connector-kafka`` -> ``connectors/kafka/``).
    """
    sources = {}
    for package in workspace.packages:
        docs = package.path / "docs"
        prefix = (
            f"packages/{package.name}"
            if package.kind is Kind.LOCKSTEP
            else f"connectors/{package.short_name}"
        )
        for path in sorted(docs.rglob("*")):
            if path.is_file():
                sources[f"{prefix}/{path.relative_to(docs).as_posix()}"] = path
    return sources


_LINK_TARGET = re.compile(r"(!?\[[^\]\n]*\]\(\s*)([^)\s#]+)(#[^)\s]*)?")


def site_links(markdown: str, page_path: Path, page_uri: str, uris: dict[Path, str]) -> str:
    """Repository-relative links rewritten to the site's paths.

    Pages link to each other as files in the repository (``../../docs/architecture.md``,
    ``../connector-kafka/docs/index.md``), so they read correctly there; in the site a package's
    docs live under another path (see :func:`site_sources`). ``uris`` maps each file in the
    site to its path there; links to other targets (the web, files outside the site) are kept.
    """
    base = posixpath.dirname(page_uri)

    def rewrite(match: re.Match[str]) -> str:
        target = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("/"):
            return match.group(0)
        uri = uris.get((page_path.parent / target).resolve())
        if uri is None:
            return match.group(0)
        return f"{match.group(1)}{posixpath.relpath(uri, base or '.')}{match.group(3) or ''}"

    return _LINK_TARGET.sub(rewrite, markdown)


def expand(markdown: str, workspace: Workspace, package: Package | None) -> Expansion:
    """Fill in the generated blocks of a page; check a connector's page against the template.

    ``package`` is the connector whose ``docs/index.md`` this is, or ``None`` for any other page.
    """
    problems: list[str] = []
    if package is not None:
        problems += _template_problems(markdown)

    def block(match: re.Match[str]) -> str:
        kind, arg = match["kind"], match["arg"]
        try:
            if kind == "connectors" and arg is None:
                return _connectors_block(workspace)
            if kind == "stats" and arg is None:
                return connector_stats.table(connector_stats.stats(workspace))
            if kind == "options" and (package is not None or arg is not None):
                return _options_block(package.distribution if package else None, arg)
            if package is not None and arg is None and kind in ("install", "compatibility"):
                render = _install_block if kind == "install" else _compatibility_block
                return render(package)
        except DocsError as exc:
            problems.append(str(exc))
            return f"!!! failure\n    {exc}\n"
        problems.append(f"unknown or misplaced marker {match[0]!r}")
        return match[0]

    return Expansion(_MARKER.sub(block, markdown), problems)


def _template_problems(markdown: str) -> list[str]:
    headings = []
    in_fence = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.startswith("## "):
            headings.append(line[3:].strip())
    present = [h for h in headings if h in SECTIONS]
    problems = []
    if present != list(SECTIONS):
        problems.append(
            f"a connector page has the sections {', '.join(SECTIONS)} in this order; "
            f"found: {', '.join(present) or 'none of them'}"
        )
    kinds = {match["kind"] for match in _MARKER.finditer(markdown)}
    problems += [
        f"missing <!-- headwater:{kind} -->"
        for kind in ("install", "options", "compatibility")
        if kind not in kinds
    ]
    return problems


def _install_block(package: Package) -> str:
    minors = ", ".join(str(m) for m in package.core_minors)
    return (
        f"```\npip install {package.distribution}\n```\n\n"
        f"pip picks the build that matches your headwater-core (released for core {minors}). "
        "To keep the core minor you have, name it in the same command or in your requirements, "
        f'for example `pip install "headwater-core=={package.core_minors[-1]}.*" '
        f"{package.distribution}`.\n"
    )


def _compatibility_block(package: Package) -> str:
    lines = [
        "| core | release | wheel version | requires |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {label.core} | `{label}` | `{label.wheel_version}` | "
        f"`headwater-core{label.core.specifier}` |"
        for label in package.labels
        if label.core is not None
    ]
    return "\n".join(lines) + "\n"


def _connectors_block(workspace: Workspace) -> str:
    if not workspace.connectors:
        return "No connector packages yet.\n"
    lines = ["| connector | package | version | core minors |", "|---|---|---|---|"]
    lines += [
        f"| [{p.short_name}]({p.short_name}/index.md) | `{p.distribution}` | {p.version} | "
        f"{', '.join(str(m) for m in p.core_minors)} |"
        for p in workspace.connectors
    ]
    return "\n".join(lines) + "\n"


def _options_block(distribution: str | None, identifier: str | None) -> str:
    selected = [
        ep
        for ep in entry_points(group=ENTRY_POINT_GROUP)
        if (identifier is None or ep.name == identifier)
        and (distribution is None or _distribution(ep) == canonicalize_name(distribution))
    ]
    if not selected:
        wanted = f"{identifier!r}" if identifier else f"of {distribution}"
        raise DocsError(
            f"no {ENTRY_POINT_GROUP} entry point {wanted} is installed; "
            "install the package to document its options"
        )
    parts = []
    several = len(selected) > 1
    for ep in sorted(selected, key=lambda ep: ep.name):
        schemas = _options_schemas(ep)
        if several:
            parts.append(f"### `{ep.name}`\n")
        if not schemas:
            parts.append(options_table({}))
        for role, schema in schemas.items():
            if len(schemas) > 1:
                heading = "####" if several else "###"
                parts.append(f"{heading} {role.capitalize()} options\n")
            parts.append(options_table(schema))
    return "\n".join(parts)


def _distribution(ep: EntryPoint) -> str | None:
    return canonicalize_name(ep.dist.name) if ep.dist is not None else None


def _options_schemas(ep: EntryPoint) -> dict[str, dict[str, Any]]:
    """The JSON Schema of each options model of the ``ConnectorSpec`` at ``ep``, by role."""
    from pydantic import TypeAdapter  # only the docs build needs pydantic

    try:
        models = ep.load().options
        return {role: TypeAdapter(model).json_schema() for role, model in models.items()}
    except Exception as exc:  # any failure of a third-party import is reported, not raised
        raise DocsError(f"cannot read the options models of connector {ep.name!r}: {exc}") from exc


def options_table(schema: dict[str, Any]) -> str:
    """A Markdown table of the properties of an object's JSON Schema.

    Raises:
        DocsError: a property has no description (every option must be described).
    """
    properties: dict[str, dict[str, Any]] = schema.get("properties", {})
    if not properties:
        return "This connector has no options.\n"
    if undescribed := [name for name, prop in properties.items() if not prop.get("description")]:
        raise DocsError(
            f"{schema.get('title', 'options')}: no description for {', '.join(undescribed)} "
            "(give each field a docstring, a Field(description=...) or an Args: entry)"
        )
    required = set(schema.get("required", []))
    definitions: dict[str, dict[str, Any]] = schema.get("$defs", {})
    lines = ["| option | type | default | description |", "|---|---|---|---|"]
    for name, prop in properties.items():
        if name in required:
            default = "required"
        elif "default" in prop:
            default = f"`{json.dumps(prop['default'])}`"
        else:
            default = ""
        description = prop.get("description", "")
        lines.append(
            f"| `{name}` | {_escape(_type(prop, definitions))} | {_escape(default)} | "
            f"{_escape(description)} |"
        )
    return "\n".join(lines) + "\n"


def _type(prop: dict[str, Any], definitions: dict[str, dict[str, Any]]) -> str:
    """A short, readable name for a JSON Schema type."""
    if "$ref" in prop:
        target = definitions.get(prop["$ref"].rsplit("/", 1)[-1], {})
        return _type(target, definitions) if "enum" in target else target.get("title", "object")
    if "enum" in prop:
        return " or ".join(f"`{json.dumps(value)}`" for value in prop["enum"])
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    for combinator in ("anyOf", "oneOf"):
        if combinator in prop:
            return " or ".join(_type(choice, definitions) for choice in prop[combinator])
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type(prop.get('items', {}), definitions)}"
    if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
        return f"mapping of string to {_type(prop['additionalProperties'], definitions)}"
    if prop.get("format") == "duration":
        return "duration (ISO 8601, such as PT30S)"
    name = " or ".join(kind) if isinstance(kind, list) else str(kind)
    name = name.replace("null", "none")
    return f"{name} ({prop['format']})" if "format" in prop else name


def _escape(text: str) -> str:
    """Text that fits in one cell of a Markdown table."""
    return text.replace("|", "\\|").replace("\n", " ")


def compatibility_page(workspace: Workspace) -> str:
    """The Markdown of `COMPATIBILITY_PAGE`, generated from ``compatibility.toml``."""
    minors = [line.minor for line in workspace.core_lines]
    lockstep = ", ".join(
        f"`{p.distribution}`" for p in workspace.packages if p.kind is Kind.LOCKSTEP
    )
    status = {
        CoreStatus.CURRENT: "current: developed in the repository's main branch",
        CoreStatus.SUPPORTED: "supported: still receives connector releases",
    }
    lines = [
        "# Compatibility",
        "",
        f"<!-- Generated from {COMPATIBILITY_FILE} by `nox -s compat_table`. Do not edit. -->",
        "",
        "Which core minors each connector is released for. A connector release `X.Y.Z` is built",
        "once per core minor `C.M` it supports: labelled `X.Y.Z-C.M`, installed as the wheel",
        "`X.Y.Z.C.M`, which requires `headwater-core>=C.M,<C.(M+1)`. See",
        "[Versioning](versioning.md).",
        "",
        "## Core",
        "",
        f"{lockstep} are released together, with one version `C.M.P`.",
        "",
        "| core minor | status |",
        "|---|---|",
        *(f"| {line.minor} | {status[line.status]} |" for line in reversed(workspace.core_lines)),
        "",
        "## Connectors",
        "",
    ]
    if workspace.connectors:
        lines += [
            "| connector | package | " + " | ".join(f"core {m}" for m in reversed(minors)) + " |",
            "|---|---|" + "---|" * len(minors),
        ]
        lines += [
            f"| [{p.short_name}](../{p.path.name}/docs/index.md) | `{p.distribution}` | "
            + " | ".join("yes" if m in p.core_minors else "no" for m in reversed(minors))
            + " |"
            for p in workspace.connectors
        ]
    else:
        lines.append("No connector packages yet.")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """``python -m tools compat-table [--check]``: write or compare `COMPATIBILITY_PAGE`."""
    parser = argparse.ArgumentParser(
        prog="python -m tools compat-table",
        description=f"Regenerate {COMPATIBILITY_PAGE} from {COMPATIBILITY_FILE}.",
    )
    parser.add_argument("--root", type=Path, default=REPOSITORY, help="default: this repository")
    parser.add_argument("--check", action="store_true", help="only report whether it is current")
    args = parser.parse_args(argv)
    try:
        workspace = load(args.root)
    except WorkspaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    page = args.root / COMPATIBILITY_PAGE
    text = compatibility_page(workspace)
    if args.check:
        current = page.is_file() and page.read_text(encoding="utf-8") == text
        print(f"{COMPATIBILITY_PAGE} is {'current' if current else 'stale'}", file=sys.stderr)
        return 0 if current else 1
    page.write_text(text, encoding="utf-8")
    print(f"wrote {COMPATIBILITY_PAGE}")
    return 0
