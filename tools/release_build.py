"""Build a package's release artifacts: an sdist and a wheel per label.

A lockstep package is built as it is (version ``C.M.P``). A connector is built once per supported
core minor ``C.M``, each time from a temporary copy of its directory in which

- the version file says ``X.Y.Z.C.M`` (the PEP 440 form of the label ``X.Y.Z-C.M``), and
- every requirement on a lockstep distribution (headwater-core, headwater-connector-base, ...)
  is rewritten to ``>=C.M,<C.(M+1)``,

so every artifact of release ``X.Y.Z.C.M`` (its sdist too) carries the pins of its core minor.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tools.versioning import CoreMinor
from tools.workspace import Kind, Package, Workspace, WorkspaceError, project_requirements

__all__ = ["BuildError", "build", "lockstep_requirements"]

_IGNORED = shutil.ignore_patterns(
    "dist", "build", "site", ".nox", "__pycache__", "*.pyc", "*.egg-info", ".*_cache"
)


class BuildError(Exception):
    """A package could not be built; the message includes the build backend's output."""


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


def _pinned_requirement(requirement: Requirement, minor: CoreMinor) -> str:
    """``requirement`` with its version range replaced by the one admitting exactly ``minor``."""
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    marker = f"; {requirement.marker}" if requirement.marker else ""
    return f"{requirement.name}{extras}{minor.specifier}{marker}"


def build(
    workspace: Workspace,
    package: Package,
    outdir: Path,
    minors: list[CoreMinor] | None = None,
) -> list[Path]:
    """Build the sdist and wheel of each label of ``package`` into ``outdir``.

    ``minors`` restricts a connector's build to some of its supported core minors (an unsupported
    one is refused). The build runs ``python -m build`` without isolation in this interpreter, which
    needs ``build`` and the package's build backend (hatchling) installed.
    """
    if package.kind is Kind.LOCKSTEP:
        if minors and minors != [workspace.current_minor]:
            raise WorkspaceError(
                f"{package.name} is released in lockstep with core {workspace.current_minor} only"
            )
        labels = list(package.labels)
    else:
        labels = [package.label_for(m) for m in minors] if minors else list(package.labels)
    outdir.mkdir(parents=True, exist_ok=True)
    artifacts = []
    for label in labels:
        with tempfile.TemporaryDirectory(prefix=f"headwater-build-{package.name}-") as tmp:
            source = Path(tmp) / package.name
            shutil.copytree(package.path, source, ignore=_IGNORED)
            if label.core is not None:
                _patch(workspace, package, source, label.wheel_version, label.core)
            artifacts += _run_build(source, Path(tmp) / "dist", outdir)
    return artifacts


def _patch(
    workspace: Workspace, package: Package, source: Path, wheel_version: str, minor: CoreMinor
) -> None:
    """Set the version and lockstep pins of the copy at ``source`` for a release on ``minor``."""
    version_file = source / package.version_file.relative_to(package.path)
    patched, count = re.subn(
        r"""^(__version__\s*=\s*)["'][^"']*["']""",
        lambda match: f'{match.group(1)}"{wheel_version}"',
        version_file.read_text(encoding="utf-8"),
        count=1,
        flags=re.MULTILINE,
    )
    if count != 1:
        raise BuildError(f"{package.version_file}: no __version__ line to set")
    version_file.write_text(patched, encoding="utf-8")

    pyproject = source / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    originals = lockstep_requirements(workspace, package.requirements, package.pyproject)
    core = workspace.core.distribution
    if not any(canonicalize_name(r.name) == canonicalize_name(core) for _, r in originals):
        raise BuildError(f"{package.pyproject}: a connector must depend on {core}")
    for original, requirement in dict(originals).items():  # each distinct string once
        pinned = f'"{_pinned_requirement(requirement, minor)}"'
        quoted = [q for q in (f'"{original}"', f"'{original}'") if q in text]
        if not quoted:
            raise BuildError(f"{package.pyproject}: cannot find the string {original!r} to pin it")
        text = text.replace(quoted[0], pinned)
    pyproject.write_text(text, encoding="utf-8")

    # Prove the rewrite: every lockstep requirement of the copy now admits exactly this minor.
    written = project_requirements(tomllib.loads(text)["project"])
    wanted = SpecifierSet(minor.specifier)
    pins = lockstep_requirements(workspace, written, pyproject)
    if len(pins) != len(originals) or any(r.specifier != wanted for _, r in pins):
        raise BuildError(f"{package.pyproject}: pinning lockstep requirements to {wanted} failed")


def _run_build(source: Path, scratch: Path, outdir: Path) -> list[Path]:
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(scratch), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BuildError(f"building {source.name} failed:\n{result.stdout}{result.stderr}")
    artifacts = []
    for artifact in sorted(scratch.iterdir()):
        target = outdir / artifact.name
        shutil.move(artifact, target)
        artifacts.append(target)
    return artifacts
