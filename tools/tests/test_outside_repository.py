"""headwater-connector-testing outside this repository: a connector of its own, from the wheels.

The lockstep wheels (core, connector-base, connector-testing) are built by the release tool and
installed, with their dependencies from the package index, into a fresh virtual environment
outside the repository. A connector is scaffolded in a directory outside the repository, built,
installed there, and its tests (registration, pipeline, connector-testing's conformance suites;
the process-kill tests run in tools/tests/test_new_connector.py) run with that environment's
pytest, from that directory. The
plugin finds no ``tools/services`` there: its bundled test-server manager is used.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tools import new_connector, release
from tools.workspace import REPOSITORY, Kind, load

pytestmark = pytest.mark.slow


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_a_connector_outside_the_repository_passes_its_conformance_suites(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    assert REPOSITORY not in outside.resolve().parents
    dist = outside / "dist"
    real = load(REPOSITORY)
    lockstep = [p.name for p in real.packages if p.kind is Kind.LOCKSTEP]
    for name in lockstep:
        assert release.main(["build", name, "--outdir", str(dist)]) == 0

    # The connector's directory; the build uses this repository's tools (its hook pins the
    # lockstep versions), which are removed before the tests run.
    work = outside / "my-connector"
    work.mkdir()
    links = [work / "tools", *(work / name for name in lockstep)]
    for link in links:
        link.symlink_to(REPOSITORY / link.name)
    (work / "compatibility.toml").write_text(
        f'lockstep = {json.dumps(lockstep)}\n\n[core."{real.current_minor}"]\nstatus = "current"\n'
    )
    assert new_connector.main(["--root", str(work), "widget"]) == 0
    assert (
        release.main(["--root", str(work), "build", "connector-widget", "--outdir", str(dist)]) == 0
    )
    for link in links:
        link.unlink()  # from here on only the wheels are used
    (work / "connector-widget" / new_connector.BUILD_HOOK_LINK).unlink()

    environment = outside / "venv"
    venv.EnvBuilder(with_pip=False).create(environment)
    python = environment / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    wheels = sorted(str(w) for w in dist.glob("*.whl"))
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         "--find-links", str(dist), *wheels],
        outside, env,
    )  # fmt: skip
    # The installed connector-testing carries the test-server manager, which caches its
    # installs outside any repository.
    _run([str(python), "-m", "headwater.connectors.testing.servicekit", "--help"], outside, env)
    cache = _run(
        [str(python), "-c", "from headwater.connectors.testing.pytest_plugin import "
         "ServicesRunner; print(ServicesRunner(None).servicekit('settings').cache_dir())"],
        outside, env,
    ).stdout.strip()  # fmt: skip
    assert cache and not Path(cache).is_relative_to(REPOSITORY), cache

    tests = _run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(work),
         "-m", "not slow", str(work / "connector-widget" / "tests")],
        work, {k: v for k, v in env.items() if k != "HEADWATER_SERVICES_CMD"},
    )  # fmt: skip
    summary = tests.stdout.strip().splitlines()[-1]
    # Every test that ran passed; the kill tests (marked slow) are deselected.
    assert re.fullmatch(r"\d+ passed(, \d+ deselected)? in .*", summary), tests.stdout
    assert int(summary.split()[0]) >= 15, summary
