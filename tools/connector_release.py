"""A connector's release metadata for one core minor: version ``X.Y.Z.C.M`` and lockstep pins.

The one implementation behind every build of a connector: the hatch hook
(``tools/connector_build_hook.py``, linked as each connector's ``hatch_build.py``) calls
`release_metadata`, and the release tool builds through that hook, so a plain ``hatch build`` and a
release build cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from tools.versioning import CoreMinor, VersionError
from tools.workspace import Kind, Workspace, WorkspaceError, load, lockstep_requirements

__all__ = ["CORE_MINOR_VARIABLE", "pin_lockstep", "pinned_requirement", "release_metadata"]

CORE_MINOR_VARIABLE = "HEADWATER_CORE_MINOR"
"""Selects the core minor a connector is built for; the workspace's current one when unset."""


def pinned_requirement(requirement: Requirement, minor: CoreMinor) -> str:
    """``requirement`` with the version range that admits exactly ``minor``."""
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    marker = f"; {requirement.marker}" if requirement.marker else ""
    return f"{requirement.name}{extras}{minor.specifier}{marker}"


def release_metadata(
    root: Path,
    directory: str,
    *,
    written_version: str,
    requirements: dict[str, Any],
    core_minor: str | None,
) -> tuple[str, dict[str, Any]]:
    """The wheel version and requirements of connector ``directory`` built for ``core_minor``.

    ``written_version`` is the version hatch read from the connector's version file;
    ``requirements`` holds the hook's ``dependencies`` list and ``optional-dependencies`` table,
    lockstep packages written without a version. ``core_minor`` is ``C.M``, or ``None`` for the
    workspace's current minor. Returns the version and ``requirements`` with lockstep pins.
    """
    workspace = load(root)
    package = workspace.package(directory)
    if package.kind is not Kind.CONNECTOR:
        raise WorkspaceError(f"{directory} is released in lockstep with core: no release hook")
    if written_version != str(package.version):
        raise WorkspaceError(
            f"{directory}: hatch read version {written_version!r}, the workspace {package.version}"
        )
    minor = _minor(workspace, core_minor)
    try:
        label = package.label_for(minor)
    except WorkspaceError as exc:
        raise WorkspaceError(f"{CORE_MINOR_VARIABLE}={minor}: {exc}") from exc
    pinned: dict[str, Any] = {}
    if "dependencies" in requirements:
        pinned["dependencies"] = pin_lockstep(
            workspace, requirements["dependencies"], minor, directory
        )
    if "optional-dependencies" in requirements:
        pinned["optional-dependencies"] = {
            extra: pin_lockstep(workspace, texts, minor, f"{directory} [{extra}]")
            for extra, texts in requirements["optional-dependencies"].items()
        }
    return label.wheel_version, pinned


def pin_lockstep(
    workspace: Workspace, dependencies: Iterable[str], minor: CoreMinor, where: str
) -> list[str]:
    """``dependencies`` with every lockstep package pinned to ``minor``; the rest as written."""
    lockstep = dict(lockstep_requirements(workspace, dependencies, where))
    pinned = []
    for text in dependencies:
        requirement = lockstep.get(text)
        if requirement is None:
            pinned.append(text)
        elif requirement.specifier:
            raise WorkspaceError(
                f"{where}: write {requirement.name} without a version ({text!r}): the build "
                "pins it to the core minor it is built for"
            )
        else:
            pinned.append(pinned_requirement(requirement, minor))
    return pinned


def _minor(workspace: Workspace, text: str | None) -> CoreMinor:
    if not text:
        return workspace.current_minor
    try:
        return CoreMinor.parse(text)
    except VersionError as exc:
        raise WorkspaceError(f"{CORE_MINOR_VARIABLE}: {exc}") from exc
