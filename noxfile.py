"""The compatibility matrix and the workspace checks. ``nox -l`` lists every session.

- ``tests(package, core)``: one package's tests against one core minor, for every package and every
  core minor ``compatibility.toml`` lists for it. The current minor installs core, connector-base
  and connector-testing from this workspace; an older minor builds them from its newest tag
  ``core-v<C.M>.<P>``. A connector is installed as its release build for that minor (the wheel
  ``X.Y.Z.C.M`` from ``python -m tools release build``), so the pins it ships are tested too.
  The package under test gets all its extras.
  ``nox -t connector-kafka`` runs one package's row, ``nox -t core-0.1`` one minor's column.
- ``lint``: ``ruff check`` and ``ruff format --check`` over the repository.
- ``typecheck``: mypy --strict over every package's ``src/``.
- ``docs``: the MkDocs site, built with ``--strict``.
- ``compat_table``: regenerate ``docs/compatibility.md`` from ``compatibility.toml``.

Sessions use uv to create their virtual environments where it is available.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # nox imports this file without the repository on sys.path

from tools import gitrepo  # noqa: E402
from tools.versioning import CoreMinor  # noqa: E402
from tools.workspace import CORE_PACKAGE, CoreStatus, Kind, load  # noqa: E402

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typecheck", "tests", "docs"]

WORKSPACE = load(ROOT)
LOCKSTEP = [p.name for p in WORKSPACE.packages if p.kind is Kind.LOCKSTEP]
MATRIX = [
    nox.param(p.name, str(minor), tags=[p.name, f"core-{minor}"])
    for p in WORKSPACE.packages
    for minor in p.core_minors
]


def dev_requirements(*names: str) -> list[str]:
    """The lines of requirements-dev.txt for these distributions: one place for tool versions."""
    wanted = {canonicalize_name(name) for name in names}
    lines = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
    found = [
        line.strip()
        for line in lines
        if line.strip()
        and not line.lstrip().startswith("#")
        and canonicalize_name(Requirement(line).name) in wanted
    ]
    if len(found) != len(wanted):
        raise ValueError(f"requirements-dev.txt must list each of {sorted(wanted)}")
    return found


def editable_workspace() -> list[str]:
    """``-e <dir>`` for every package of the workspace."""
    return [arg for p in WORKSPACE.packages for arg in ("-e", str(p.path))]


def lockstep_install(session: nox.Session, minor: CoreMinor, extras: dict[str, str]) -> list[str]:
    """Install arguments for core and the packages released with it, at ``minor``.

    The current minor installs the workspace's directories (editable); an older one the
    directories as of its newest tag. ``extras`` maps a package to the ``[extras]`` it gets.
    """
    if WORKSPACE.status(minor) is CoreStatus.CURRENT:
        return [arg for name in LOCKSTEP for arg in ("-e", f"{ROOT / name}{extras.get(name, '')}")]
    tag = gitrepo.latest_core_tag(ROOT, CORE_PACKAGE, minor)
    tree = Path(session.create_tmp()) / tag
    if not tree.exists():
        session.log(f"core {minor}: building {', '.join(LOCKSTEP)} from {tag}")
        gitrepo.export(ROOT, tag, LOCKSTEP, tree)
    return [f"{tree / name}{extras.get(name, '')}" for name in LOCKSTEP]


@nox.session
@nox.parametrize(("package", "core"), MATRIX)
def tests(session: nox.Session, package: str, core: str) -> None:
    """A package's tests against one supported core minor."""
    minor = CoreMinor.parse(core)
    tested = WORKSPACE.package(package)
    # The package under test gets all its extras, so its optional features are tested too.
    extras = {package: f"[{','.join(tested.extras)}]" if tested.extras else ""}
    session.install(
        *dev_requirements("pytest", "pytest-asyncio", "pytest-timeout", "hypothesis", "pydantic"),
        *dev_requirements("build", "hatchling"),
    )
    if tested.kind is Kind.LOCKSTEP:
        session.install(*lockstep_install(session, minor, extras))
    else:
        wheels = Path(session.create_tmp()) / f"wheels-{package}-{core}"
        shutil.rmtree(wheels, ignore_errors=True)
        session.run(
            "python", "-m", "tools", "release", "build", package,
            "--core", core, "--outdir", str(wheels),
        )  # fmt: skip
        (wheel,) = wheels.glob("*.whl")
        session.install(*lockstep_install(session, minor, {}), f"{wheel}{extras[package]}")
    session.run("python", "-m", "pytest", f"{package}/tests", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff over the whole repository: the lint rules, then the formatting."""
    session.install(*dev_requirements("ruff"))
    session.run("ruff", "check", ".", *session.posargs)
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Mypy --strict over every package's src/ (namespace packages, one module path per src).

    Installs what ``tools/dev setup`` installs (the workspace and requirements-dev.txt), so the
    result is the one a developer sees with ``.venv/bin/mypy``.
    """
    session.install("-r", "requirements-dev.txt", *editable_workspace())
    sources = [str(p.path.relative_to(ROOT) / "src") for p in WORKSPACE.packages]
    session.run("mypy", *sources, *session.posargs, env={"MYPYPATH": os.pathsep.join(sources)})


@nox.session
def docs(session: nox.Session) -> None:
    """The MkDocs site, with the connectors installed so their options tables can be generated."""
    session.install(
        *dev_requirements("mkdocs", "mkdocs-material", "mkdocstrings", "pydantic"),
        *editable_workspace(),
    )
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", str(ROOT / "site"), *session.posargs,
        env={"NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip


@nox.session(venv_backend="none")
def compat_table(session: nox.Session) -> None:
    """Regenerate docs/compatibility.md from compatibility.toml."""
    session.run(sys.executable, "-m", "tools", "compat-table", *session.posargs, external=True)
