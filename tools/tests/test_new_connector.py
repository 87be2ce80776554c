"""python -m tools new-connector: the scaffold builds, installs, registers, documents and tests.

The scaffold goes into a temporary workspace whose lockstep packages are this repository's (linked),
is built by the release tool, installed with pip next to this environment's headwater-core, and then
its own test module and docs page are checked in a subprocess that sees the installed wheel.
"""

from __future__ import annotations

import enum
import json
import os
import re
import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field, TypeAdapter

from tools import docs_gen, new_connector, release
from tools.workspace import REPOSITORY, Kind, load


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    real = load(REPOSITORY)
    root = tmp_path / "ws"
    root.mkdir()
    lockstep = [p.name for p in real.packages if p.kind is Kind.LOCKSTEP]
    for name in lockstep:
        (root / name).symlink_to(REPOSITORY / name)
    (root / "tools").symlink_to(REPOSITORY / "tools")  # the connectors' build hook
    (root / "compatibility.toml").write_text(
        f'lockstep = {json.dumps(lockstep)}\n\n[core."{real.current_minor}"]\nstatus = "current"\n'
    )
    return root


EXPECTED_FILES = [
    "CHANGELOG.md",
    "README.md",
    "docs/index.md",
    "headwater_build.py",
    "pyproject.toml",
    "src/headwater/connectors/widget/__init__.py",
    "src/headwater/connectors/widget/_client.py",
    "src/headwater/connectors/widget/_connector.py",
    "src/headwater/connectors/widget/_options.py",
    "src/headwater/connectors/widget/_pipeline.py",
    "src/headwater/connectors/widget/_sink.py",
    "src/headwater/connectors/widget/_source.py",
    "src/headwater/connectors/widget/_split.py",
    "src/headwater/connectors/widget/py.typed",
    "src/headwater/connectors/widget/version.py",
    "tests/test_widget.py",
    "tests/widget_jobs.py",
]


def test_scaffold_is_a_complete_package(workspace: Path) -> None:
    (workspace / "docs").mkdir()
    assert new_connector.main(["--root", str(workspace), "widget", "--title", "Widget DB"]) == 0
    package = workspace / "connector-widget"
    files = sorted(p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file())
    assert files == EXPECTED_FILES  # PEP 420: no headwater/ or headwater/connectors/ __init__.py
    for path in files:
        assert "{{" not in (package / path).read_text(), path

    pyproject = tomllib.loads((package / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "headwater-connector-widget"
    assert pyproject["project"]["entry-points"]["headwater.connectors"] == {
        "widget": "headwater.connectors.widget:CONNECTOR"
    }
    source = package / "src/headwater/connectors/widget"
    assert "class WidgetDBSourceOptions(OptionsModel)" in (source / "_options.py").read_text()
    # the skeletons: split reader, record emitter, enumerator on connector-base; async sink writer
    skeletons = (source / "_source.py").read_text()
    for base in ("SplitReader[", "DecodingRecordEmitter[", "PushSplitEnumerator[", "Source["):
        assert base in skeletons, base
    assert "AsyncSinkWriter[" in (source / "_sink.py").read_text()
    hook = package / new_connector.BUILD_HOOK_LINK
    assert hook.is_symlink() and hook.resolve() == new_connector.BUILD_HOOK

    compatibility = (workspace / "docs" / "compatibility.md").read_text()
    assert (
        "| [widget](../connector-widget/docs/index.md) | `headwater-connector-widget` | yes |"
        in compatibility
    )
    scaffolded = load(workspace).package("connector-widget")
    assert scaffolded.kind is Kind.CONNECTOR
    assert [str(label) for label in scaffolded.labels] == [f"0.1.0-{load(workspace).current_minor}"]


def test_scaffold_passes_lint(workspace: Path) -> None:
    assert new_connector.main(["--root", str(workspace), "widget"]) == 0
    # The repository's ruff configuration, at the same place relative to the package.
    (workspace / "pyproject.toml").write_bytes((REPOSITORY / "pyproject.toml").read_bytes())
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "connector-widget"],
        capture_output=True, text=True, cwd=workspace, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_scaffold_builds_installs_and_passes_its_tests(workspace: Path, tmp_path: Path) -> None:
    assert new_connector.main(["--root", str(workspace), "widget"]) == 0
    minor = load(workspace).current_minor
    dist = tmp_path / "dist"
    assert (
        release.main(["--root", str(workspace), "build", "connector-widget", "--outdir", str(dist)])
        == 0
    )
    wheel = dist / f"headwater_connector_widget-0.1.0.{minor}-py3-none-any.whl"
    assert sorted(p.name for p in dist.iterdir()) == [
        wheel.name,
        f"headwater_connector_widget-0.1.0.{minor}.tar.gz",
    ]

    # Install the wheel next to this environment's headwater-core and connector-base.
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--target", str(site), str(wheel)],
        check=True, env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPOSITORY)])}

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-c", str(REPOSITORY / "pyproject.toml"), str(workspace / "connector-widget" / "tests")],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout + tests.stderr
    # As generated, the source and the sink pass every conformance test against the example
    # system (process kills included): nothing fails, is expected to fail or is skipped.
    summary = tests.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in .*", summary), tests.stdout
    assert int(summary.split()[0]) >= 15, summary

    docs = subprocess.run(
        [sys.executable, "-c", RENDER_PAGE, str(workspace)],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert docs.returncode == 0, docs.stdout + docs.stderr
    page = docs.stdout
    assert "pip install headwater-connector-widget" in page
    assert "### Source options" in page and "### Sink options" in page
    assert "| `log` | string | required | The log to read; its partitions are the splits. |" in page
    assert f"| {minor} | `0.1.0-{minor}` | `0.1.0.{minor}` |" in page


RENDER_PAGE = """
import sys
from pathlib import Path
from tools import docs_gen
from tools.workspace import load

workspace = load(Path(sys.argv[1]))
package = workspace.package("connector-widget")
page = docs_gen.expand((package.path / "docs" / "index.md").read_text(), workspace, package)
if page.problems:
    sys.exit("\\n".join(page.problems))
print(page.markdown)
"""


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("Widget", "invalid connector name"),
        ("my-widget", "invalid connector name"),
        ("base", "invalid connector name"),
        ("existing", "already exists"),
    ],
)
def test_refuses_bad_names(
    workspace: Path, capsys: pytest.CaptureFixture[str], name: str, error: str
) -> None:
    (workspace / "connector-existing").mkdir()
    before = (workspace / "compatibility.toml").read_text()
    assert new_connector.main(["--root", str(workspace), name]) == 1
    assert error in capsys.readouterr().err
    assert (workspace / "compatibility.toml").read_text() == before


# -- the connector page template ----------------------------------------------------------------


def test_page_template_is_enforced(workspace: Path) -> None:
    assert new_connector.main(["--root", str(workspace), "widget"]) == 0
    loaded = load(workspace)
    package = loaded.package("connector-widget")
    page = (package.path / "docs" / "index.md").read_text()
    broken = page.replace("## Metrics", "## Measures").replace("<!-- headwater:install -->", "")
    problems = docs_gen.expand(broken, loaded, package).problems
    assert problems[0].startswith("a connector page has the sections What it does, Install,")
    assert "missing <!-- headwater:install -->" in problems

    # The compatibility block is generated without importing anything; options need the package.
    expansion = docs_gen.expand(page, loaded, package)
    assert f"`headwater-core{loaded.current_minor.specifier}`" in expansion.markdown
    assert expansion.problems == [
        "no headwater.connectors entry point of headwater-connector-widget is installed; "
        "install the package to document its options"
    ]


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Options(BaseModel):
    host: str = Field(description="The host | or IP.")
    timeout: timedelta = Field(default=timedelta(seconds=5), description="Per request.")
    color: Color = Field(default=Color.RED, description="The color.")
    tags: list[str] | None = Field(default=None, description="Labels.")


class Undescribed(BaseModel):
    host: str = Field(description="The host.")
    port: int = 1
    tags: list[str] | None = None


def test_options_table_from_a_json_schema() -> None:
    table = docs_gen.options_table(TypeAdapter(Options).json_schema())
    assert table.splitlines() == [
        "| option | type | default | description |",
        "|---|---|---|---|",
        "| `host` | string | required | The host \\| or IP. |",
        '| `timeout` | duration (ISO 8601, such as PT30S) | `"PT5S"` | Per request. |',
        '| `color` | `"red"` or `"blue"` | `"red"` | The color. |',
        "| `tags` | list of string or none | `null` | Labels. |",
    ]
    assert docs_gen.options_table({}) == "This connector has no options.\n"


def test_an_option_without_a_description_fails_the_docs() -> None:
    with pytest.raises(docs_gen.DocsError, match="Undescribed: no description for port, tags"):
        docs_gen.options_table(TypeAdapter(Undescribed).json_schema())


def test_a_connector_gets_one_options_table_per_role() -> None:
    """kafka registers source and sink options; the JDBC connector also lookup options."""
    kafka = docs_gen._options_block("headwater-connector-kafka", "kafka")
    assert "### Source options" in kafka and "### Sink options" in kafka
    source, sink = kafka.split("### Sink options")
    assert "`topics`" in source and "`transactional_id_prefix`" not in source
    assert "`transactional_id_prefix`" in sink
    both = docs_gen._options_block("headwater-connector-kafka", None)  # kafka and upsert-kafka
    assert "### `kafka`" in both and "#### Sink options" in both
    jdbc = docs_gen._options_block("headwater-connector-jdbc", "jdbc")
    assert [line for line in jdbc.splitlines() if line.startswith("###")] == [
        "### Sink options",
        "### Source options",
        "### Lookup options",
    ]


def _wiring(pyproject: dict[str, Any]) -> dict[str, Any]:
    """The parts of a connector's pyproject that every connector shares with the template."""
    hatch = pyproject["tool"]["hatch"]
    test_env = hatch["envs"]["hatch-test"]
    return {
        "dynamic": pyproject["project"]["dynamic"],
        "hook": hatch["metadata"]["hooks"]["custom"]["path"],
        "sdist": hatch["build"]["targets"]["sdist"]["force-include"],
        # A connector may install more workspace packages after the template's.
        "test": {
            "installer": test_env["installer"],
            "pre-install-commands": test_env["pre-install-commands"][:1],
        },
        "default": hatch["envs"]["default"],
    }


def test_every_connector_has_the_template_build_and_hatch_wiring() -> None:
    text = (new_connector.TEMPLATE / "pyproject.toml").read_text()
    template = _wiring(tomllib.loads(re.sub(r"\{\{\w+\}\}", "x", text)))
    connectors = load(REPOSITORY).connectors
    assert connectors
    for package in connectors:
        assert _wiring(tomllib.loads(package.pyproject.read_text())) == template, package.name
        hook = package.path / new_connector.BUILD_HOOK_LINK
        assert hook.is_symlink() and hook.resolve() == new_connector.BUILD_HOOK, package.name
