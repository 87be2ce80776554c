"""``connector = "files"`` in pipeline files, run through the CLI in a child process."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from headwater.connectors.files import CONNECTOR
from headwater.core import ConfigurationError, installed_connectors, load_pipeline
from headwater.core.testing import run_cli


def test_registered_for_the_installed_core() -> None:
    connector = next(c for c in installed_connectors() if c.identifier == "files")
    assert connector.spec is CONNECTOR
    assert connector.compatible, connector.requirement


def _pipeline(directory: Path, sink: str) -> Path:
    (directory / "in").mkdir()
    for k in range(3):
        rows = "".join(json.dumps({"id": k * 100 + i, "kind": i % 2}) + "\n" for i in range(100))
        (directory / "in" / f"f{k}.jsonl").write_text(rows)
    path = directory / "copy.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [job]
            parallelism = 2
            [checkpointing]
            interval = "100ms"
            storage = "checkpoints"
            [source]
            connector = "files"
            [source.options]
            paths = ["in"]
            [sink]
            connector = "files"
            {sink}
            [sink.options]
            path = "out"
            manifest = true
            """
        )
    )
    return path


def test_a_pipeline_copies_json_lines_into_parquet_buckets(tmp_path: Path) -> None:
    path = _pipeline(tmp_path, 'format = "parquet"\nbucket_fields = ["kind"]')
    done = run_cli("run", "--quiet", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = []
    for file in (tmp_path / "out").glob("kind=*/*.parquet"):
        kind = int(file.parent.name.split("=")[1])
        for row in pq.read_table(file).to_pylist():
            assert row["kind"] == kind
            rows.append(row)
    assert sorted(r["id"] for r in rows) == list(range(300))


def test_pipeline_mistakes_are_named(tmp_path: Path) -> None:
    path = _pipeline(tmp_path, 'compression = "lz9"')
    with pytest.raises(
        ConfigurationError, match=r"\[sink\] compression: expected none, gzip or zstd"
    ):
        load_pipeline(path)
