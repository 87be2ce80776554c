"""The release tool (python -m tools release) on a small fake workspace.

The workspace has core and connector-base at 0.2.0 (core minors 0.1 supported, 0.2 current) and one
connector, connector-fake 1.2.3, released for both minors. The pip test installs the connector's
real builds next to hand-written core wheels in fresh virtual environments.
"""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tools import gitrepo, release
from tools.new_connector import BUILD_HOOK, BUILD_HOOK_LINK
from tools.versioning import CoreMinor
from tools.workspace import REPOSITORY, load

pytestmark = pytest.mark.slow  # builds wheels and installs them with pip

DATA = """\
lockstep = ["core", "connector-base"]

[core."0.1"]
status = "supported"

[core."0.2"]
status = "current"

[connectors.connector-fake]
core = ["0.1", "0.2"]
"""


def _package(
    root: Path, directory: str, module: str, version: str, deps: list[str], extras: str = ""
) -> None:
    """A package; a connector (``extras`` given) in the hook form of the workspace's connectors."""
    path = root / directory
    source = path / "src" / "headwater" / module
    source.mkdir(parents=True)
    (source / "__init__.py").write_text('"""A fake package."""\n')
    (source / "version.py").write_text(f'__version__ = "{version}"\n')
    (path / "README.md").write_text(f"# {directory}\n")
    (path / "CHANGELOG.md").write_text(f"# Changelog\n\n## {version} (2024-01-01)\n\n- first\n")
    dependencies = f"dependencies = [{', '.join(f'{d!r}' for d in deps)}]"
    if extras:
        (path / BUILD_HOOK_LINK).symlink_to(Path("..") / "tools" / BUILD_HOOK.name)
        requirements = f"""\
dynamic = ["version", "dependencies", "optional-dependencies"]

[tool.hatch.metadata.hooks.custom]
path = "{BUILD_HOOK_LINK}"
{dependencies}

[tool.hatch.metadata.hooks.custom.optional-dependencies]
{extras}

[tool.hatch.build.targets.sdist.force-include]
"{BUILD_HOOK}" = "{BUILD_HOOK_LINK}"
"""
    else:
        requirements = f'dynamic = ["version"]\n{dependencies}\n'
    (path / "pyproject.toml").write_text(
        f"""\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.version]
path = "src/headwater/{module}/version.py"

[tool.hatch.build.targets.wheel]
packages = ["src/headwater"]

[project]
name = "headwater-{directory}"
readme = "README.md"
requires-python = ">=3.11"
{requirements}"""
    )


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "headwater tests")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "tests@headwater.invalid")


def make_workspace(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "compatibility.toml").write_text(DATA)
    _package(root, "core", "core", "0.2.0", [])
    _package(root, "connector-base", "connectors/base", "0.2.0", ["headwater-core>=0.2,<0.3"])
    _package(
        root,
        "connector-fake",
        "connectors/fake",
        "1.2.3",
        ["headwater-core", "headwater-connector-base", "fake-client>=1"],
        # Lockstep packages in extras too: pinned as well.
        extras="""test = ['headwater-connector-base', "pytest"]
again = ["headwater-core"]""",
    )
    (root / "tools").symlink_to(REPOSITORY / "tools")  # the connectors' build hook
    # Namespace packages: no __init__.py in headwater/ or headwater/connectors/.
    return root


@pytest.fixture
def workspace(tmp_path: Path, git_identity: None) -> Path:
    root = make_workspace(tmp_path / "ws")
    _git(root, "init", "--quiet")
    _git(root, "add", ".")
    _git(root, "commit", "--quiet", "-m", "initial")
    return root


def run(root: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = release.main(["--root", str(root), *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# -- versions ------------------------------------------------------------------------------------


def test_versions_lists_every_package_with_labels(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(workspace, "versions", capsys=capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["package", "version", "kind", "core", "minors", "labels"]
    assert lines[1].split() == ["core", "0.2.0", "lockstep", "0.2", "0.2.0"]
    assert lines[3].split() == [
        "connector-fake",
        "1.2.3",
        "connector",
        "0.1,",
        "0.2",
        "1.2.3-0.1,",
        "1.2.3-0.2",
    ]


# -- build ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The connector's sdists and wheels for core 0.1 and 0.2, built once for the module."""
    root = make_workspace(tmp_path_factory.mktemp("ws"))
    dist = tmp_path_factory.mktemp("dist")
    assert (
        release.main(["--root", str(root), "build", "connector-fake", "--outdir", str(dist)]) == 0
    )
    return dist


def _wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(archive.read(name))


@pytest.mark.parametrize(("minor", "pin"), [("0.1", ">=0.1,<0.2"), ("0.2", ">=0.2,<0.3")])
def test_build_makes_one_release_per_core_minor(built: Path, minor: str, pin: str) -> None:
    version = f"1.2.3.{minor}"
    wheel = built / f"headwater_connector_fake-{version}-py3-none-any.whl"
    sdist = built / f"headwater_connector_fake-{version}.tar.gz"
    assert wheel.is_file() and sdist.is_file()

    metadata = _wheel_metadata(wheel)
    assert metadata["Version"] == version
    requirements = [Requirement(r) for r in metadata.get_all("Requires-Dist") or []]
    pinned = [r for r in requirements if r.name.startswith("headwater-")]
    # core and base in the dependencies, again in extras: all pinned to the minor.
    assert sorted((r.name, str(r.marker)) for r in pinned) == [
        ("headwater-connector-base", "None"),
        ("headwater-connector-base", 'extra == "test"'),
        ("headwater-core", "None"),
        ("headwater-core", 'extra == "again"'),
    ]
    assert all(r.specifier == SpecifierSet(pin) for r in pinned)
    # Other requirements stay as written.
    assert {str(r) for r in requirements if not r.name.startswith("headwater-")} == {
        "fake-client>=1",
        'pytest; extra == "test"',
    }

    with zipfile.ZipFile(wheel) as archive:
        # The module keeps the connector's own version; the distribution is the release's.
        assert '"1.2.3"' in archive.read("headwater/connectors/fake/version.py").decode()
        assert not any(
            n in archive.namelist()
            for n in ("headwater/__init__.py", "headwater/connectors/__init__.py")
        )
    with tarfile.open(sdist) as archive:
        pkg_info = archive.extractfile(f"headwater_connector_fake-{version}/PKG-INFO")
        assert pkg_info is not None
        assert f"Version: {version}" in pkg_info.read().decode()


def test_build_leaves_the_workspace_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_workspace(tmp_path / "ws")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    code, out = run(root, "build", "connector-fake", "--core", "0.1", capsys=capsys)
    assert code == 0, out
    assert sorted(p.name for p in (root / "dist").iterdir()) == [
        "headwater_connector_fake-1.2.3.0.1-py3-none-any.whl",
        "headwater_connector_fake-1.2.3.0.1.tar.gz",
    ]
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and "dist" not in p.parts}
    assert after == before


def test_build_of_a_lockstep_package_keeps_its_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_workspace(tmp_path / "ws")
    code, out = run(root, "build", "connector-base", "--outdir", str(tmp_path / "d"), capsys=capsys)
    assert code == 0, out
    wheel = tmp_path / "d" / "headwater_connector_base-0.2.0-py3-none-any.whl"
    assert _wheel_metadata(wheel)["Version"] == "0.2.0"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["build", "connector-fake", "--core", "0.3"], "not released for core 0.3"),
        (["build", "connector-fake", "--core", "0.1.0"], "invalid core minor"),
        (["build", "connector-base", "--core", "0.1"], "lockstep with core 0.2 only"),
        (["build", "connector-nope"], "unknown package 'connector-nope'"),
    ],
)
def test_build_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], error: str
) -> None:
    code, out = run(make_workspace(tmp_path / "ws"), *args, capsys=capsys)
    assert code == 1
    assert error in out


# -- check and tag -------------------------------------------------------------------------------


def test_check_passes_a_releasable_workspace(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(workspace, "check", capsys=capsys)
    assert code == 0, out
    assert "3 package(s) ready to release" in out


def _set_version(root: Path, version: str) -> None:
    (root / "connector-fake/src/headwater/connectors/fake/version.py").write_text(
        f'__version__ = "{version}"\n'
    )


def test_check_refuses_an_invalid_version(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _set_version(workspace, "1.3")
    code, out = run(workspace, "check", capsys=capsys)
    assert code == 1
    assert "invalid version '1.3'" in out


def test_check_refuses_a_label_for_an_unsupported_core_minor(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = workspace / "compatibility.toml"
    data.write_text(data.read_text().replace('core = ["0.1", "0.2"]', 'core = ["0.2", "0.0"]'))
    code, out = run(workspace, "check", capsys=capsys)
    assert code == 1
    assert "core 0.0 is not a supported core minor" in out


def test_check_refuses_a_version_not_bumped_since_the_last_tag(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _git(workspace, "tag", "connector-fake-v1.2.3-0.2")
    code, out = run(workspace, "check", "connector-fake", capsys=capsys)
    assert code == 1
    assert "version 1.2.3 is not bumped since the tag connector-fake-v1.2.3-0.2" in out

    _set_version(workspace, "1.2.4")
    changelog = workspace / "connector-fake" / "CHANGELOG.md"
    changelog.write_text(changelog.read_text() + "\n## 1.2.4-0.1, 1.2.4-0.2\n\n- fix\n")
    code, out = run(workspace, "check", "connector-fake", capsys=capsys)
    assert code == 0, out


def test_check_refuses_a_changelog_without_the_version(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _set_version(workspace, "1.3.0")
    changelog = workspace / "connector-fake" / "CHANGELOG.md"
    changelog.write_text(changelog.read_text() + "\n## Unreleased\n\n- 1.3.0 changes\n## 1.3.01\n")
    code, out = run(workspace, "check", capsys=capsys)
    assert code == 1
    assert "connector-fake: CHANGELOG.md has no entry for 1.3.0" in out

    changelog.write_text(changelog.read_text() + "\n## 1.3.0 (unreleased)\n")
    code, out = run(workspace, "check", capsys=capsys)
    assert code == 1
    assert "CHANGELOG.md still calls 1.3.0 unreleased: '## 1.3.0 (unreleased)'" in out


def test_check_refuses_pins_and_lockstep_drift(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    connector = workspace / "connector-fake" / "pyproject.toml"
    connector.write_text(connector.read_text().replace("'headwater-core'", "'headwater-core>=0.2'"))
    base = workspace / "connector-base" / "pyproject.toml"
    base.write_text(base.read_text().replace("headwater-core>=0.2,<0.3", "headwater-core>=0.1"))
    version = workspace / "connector-base/src/headwater/connectors/base/version.py"
    version.write_text('__version__ = "0.2.1"\n')
    code, out = run(workspace, "check", capsys=capsys)
    assert code == 1
    assert "connector-base: version 0.2.1 differs from core's 0.2.0" in out
    assert "requires 'headwater-core>=0.1'; expected 'headwater-core>=0.2,<0.3'" in out
    assert "requires 'headwater-core>=0.2'; write headwater-core without a version" in out


def test_tag_creates_one_tag_per_label(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(workspace, "tag", "connector-fake", capsys=capsys)
    assert code == 0, out
    assert out.split() == ["connector-fake-v1.2.3-0.1", "connector-fake-v1.2.3-0.2"]
    assert _git(workspace, "tag", "--list").split() == out.split()
    code, out = run(workspace, "tag", "core", capsys=capsys)
    assert (code, out.strip()) == (0, "core-v0.2.0")
    # A second tag of the same version is refused by the check.
    code, out = run(workspace, "tag", "connector-fake", capsys=capsys)
    assert code == 1
    assert "not bumped" in out


def test_tag_refuses_uncommitted_changes(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workspace / "connector-fake" / "README.md").write_text("# changed\n")
    code, out = run(workspace, "tag", "connector-fake", capsys=capsys)
    assert code == 1
    assert "uncommitted changes" in out
    assert _git(workspace, "tag", "--list") == ""


# -- pip picks the build that matches the installed core ------------------------------------------


def _fake_wheel(directory: Path, name: str, version: str, requires: list[str] = []) -> None:  # noqa: B006
    """A minimal valid wheel with metadata only."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{info}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(directory / f"{dist}-{version}-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)


class Venv:
    """A fresh virtual environment, driven by the running interpreter's pip (``pip --python``)."""

    def __init__(self, path: Path, wheels: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
        self.python = path / "bin" / "python"
        self.wheels = wheels
        # Only the wheel directory: no index, no pip configuration, no PIP_* settings of this host.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        self.env["PIP_CONFIG_FILE"] = os.devnull

    def pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(self.python),
                "--disable-pip-version-check",
                *args,
            ],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
        )

    def install(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.pip("install", "--no-index", "--find-links", str(self.wheels), *args)

    def installed(self) -> dict[str, str]:
        result = self.pip("list", "--format=freeze")
        return dict(line.split("==") for line in result.stdout.split())

    def keep_installed(self) -> Path:
        """A constraints file holding every installed distribution at its version (pip freeze)."""
        constraints = self.python.parent.parent / "constraints.txt"
        constraints.write_text(self.pip("freeze").stdout)
        return constraints


@pytest.fixture(scope="module")
def wheels(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Core and connector-base wheels 0.1.x, 0.2.x and 0.3.0, and the connector's real builds."""
    directory = tmp_path_factory.mktemp("wheels")
    for version in ["0.1.0", "0.1.1", "0.2.0", "0.2.1", "0.3.0"]:
        _fake_wheel(directory, "headwater-core", version)
        minor = version.rsplit(".", 1)[0]
        upper = f"0.{int(minor.split('.')[1]) + 1}"
        _fake_wheel(
            directory, "headwater-connector-base", version, [f"headwater-core>={minor},<{upper}"]
        )
    _fake_wheel(directory, "fake-client", "1.0")
    for wheel in built.glob("*.whl"):
        (directory / wheel.name).write_bytes(wheel.read_bytes())
    return directory


@pytest.mark.parametrize(("core", "connector"), [("0.1.1", "1.2.3.0.1"), ("0.2.0", "1.2.3.0.2")])
def test_pip_picks_the_connector_build_for_the_installed_core(
    wheels: Path, tmp_path: Path, core: str, connector: str
) -> None:
    venv = Venv(tmp_path / "venv", wheels)
    assert venv.install(f"headwater-core=={core}").returncode == 0
    result = venv.install("-c", str(venv.keep_installed()), "headwater-connector-fake")
    assert result.returncode == 0, result.stderr
    installed = venv.installed()
    assert installed["headwater-core"] == core
    assert installed["headwater-connector-fake"] == connector
    assert installed["headwater-connector-base"].rsplit(".", 1)[0] == core.rsplit(".", 1)[0]


def test_pip_refuses_a_core_outside_every_build(wheels: Path, tmp_path: Path) -> None:
    venv = Venv(tmp_path / "venv", wheels)
    assert venv.install("headwater-core==0.3.0").returncode == 0
    result = venv.install("-c", str(venv.keep_installed()), "headwater-connector-fake")
    assert result.returncode != 0
    assert "ResolutionImpossible" in result.stderr or "conflict" in result.stderr
    assert venv.installed() == {"headwater-core": "0.3.0"}


def test_pip_without_a_core_takes_the_newest_build(wheels: Path, tmp_path: Path) -> None:
    venv = Venv(tmp_path / "venv", wheels)
    assert venv.install("headwater-connector-fake").returncode == 0
    installed = venv.installed()
    assert installed["headwater-connector-fake"] == "1.2.3.0.2"
    assert installed["headwater-core"] == "0.2.1"


def test_the_fake_workspace_is_valid(tmp_path: Path) -> None:
    workspace = load(make_workspace(tmp_path))
    assert [str(label) for label in workspace.package("connector-fake").labels] == [
        "1.2.3-0.1",
        "1.2.3-0.2",
    ]


# -- older core minors: built from their newest tag (the nox matrix) -----------------------------


def test_older_core_minor_comes_from_its_newest_tag(workspace: Path, tmp_path: Path) -> None:
    version = workspace / "core/src/headwater/core/version.py"
    for patch in ("0.1.0", "0.1.3", "0.1.10"):
        version.write_text(f'__version__ = "{patch}"\n')
        _git(workspace, "commit", "--quiet", "-am", patch)
        _git(workspace, "tag", f"core-v{patch}")
    _git(workspace, "tag", "core-v0.2.0")

    assert gitrepo.latest_core_tag(workspace, "core", CoreMinor(0, 1)) == "core-v0.1.10"
    assert gitrepo.latest_core_tag(workspace, "core", CoreMinor(0, 2)) == "core-v0.2.0"
    with pytest.raises(gitrepo.GitError, match=re.escape("no tag core-v0.3.<patch>")):
        gitrepo.latest_core_tag(workspace, "core", CoreMinor(0, 3))

    gitrepo.export(workspace, "core-v0.1.3", ["core", "connector-base"], tmp_path / "tree")
    exported = tmp_path / "tree" / "core" / "src/headwater/core/version.py"
    assert exported.read_text() == '__version__ = "0.1.3"\n'
    assert (tmp_path / "tree" / "connector-base" / "pyproject.toml").is_file()
    assert not (tmp_path / "tree" / "connector-fake").exists()
