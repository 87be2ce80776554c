"""The ``mongodb`` connector in a pipeline file: collection -> step -> collection (exactly-once)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core.testing import run_cli
from pymongo import MongoClient

FUNCTIONS = """
def tag(order):
    return {**order, "big": order["total"] > 50}
"""


def test_a_pipeline_reads_transforms_and_writes_collections(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str, tmp_path: Path
) -> None:
    written = [{"_id": i, "total": i * 7 % 100} for i in range(300)]
    mongo[unique_name]["orders"].insert_many([dict(o) for o in written])
    (tmp_path / "order_steps.py").write_text(FUNCTIONS)
    path = tmp_path / "tag.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [job]
            parallelism = 2
            [checkpointing]
            interval = "200ms"
            [source]
            connector = "mongodb"
            [source.options]
            uri = "{mongodb_service.address}"
            database = "{unique_name}"
            collection = "orders"
            partition_strategy = "pagination"
            partition_records = 100
            [[steps]]
            map = "order_steps:tag"
            [sink]
            connector = "mongodb"
            [sink.options]
            uri = "{mongodb_service.address}"
            database = "{unique_name}"
            collection = "tagged"
            delivery_guarantee = "exactly_once"
            """
        )
    )
    done = run_cli("run", "--quiet", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    got = sorted(mongo[unique_name]["tagged"].find(), key=lambda d: d["_id"])
    assert got == [{**o, "big": o["total"] > 50} for o in written]
