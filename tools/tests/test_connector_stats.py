"""python -m tools connector-stats: lines per connector and part, and the docs table."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import connector_stats, docs_gen
from tools.workspace import REPOSITORY, Kind, load


@pytest.mark.parametrize(
    ("module", "part"),
    [
        ("_kinesis_source.py", "source"),
        ("_enumerator.py", "source"),
        ("_split.py", "source"),
        ("_dynamodb_sink.py", "sink"),
        ("_transactions.py", "sink"),
        ("_lookup.py", "lookup"),
        ("_options.py", "options"),
        ("_pipeline.py", "pipeline"),
        ("_client.py", "shared"),
        ("__init__.py", "shared"),
    ],
)
def test_modules_are_sorted_into_parts(module: str, part: str) -> None:
    assert connector_stats.classify(Path(module)) == part


def test_blank_and_comment_lines_do_not_count(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('"""Doc."""\n\n# a comment\nx = 1  # counted\n    \n    # indented comment\n')
    assert connector_stats.count_lines(module) == 2


def test_every_connector_is_counted_by_part() -> None:
    workspace = load(REPOSITORY)
    rows = {row.package: row for row in connector_stats.stats(workspace)}
    connectors = {p.name for p in workspace.packages if p.kind is Kind.CONNECTOR}
    assert set(rows) == connectors
    kafka = rows["connector-kafka"]
    src = REPOSITORY / "connector-kafka" / "src" / "headwater" / "connectors" / "kafka"
    assert kafka.lines["pipeline"] == connector_stats.count_lines(src / "_pipeline.py")
    assert kafka.lines["options"] == connector_stats.count_lines(src / "_options.py")
    every = sum(connector_stats.count_lines(m) for m in src.rglob("*.py"))
    assert kafka.code == every
    tests = REPOSITORY / "connector-kafka" / "tests"
    assert kafka.lines["tests"] == sum(connector_stats.count_lines(m) for m in tests.rglob("*.py"))


def test_the_table_and_the_docs_block(capsys: pytest.CaptureFixture[str]) -> None:
    assert connector_stats.main([]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == (
        "| connector | source | sink | lookup | options | pipeline | shared | code | tests |"
    )
    kafka = next(line for line in printed if line.startswith("| `connector-kafka` |"))
    row = next(r for r in connector_stats.stats(load(REPOSITORY)) if r.package == "connector-kafka")
    assert f"| **{row.code}** | {row.lines['tests']} |" in kafka
    page = (REPOSITORY / "docs" / "connectors" / "index.md").read_text()
    expansion = docs_gen.expand(page, load(REPOSITORY), None)
    assert expansion.problems == []
    assert kafka in expansion.markdown
