"""Pre-release checks: what must hold before a package's current version is built and tagged.

Invalid versions and labels for core minors that ``compatibility.toml`` does not support are refused
when the workspace is loaded (`tools.workspace.load`); this module adds what depends on the release:

- the packages released in lockstep with core share one version;
- a lockstep package's requirements on the other lockstep distributions admit exactly its core
  minor; a connector names them without a version (its build hook pins them) and needs core;
- the version is higher than every version the package has been tagged with;
- ``CHANGELOG.md`` has an entry (a ``## X.Y.Z`` heading) for the version, not marked unreleased.
"""

from __future__ import annotations

import re

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tools import gitrepo
from tools.workspace import Kind, Package, Workspace, lockstep_requirements

__all__ = ["problems"]


def problems(workspace: Workspace, package: Package) -> list[str]:
    """Everything that stops ``package``'s current version from being released; empty when ready."""
    found = []
    if package.kind is Kind.LOCKSTEP and package.version != workspace.core.version:
        found.append(
            f"version {package.version} differs from core's {workspace.core.version}; "
            "lockstep packages share one version"
        )

    found += _lockstep_problems(workspace, package)

    released = gitrepo.release_labels(workspace.root, package.name)
    if released and package.version <= released[-1].version:
        found.append(
            f"version {package.version} is not bumped since the tag "
            f"{released[-1].tag(package.name)}"
        )

    entry = _changelog_heading(package)
    if entry is None:
        found.append(
            f"{package.changelog.name} has no entry for {package.version} "
            f"(a heading '## {package.version}')"
        )
    elif "unreleased" in entry.lower():
        found.append(
            f"{package.changelog.name} still calls {package.version} unreleased: {entry!r}"
        )
    return found


def _lockstep_problems(workspace: Workspace, package: Package) -> list[str]:
    """Lockstep packages pin one core minor; connectors name them without a version (the build
    hook pins them to the minor of each build) and must depend on headwater-core."""
    requirements = lockstep_requirements(workspace, package.requirements, package.pyproject)
    if package.kind is Kind.CONNECTOR:
        found = [
            f"pyproject.toml requires {original!r}; write {requirement.name} without a version"
            for original, requirement in requirements
            if requirement.specifier
        ]
        core = canonicalize_name(workspace.core.distribution)
        if not any(canonicalize_name(r.name) == core for _, r in requirements):
            found.append(
                f"pyproject.toml: a connector must depend on {workspace.core.distribution}"
            )
        return found
    allowed = [SpecifierSet(m.specifier) for m in package.core_minors]
    return [
        f"pyproject.toml requires {original!r}; expected "
        + " or ".join(f"'{requirement.name}{m.specifier}'" for m in package.core_minors)
        for original, requirement in requirements
        if requirement.specifier not in allowed
    ]


def _changelog_heading(package: Package) -> str | None:
    """The changelog's level-2 heading for the version (``## 1.2.0``, ``## [1.2.0] - 2024-05-01``).

    A heading may name the labels instead (``## 1.2.0-0.1, 1.2.0-0.2``) and may carry a date.
    """
    try:
        text = package.changelog.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    version = re.escape(str(package.version))
    match = re.search(rf"^##\s+\[?v?{version}(?![.\d]).*$", text, flags=re.MULTILINE)
    return match[0] if match else None
