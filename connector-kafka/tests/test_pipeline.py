"""The ``kafka`` connector in a pipeline file: topic -> step -> topic, on the test broker."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import orjson
import pytest
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core.testing import run_cli

from .kafka_helpers import create_topic, produce, read_all

FUNCTIONS = """
def tag(order):
    return {**order, "big": order["total"] > 50}

def key(order):
    return str(order["id"]).encode()
"""


@pytest.mark.slow
def test_a_pipeline_reads_transforms_and_writes_topics(
    kafka_service: RunningService, unique_name: str, tmp_path: Path
) -> None:
    bootstrap = kafka_service.address
    orders, tagged = f"{unique_name}_orders", f"{unique_name}_tagged"
    written = [{"id": i, "total": i * 7 % 100} for i in range(300)]

    async def prepare() -> None:
        await create_topic(bootstrap, orders, 3)
        await create_topic(bootstrap, tagged, 2)
        await produce(bootstrap, orders, [orjson.dumps(o) for o in written])

    asyncio.run(prepare())
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
            connector = "kafka"
            format = "json"
            [source.options]
            bootstrap_servers = "{bootstrap}"
            topics = ["{orders}"]
            starting_offsets = {{ kind = "earliest" }}
            stopping_offsets = {{ kind = "latest" }}
            [[steps]]
            map = "order_steps:tag"
            [sink]
            connector = "kafka"
            topic = "{tagged}"
            format = "json"
            key = "order_steps:key"
            [sink.options]
            bootstrap_servers = "{bootstrap}"
            delivery_guarantee = "exactly_once"
            transactional_id_prefix = "{unique_name}"
            """
        )
    )
    done = run_cli("run", "--quiet", str(path))
    assert done.returncode == 0, done.stderr[-3000:]
    got = asyncio.run(read_all(bootstrap, tagged))
    assert sorted((k, orjson.loads(v)) for k, v in got) == sorted(  # type: ignore[arg-type]
        (str(o["id"]).encode(), {**o, "big": o["total"] > 50}) for o in written
    )
