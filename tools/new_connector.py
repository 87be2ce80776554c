"""``python -m tools new-connector NAME``: scaffold ``connector-NAME/`` from the connector template.

The template (``tools/templates/connector/``) is a complete package: pyproject (hatchling, the
workspace's build hook linked as ``headwater_build.py`` for the release version and pins, hatch
environments for ``hatch test`` and ``hatch run lint|types|docs``, an entry point in
``headwater.connectors``), the PEP 420 layout
``src/headwater/connectors/NAME/`` (no ``__init__.py`` in ``headwater/`` or ``connectors/``), a docs
page in the connector page template, a changelog and a test module wired to connector-testing's
conformance suites. It builds and installs as soon as it is scaffolded.

Placeholders ``{{key}}`` in file names and contents are replaced by the values of `placeholders`.
The new connector is registered in ``compatibility.toml`` for the current core minor, and
``docs/compatibility.md`` is regenerated.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from tools.docs_gen import COMPATIBILITY_PAGE, compatibility_page
from tools.versioning import CoreMinor
from tools.workspace import COMPATIBILITY_FILE, REPOSITORY, WorkspaceError, load

__all__ = ["BUILD_HOOK", "BUILD_HOOK_LINK", "TEMPLATE", "main", "placeholders", "scaffold"]

TEMPLATE = Path(__file__).resolve().parent / "templates" / "connector"
BUILD_HOOK = Path(__file__).resolve().parent / "connector_build_hook.py"
BUILD_HOOK_LINK = "headwater_build.py"
"""Every connector's link to `BUILD_HOOK`: its hatch metadata hook (version and lockstep pins)."""
_NAME = re.compile(r"[a-z][a-z0-9]*")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_RESERVED = {"base", "testing"}


def placeholders(name: str, title: str, core: CoreMinor) -> dict[str, str]:
    """The values of the template's ``{{key}}`` placeholders for connector ``name``."""
    return {
        "name": name,
        "title": title,
        "class_prefix": re.sub(r"\W", "", title.title() if title.islower() else title),
        "distribution": f"headwater-connector-{name}",
        "core_specifier": core.specifier,
    }


def scaffold(root: Path, name: str, title: str | None = None) -> Path:
    """Create ``root/connector-NAME/`` from the template; register it in the data and the docs."""
    if not _NAME.fullmatch(name) or name in _RESERVED:
        raise WorkspaceError(
            f"invalid connector name {name!r}: use one lowercase word of letters and digits "
            f"(such as kafka or opensearch), not {' or '.join(sorted(_RESERVED))}"
        )
    target = root / f"connector-{name}"
    if target.exists():
        raise WorkspaceError(f"{target} already exists")
    core = load(root).current_minor
    values = placeholders(name, title or name.capitalize(), core)

    def fill(text: str) -> str:
        def value(match: re.Match[str]) -> str:
            if match[1] not in values:
                raise WorkspaceError(f"template placeholder {match[0]} has no value")
            return values[match[1]]

        return _PLACEHOLDER.sub(value, text)

    for source in sorted(TEMPLATE.rglob("*")):
        if source.is_dir() or "__pycache__" in source.parts:
            continue
        destination = target / fill(source.relative_to(TEMPLATE).as_posix())
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(fill(source.read_text(encoding="utf-8")), encoding="utf-8")
    # The build hook that every connector shares (its pyproject names this link).
    (target / BUILD_HOOK_LINK).symlink_to(Path("..") / "tools" / BUILD_HOOK.name)

    data_file = root / COMPATIBILITY_FILE
    text = data_file.read_text(encoding="utf-8")
    separator = "" if text.endswith("\n") else "\n"
    data_file.write_text(
        f'{text}{separator}\n[connectors.{target.name}]\ncore = ["{core}"]\n', encoding="utf-8"
    )
    workspace = load(root)  # the workspace must accept the new package as it is
    page = root / COMPATIBILITY_PAGE
    if page.parent.is_dir():
        page.write_text(compatibility_page(workspace), encoding="utf-8")
    return target


def main(argv: list[str]) -> int:
    """Run ``new-connector``; return the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m tools new-connector",
        description="Scaffold a connector package from tools/templates/connector.",
    )
    parser.add_argument("name", help="one lowercase word: the connector identifier (kafka)")
    parser.add_argument("--title", help="the display name (OpenSearch); default: Name")
    parser.add_argument("--root", type=Path, default=REPOSITORY, help="default: this repository")
    args = parser.parse_args(argv)
    try:
        target = scaffold(args.root, args.name, args.title)
    except WorkspaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"created {target}/ and registered it in {COMPATIBILITY_FILE} and {COMPATIBILITY_PAGE};\n"
        "commit the three together. Next:\n"
        "  tools/dev setup   install it (editable) with the workspace\n"
        f"  nox -t {target.name}   run its tests against every supported core minor"
    )
    return 0
