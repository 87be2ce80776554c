"""The version scheme (tools/versioning.py) and the compatibility data (tools/workspace.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tools import docs_gen
from tools.versioning import CoreMinor, Label, SemVer, VersionError
from tools.workspace import REPOSITORY, CoreStatus, Kind, WorkspaceError, load


@pytest.mark.parametrize("text", ["1.2.3", "0.0.0", "10.20.30"])
def test_semver_round_trips(text: str) -> None:
    assert str(SemVer.parse(text)) == text


@pytest.mark.parametrize(
    "text", ["1.2", "1.2.3.4", "01.2.3", "1.2.3-rc.1", "1.2.3+build", "v1.2.3", " 1.2.3", ""]
)
def test_semver_refuses_anything_else(text: str) -> None:
    with pytest.raises(VersionError, match="invalid version"):
        SemVer.parse(text)


def test_core_minor_specifier_admits_exactly_that_minor() -> None:
    minor = CoreMinor.parse("0.1")
    assert minor.specifier == ">=0.1,<0.2"
    spec = SpecifierSet(minor.specifier)
    assert all(v in spec for v in ["0.1", "0.1.0", "0.1.17"])
    assert not any(v in spec for v in ["0.0.9", "0.2.0", "0.2.0rc1", "1.1.0"])
    assert CoreMinor.parse("1.9").specifier == ">=1.9,<1.10"


@pytest.mark.parametrize("text", ["1", "1.2.3", "01.2", "1.x"])
def test_core_minor_refuses_anything_else(text: str) -> None:
    with pytest.raises(VersionError, match="invalid core minor"):
        CoreMinor.parse(text)


def test_connector_label_maps_to_a_pep440_wheel_version() -> None:
    label = Label(SemVer(4, 1, 0), CoreMinor(1, 17))
    assert str(label) == "4.1.0-1.17"
    assert label.wheel_version == "4.1.0.1.17"
    assert str(Version(label.wheel_version)) == label.wheel_version
    assert label.tag("connector-kafka") == "connector-kafka-v4.1.0-1.17"
    assert Label.parse("4.1.0-1.17") == label
    assert Label.from_tag("connector-kafka", "connector-kafka-v4.1.0-1.17") == label


def test_lockstep_label_is_the_plain_version() -> None:
    label = Label(SemVer(0, 3, 1))
    assert str(label) == label.wheel_version == "0.3.1"
    assert label.tag("core") == "core-v0.3.1"


def test_wheel_versions_sort_by_connector_version_then_core_minor() -> None:
    labels = ["1.0.0-0.1", "1.0.0-0.2", "1.0.0-0.10", "1.0.1-0.1", "1.1.0-0.2"]
    versions = [Version(Label.parse(text).wheel_version) for text in labels]
    assert versions == sorted(versions)


@pytest.mark.parametrize(
    "tag",
    ["connector-kafka-v4.1", "connector-kafka-vx", "connector-kafka-v2-v1.0.0-0.1", "core-v0.1.0"],
)
def test_from_tag_ignores_other_tags(tag: str) -> None:
    assert Label.from_tag("connector-kafka", tag) is None


@pytest.mark.parametrize("text", ["4.1.0-1", "4.1.0-1.17-2", "4.1-1.17", "4.1.0_1.17"])
def test_label_refuses_anything_else(text: str) -> None:
    with pytest.raises(VersionError):
        Label.parse(text)


# -- compatibility.toml ------------------------------------------------------------------------


def test_this_repository_loads() -> None:
    workspace = load(REPOSITORY)
    assert [p.name for p in workspace.packages][:3] == [
        "core",
        "connector-base",
        "connector-testing",
    ]
    assert workspace.status(workspace.current_minor) is CoreStatus.CURRENT
    assert workspace.core.version.core_minor == workspace.current_minor
    for package in workspace.connectors:
        assert package.kind is Kind.CONNECTOR
        assert package.core_minors


def _workspace(root: Path, data: str, connectors: dict[str, str] | None = None) -> Path:
    """A minimal workspace: core at 0.2.0, and connector directories at the given versions."""
    (root / "compatibility.toml").write_text(data)
    for name, version in {"core": "0.2.0", **(connectors or {})}.items():
        src = root / name / "src"
        src.mkdir(parents=True)
        (src / "version.py").write_text(f'__version__ = "{version}"\n')
        (root / name / "pyproject.toml").write_text(
            f'[project]\nname = "headwater-{name}"\n[tool.hatch.version]\npath = "src/version.py"\n'
        )
    return root


GOOD = """
lockstep = ["core"]
[core."0.1"]
status = "supported"
[core."0.2"]
status = "current"
[connectors.connector-x]
core = ["0.2", "0.1"]
"""


def test_connector_minors_and_labels(tmp_path: Path) -> None:
    workspace = load(_workspace(tmp_path, GOOD, {"connector-x": "1.0.0"}))
    x = workspace.package("connector-x")
    assert [str(m) for m in x.core_minors] == ["0.1", "0.2"]
    assert [str(label) for label in x.labels] == ["1.0.0-0.1", "1.0.0-0.2"]
    assert str(x.label_for(CoreMinor(0, 1))) == "1.0.0-0.1"
    with pytest.raises(WorkspaceError, match=re.escape("not released for core 0.3")):
        x.label_for(CoreMinor(0, 3))


@pytest.mark.parametrize(
    ("data", "connectors", "error"),
    [
        (
            GOOD.replace('"0.2", "0.1"', '"0.2", "0.3"'),
            {"connector-x": "1.0.0"},
            "0.3 is not a supported",
        ),
        (GOOD, {"connector-x": "1.0"}, "invalid version '1.0'"),
        (GOOD, {"connector-x": "1.0.0", "connector-y": "1.0.0"}, "no entry for connector-y"),
        (GOOD, {}, "connector-x, which is not a package directory"),
        (GOOD.replace('"supported"', '"current"'), {"connector-x": "1.0.0"}, "exactly one"),
        (
            GOOD.replace('status = "supported"', 'status = "eol"'),
            {"connector-x": "1.0.0"},
            "status must be",
        ),
        (
            GOOD.replace('[core."0.1"]', '[core."0.1.0"]'),
            {"connector-x": "1.0.0"},
            "invalid core minor",
        ),
        (GOOD.replace('"0.2", "0.1"', '"0.2", "0.2"'), {"connector-x": "1.0.0"}, "once"),
        (
            GOOD.replace('lockstep = ["core"]', 'lockstep = ["core"]\nextra = 1'),
            {"connector-x": "1.0.0"},
            "unknown keys",
        ),
        (
            GOOD.replace('"supported"', '"x"')
            .replace('"current"', '"supported"')
            .replace('"x"', '"current"'),
            {"connector-x": "1.0.0"},
            "must be the newest",
        ),
    ],
)
def test_inconsistent_data_is_refused(
    tmp_path: Path, data: str, connectors: dict[str, str], error: str
) -> None:
    with pytest.raises(WorkspaceError, match=re.escape(error)):
        load(_workspace(tmp_path, data, connectors))


def test_current_minor_must_match_core(tmp_path: Path) -> None:
    data = GOOD.replace('[core."0.2"]', '[core."0.3"]')
    with pytest.raises(
        WorkspaceError, match=re.escape("current core minor is 0.3, but core/ is at 0.2.0")
    ):
        load(_workspace(tmp_path, data.replace('"0.2", "0.1"', '"0.1"'), {"connector-x": "1.0.0"}))


def test_compatibility_page_lists_connectors_by_core_minor(tmp_path: Path) -> None:
    data = GOOD + '[connectors.connector-y]\ncore = ["0.2"]\n'
    workspace = load(_workspace(tmp_path, data, {"connector-x": "1.0.0", "connector-y": "2.0.0"}))
    page = docs_gen.compatibility_page(workspace)
    assert "| 0.2 | current: developed in the repository's main branch |" in page
    assert "| 0.1 | supported: still receives connector releases |" in page
    assert "| connector | package | core 0.2 | core 0.1 |" in page
    assert "| [x](../connector-x/docs/index.md) | `headwater-connector-x` | yes | yes |" in page
    assert "| [y](../connector-y/docs/index.md) | `headwater-connector-y` | yes | no |" in page


def test_compat_table_command_writes_and_checks(tmp_path: Path) -> None:
    root = _workspace(tmp_path, GOOD, {"connector-x": "1.0.0"})
    (root / "docs").mkdir()
    assert docs_gen.main(["--root", str(root), "--check"]) == 1
    assert docs_gen.main(["--root", str(root)]) == 0
    assert docs_gen.main(["--root", str(root), "--check"]) == 0


def test_this_repositorys_compatibility_page_is_current() -> None:
    page = (REPOSITORY / docs_gen.COMPATIBILITY_PAGE).read_text()
    assert page == docs_gen.compatibility_page(load(REPOSITORY)), "run nox -s compat_table"
