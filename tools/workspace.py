"""The workspace model: its packages, their versions and the core minors each is released for.

``compatibility.toml`` at the repository root is the one place that says which core minors exist
and which of them each connector supports. This module is the only reader of that file: the release
tool, ``noxfile.py`` and the docs all go through `load`. It reads the package directories too
(pyproject and version file) without importing any package, so it works before any is installed.

Schema of ``compatibility.toml``::

    lockstep = ["core", "connector-base", "connector-testing"]  # released with core: one C.M.P

    [core."0.1"]
    status = "current"     # the minor of core's version file, built from this workspace
    # status = "supported" # an older minor, built from its newest tag core-v<C.M>.<P>

    [connectors.connector-kafka]   # a package directory
    core = ["0.1"]                 # core minors it is released for: one wheel X.Y.Z.C.M each

Every error names the file and the field at fault.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from tools.versioning import CoreMinor, Label, SemVer, VersionError

__all__ = [
    "COMPATIBILITY_FILE",
    "CORE_PACKAGE",
    "REPOSITORY",
    "CoreLine",
    "CoreStatus",
    "Kind",
    "Package",
    "Workspace",
    "WorkspaceError",
    "load",
    "lockstep_requirements",
    "project_requirements",
]

REPOSITORY = Path(__file__).resolve().parent.parent
"""The repository these tools belong to: the default workspace of every command."""
COMPATIBILITY_FILE = "compatibility.toml"
CORE_PACKAGE = "core"
"""The directory of headwater-core; its version's minor is the workspace's current core minor."""

_VERSION_ASSIGNMENT = re.compile(r"""^__version__\s*=\s*["']([^"']*)["']""", re.MULTILINE)


class WorkspaceError(Exception):
    """The workspace or its compatibility data is inconsistent."""


class CoreStatus(StrEnum):
    """How a core minor is built for tests and releases."""

    CURRENT = "current"
    """The minor of the workspace's core: built from this checkout."""
    SUPPORTED = "supported"
    """An older minor that still gets connector releases: built from its newest git tag."""


class Kind(StrEnum):
    """How a package is versioned."""

    LOCKSTEP = "lockstep"
    """Released together with headwater-core under the same ``C.M.P``."""
    CONNECTOR = "connector"
    """Has its own ``X.Y.Z``, released once per supported core minor as ``X.Y.Z-C.M``."""


@dataclass(frozen=True)
class CoreLine:
    """One core minor listed in ``compatibility.toml``."""

    minor: CoreMinor
    status: CoreStatus


@dataclass(frozen=True)
class Package:
    """One package directory of the workspace."""

    name: str
    """The directory name; also the prefix of the package's release tags."""
    path: Path
    distribution: str
    """The distribution name from ``[project] name``."""
    version: SemVer
    version_file: Path
    """The file hatch reads ``__version__`` from."""
    kind: Kind
    core_minors: tuple[CoreMinor, ...]
    """The core minors this package is released for, oldest first."""
    requirements: tuple[str, ...]
    """Every requirement string of ``[project]``: dependencies, then optional dependencies."""
    extras: tuple[str, ...]
    """The names of the package's optional-dependency groups."""

    @property
    def labels(self) -> tuple[Label, ...]:
        """The labels a release of the current version gets: one per supported core minor."""
        if self.kind is Kind.LOCKSTEP:
            return (Label(self.version),)
        return tuple(Label(self.version, minor) for minor in self.core_minors)

    @property
    def pyproject(self) -> Path:
        """The package's ``pyproject.toml``."""
        return self.path / "pyproject.toml"

    @property
    def changelog(self) -> Path:
        """The package's ``CHANGELOG.md``."""
        return self.path / "CHANGELOG.md"

    @property
    def short_name(self) -> str:
        """The name without the ``connector-`` prefix (``kafka``), as used in docs URLs."""
        return self.name.removeprefix("connector-")

    def label_for(self, minor: CoreMinor) -> Label:
        """The label of this package's release for ``minor``; refuse a minor it does not support."""
        if minor not in self.core_minors:
            supported = ", ".join(str(m) for m in self.core_minors)
            raise WorkspaceError(
                f"{self.name} is not released for core {minor}; "
                f"{COMPATIBILITY_FILE} lists: {supported}"
            )
        return self.labels[self.core_minors.index(minor)]


@dataclass(frozen=True)
class Workspace:
    """The packages of one checkout and the core minors they are released for."""

    root: Path
    core_lines: tuple[CoreLine, ...]
    """Every core minor listed in ``compatibility.toml``, oldest first."""
    packages: tuple[Package, ...]
    """Lockstep packages in the data file's order, then connectors sorted by name."""

    @property
    def current_minor(self) -> CoreMinor:
        """The core minor built from this workspace."""
        return next(line.minor for line in self.core_lines if line.status is CoreStatus.CURRENT)

    @property
    def core(self) -> Package:
        """The headwater-core package."""
        return self.package(CORE_PACKAGE)

    @property
    def lockstep_distributions(self) -> frozenset[str]:
        """Distribution names of the packages released with core (the ones connectors pin)."""
        return frozenset(p.distribution for p in self.packages if p.kind is Kind.LOCKSTEP)

    @property
    def connectors(self) -> tuple[Package, ...]:
        """The connector packages, sorted by name."""
        return tuple(p for p in self.packages if p.kind is Kind.CONNECTOR)

    def package(self, name: str) -> Package:
        """The package in directory ``name``; the error lists the known ones."""
        for package in self.packages:
            if package.name == name:
                return package
        known = ", ".join(p.name for p in self.packages)
        raise WorkspaceError(f"unknown package {name!r}; the workspace has: {known}")

    def status(self, minor: CoreMinor) -> CoreStatus:
        """The status of ``minor`` in ``compatibility.toml``."""
        for line in self.core_lines:
            if line.minor == minor:
                return line.status
        raise WorkspaceError(f"core {minor} is not listed in {COMPATIBILITY_FILE}")


def load(root: Path) -> Workspace:
    """Read ``compatibility.toml`` and every package directory under ``root``."""
    data_file = root / COMPATIBILITY_FILE
    try:
        data = tomllib.loads(data_file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise WorkspaceError(f"cannot read {data_file}: {exc}") from exc

    unknown = set(data) - {"lockstep", "core", "connectors"}
    if unknown:
        raise WorkspaceError(f"{COMPATIBILITY_FILE}: unknown keys {sorted(unknown)}")
    core_lines = _core_lines(data.get("core"))
    current = next(line.minor for line in core_lines if line.status is CoreStatus.CURRENT)
    supported = {line.minor for line in core_lines}

    lockstep_names = _string_list(data.get("lockstep"), "lockstep")
    if CORE_PACKAGE not in lockstep_names:
        raise WorkspaceError(f"{COMPATIBILITY_FILE}: lockstep must list {CORE_PACKAGE!r}")
    connector_minors = _connector_minors(data.get("connectors", {}), supported, set(lockstep_names))

    directories = {
        path.parent.name
        for path in root.glob("connector-*/pyproject.toml")
        if path.parent.name not in lockstep_names
    }
    if missing := sorted(directories - connector_minors.keys()):
        raise WorkspaceError(
            f"{COMPATIBILITY_FILE}: no entry for {', '.join(missing)}; add "
            f'[connectors.{missing[0]}] with core = ["{current}"] (the core minors it supports)'
        )
    if stale := sorted(connector_minors.keys() - directories):
        raise WorkspaceError(
            f"{COMPATIBILITY_FILE}: [connectors] lists {', '.join(stale)}, "
            "which is not a package directory"
        )

    packages = [_package(root, name, Kind.LOCKSTEP, (current,)) for name in lockstep_names]
    packages += [
        _package(root, name, Kind.CONNECTOR, connector_minors[name]) for name in sorted(directories)
    ]
    core_version = packages[lockstep_names.index(CORE_PACKAGE)].version
    if core_version.core_minor != current:
        raise WorkspaceError(
            f"{COMPATIBILITY_FILE}: the current core minor is {current}, but "
            f"{CORE_PACKAGE}/ is at {core_version}; mark core {core_version.core_minor} current"
        )
    return Workspace(root=root, core_lines=core_lines, packages=tuple(packages))


def _core_lines(table: object) -> tuple[CoreLine, ...]:
    if not isinstance(table, dict) or not table:
        raise WorkspaceError(f'{COMPATIBILITY_FILE}: [core."C.M"] tables are required')
    lines = []
    for key, entry in table.items():
        where = f'{COMPATIBILITY_FILE}: [core."{key}"]'
        try:
            minor = CoreMinor.parse(key)
        except VersionError as exc:
            raise WorkspaceError(f"{where}: {exc}") from exc
        status = entry.get("status") if isinstance(entry, dict) else None
        if status not in [str(s) for s in CoreStatus]:
            choices = ", ".join(repr(str(s)) for s in CoreStatus)
            raise WorkspaceError(f"{where}: status must be one of {choices}, not {status!r}")
        lines.append(CoreLine(minor, CoreStatus(status)))
    lines.sort(key=lambda line: line.minor)
    currents = [line for line in lines if line.status is CoreStatus.CURRENT]
    if len(currents) != 1:
        raise WorkspaceError(
            f'{COMPATIBILITY_FILE}: exactly one core minor must be "current", found {len(currents)}'
        )
    if currents[0] is not lines[-1]:
        raise WorkspaceError(
            f'{COMPATIBILITY_FILE}: the "current" core minor must be the newest listed'
        )
    return tuple(lines)


def _connector_minors(
    table: object, supported: set[CoreMinor], lockstep: set[str]
) -> dict[str, tuple[CoreMinor, ...]]:
    if not isinstance(table, dict):
        raise WorkspaceError(f"{COMPATIBILITY_FILE}: [connectors] must be a table")
    result: dict[str, tuple[CoreMinor, ...]] = {}
    for name, entry in table.items():
        where = f"{COMPATIBILITY_FILE}: [connectors.{name}]"
        if name in lockstep:
            raise WorkspaceError(f"{where}: {name} is released in lockstep with core")
        if not isinstance(entry, dict) or set(entry) != {"core"}:
            raise WorkspaceError(f'{where}: expected exactly one key, core = ["C.M", ...]')
        minors = []
        for text in _string_list(entry["core"], f"{where} core"):
            try:
                minor = CoreMinor.parse(text)
            except VersionError as exc:
                raise WorkspaceError(f"{where}: {exc}") from exc
            if minor not in supported:
                listed = ", ".join(str(m) for m in sorted(supported))
                raise WorkspaceError(
                    f"{where}: core {minor} is not a supported core minor (listed: {listed})"
                )
            minors.append(minor)
        if not minors or len(set(minors)) != len(minors):
            raise WorkspaceError(f"{where}: core must list each supported minor once")
        result[name] = tuple(sorted(minors))
    return result


def _string_list(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise WorkspaceError(f"{COMPATIBILITY_FILE}: {where} must be a list of strings")
    return list(value)


def _package(root: Path, name: str, kind: Kind, core_minors: tuple[CoreMinor, ...]) -> Package:
    path = root / name
    pyproject_file = path / "pyproject.toml"
    try:
        pyproject: dict[str, Any] = tomllib.loads(pyproject_file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise WorkspaceError(f"{name}: cannot read {pyproject_file}: {exc}") from exc
    project = pyproject.get("project", {})
    version_path = pyproject.get("tool", {}).get("hatch", {}).get("version", {}).get("path")
    if "name" not in project or not version_path:
        raise WorkspaceError(
            f"{pyproject_file}: [project] name and [tool.hatch.version] path are required"
        )
    version_file = path / version_path
    try:
        match = _VERSION_ASSIGNMENT.search(version_file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WorkspaceError(f"{name}: cannot read {version_file}: {exc}") from exc
    if match is None:
        raise WorkspaceError(f'{version_file}: no __version__ = "X.Y.Z" line')
    try:
        version = SemVer.parse(match.group(1))
    except VersionError as exc:
        raise WorkspaceError(f"{version_file}: {exc}") from exc
    return Package(
        name=name,
        path=path,
        distribution=project["name"],
        version=version,
        version_file=version_file,
        kind=kind,
        core_minors=core_minors,
        requirements=project_requirements(pyproject),
        extras=tuple(_requirement_table(pyproject, "optional-dependencies") or {}),
    )


def project_requirements(pyproject: dict[str, Any]) -> tuple[str, ...]:
    """Every requirement string of a ``pyproject.toml``: dependencies, then optional ones."""
    requirements = list(_requirement_table(pyproject, "dependencies") or [])
    for extra in (_requirement_table(pyproject, "optional-dependencies") or {}).values():
        requirements += extra
    return tuple(requirements)


def _requirement_table(pyproject: dict[str, Any], key: str) -> Any:
    """``[project]``'s ``key``; a dynamic one (a connector's) from its build hook's table, where
    lockstep packages are written without a version (``tools/connector_build_hook.py``)."""
    project = pyproject.get("project", {})
    if key not in project.get("dynamic", []):
        return project.get(key)
    hooks = pyproject.get("tool", {}).get("hatch", {}).get("metadata", {}).get("hooks", {})
    return hooks.get("custom", {}).get(key)


def lockstep_requirements(
    workspace: Workspace, requirements: Iterable[str], where: Path
) -> list[tuple[str, Requirement]]:
    """The requirements (as written, and parsed) on distributions released in lockstep with core.

    ``where`` names the file the requirements come from, for errors.
    """
    lockstep = {canonicalize_name(name) for name in workspace.lockstep_distributions}
    found = []
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise WorkspaceError(f"{where}: invalid requirement {text!r}: {exc}") from exc
        if canonicalize_name(requirement.name) in lockstep:
            found.append((text, requirement))
    return found
