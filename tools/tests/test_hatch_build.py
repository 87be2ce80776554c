"""A connector built with standard tools in its own directory is its release artifact.

A clone of the repository (what a contributor or CI checks out) gets a second, older core minor
in its compatibility data; then, inside ``connector-kafka``: ``hatch build`` for the default
minor and for the older one, ``pip wheel .`` (an isolated PEP 517 build), a refused minor, and
``hatch test`` on the connector's own tests against a real Kafka broker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tools.release_build import wheel_metadata
from tools.versioning import CoreMinor
from tools.workspace import REPOSITORY, load

pytestmark = pytest.mark.slow

CONNECTOR = "connector-kafka"


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clone") / "headwater"
    subprocess.run(["git", "clone", "--quiet", str(REPOSITORY), str(root)], check=True)
    current = load(root).current_minor
    older = CoreMinor(current.major, current.minor - 1)
    data = root / "compatibility.toml"
    text = (
        data.read_text(encoding="utf-8")
        .replace(
            f'[connectors.{CONNECTOR}]\ncore = ["{current}"]',
            f'[connectors.{CONNECTOR}]\ncore = ["{older}", "{current}"]',
        )
        .replace(
            f'[core."{current}"]', f'[core."{older}"]\nstatus = "supported"\n\n[core."{current}"]'
        )
    )
    data.write_text(text, encoding="utf-8")
    assert load(root).package(CONNECTOR).core_minors == (older, current)
    return root


def _run(args: list[str], cwd: Path, minor: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HEADWATER_CORE_MINOR"}
    if minor is not None:
        env["HEADWATER_CORE_MINOR"] = minor
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def _check_wheel(wheel: Path, version: str, minor: CoreMinor) -> None:
    built_version, requires = wheel_metadata(wheel)
    assert built_version == version
    pinned = {
        r.name: r.specifier
        for r in map(Requirement, requires)
        if r.name in {"headwater-core", "headwater-connector-base"}
    }
    assert pinned == dict.fromkeys(
        ["headwater-core", "headwater-connector-base"], SpecifierSet(minor.specifier)
    )


def test_hatch_build_makes_the_release_artifact_for_each_supported_minor(clone: Path) -> None:
    workspace = load(clone)
    package = workspace.package(CONNECTOR)
    for minor in package.core_minors:
        outdir = clone / "out" / str(minor)
        env_minor = None if minor == workspace.current_minor else str(minor)
        result = _run(
            [sys.executable, "-m", "hatch", "build", str(outdir)], clone / CONNECTOR, env_minor
        )
        assert result.returncode == 0, result.stdout + result.stderr
        wheel_version = package.label_for(minor).wheel_version
        assert sorted(p.name for p in outdir.iterdir()) == [
            f"headwater_connector_kafka-{wheel_version}-py3-none-any.whl",
            f"headwater_connector_kafka-{wheel_version}.tar.gz",
        ]
        _check_wheel(next(outdir.glob("*.whl")), wheel_version, minor)


def test_pip_wheel_builds_the_same_release(clone: Path, tmp_path: Path) -> None:
    workspace = load(clone)
    result = _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), "."],
        clone / CONNECTOR,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp_path.glob("*.whl")
    label = workspace.package(CONNECTOR).label_for(workspace.current_minor)
    _check_wheel(wheel, label.wheel_version, workspace.current_minor)


def test_a_build_for_an_unsupported_minor_is_refused(clone: Path) -> None:
    result = _run(
        [sys.executable, "-m", "hatch", "build", "-t", "wheel", str(clone / "refused")],
        clone / CONNECTOR,
        "0.7",
    )
    assert result.returncode != 0
    minors = ", ".join(str(m) for m in load(clone).package(CONNECTOR).core_minors)
    assert f"connector-kafka is not released for core 0.7; compatibility.toml lists: {minors}" in (
        result.stdout + result.stderr
    )
    assert not (clone / "refused").exists() or not any((clone / "refused").iterdir())


def test_hatch_test_runs_the_connector_tests_against_a_real_broker(clone: Path) -> None:
    result = _run(
        [
            sys.executable, "-m", "hatch", "test", "--",
            "-p", "no:cacheprovider",
            "tests/test_options.py",
            "tests/test_source_sink.py::test_bounded_read_equals_written",
        ],
        clone / CONNECTOR,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "17 passed" in output, output
    _run([sys.executable, "tools/services", "down", "--all"], clone)
