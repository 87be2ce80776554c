"""Build a package's release artifacts: an sdist and a wheel per label.

A lockstep package is built as it is (version ``C.M.P``). A connector is built once per supported
core minor ``C.M`` through its hatch hook (``tools/connector_build_hook.py``) with
``HEADWATER_CORE_MINOR=C.M``: the hook gives the version ``X.Y.Z.C.M`` and pins every lockstep
requirement to ``>=C.M,<C.(M+1)``, exactly as a plain ``hatch build`` in the connector's directory
does. The built wheel's metadata is then checked against the label.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path

from packaging.specifiers import SpecifierSet

from tools.connector_release import CORE_MINOR_VARIABLE
from tools.versioning import CoreMinor, Label
from tools.workspace import Kind, Package, Workspace, WorkspaceError, lockstep_requirements

__all__ = ["BuildError", "build", "wheel_metadata"]


class BuildError(Exception):
    """A package could not be built; the message includes the build backend's output."""


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
            built = _run_build(package.path, Path(tmp), label.core)
            if label.core is not None:
                _check_wheel(workspace, package, built, label)
            for artifact in built:
                target = outdir / artifact.name
                artifact.replace(target)
                artifacts.append(target)
    return artifacts


def wheel_metadata(wheel: Path) -> tuple[str, list[str]]:
    """The version and the ``Requires-Dist`` lines of a built wheel."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        headers = HeaderParser().parsestr(archive.read(name).decode("utf-8"))
    return headers["Version"], headers.get_all("Requires-Dist") or []


def _check_wheel(workspace: Workspace, package: Package, built: list[Path], label: Label) -> None:
    """Prove the hook's work: the wheel has the label's version and pins of its core minor."""
    assert label.core is not None
    (wheel,) = (path for path in built if path.suffix == ".whl")
    version, requires = wheel_metadata(wheel)
    if version != label.wheel_version:
        raise BuildError(f"{wheel.name}: version {version}, expected {label.wheel_version}")
    wanted = SpecifierSet(label.core.specifier)
    pins = lockstep_requirements(workspace, requires, wheel)
    if not pins or any(r.specifier != wanted for _, r in pins):
        raise BuildError(f"{wheel.name}: lockstep requirements {requires} do not pin {wanted}")


def _run_build(source: Path, scratch: Path, minor: CoreMinor | None) -> list[Path]:
    env = dict(os.environ)
    env.pop(CORE_MINOR_VARIABLE, None)
    if minor is not None:
        env[CORE_MINOR_VARIABLE] = str(minor)
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(scratch), str(source)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if result.returncode != 0:
        raise BuildError(f"building {source.name} failed:\n{result.stdout}{result.stderr}")
    return sorted(scratch.iterdir())
