"""The README's pipeline example, as written: Kafka topic -> filter -> JDBC table (created).

Only the broker's address and the topic's name are replaced (the test broker, a unique topic);
the table does not exist beforehand: the sink's ``create_table`` makes it.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from headwater.connectors.testing.pytest_plugin import RunningService

from .kafka_helpers import create_topic, produce

README = Path(__file__).resolve().parents[2] / "README.md"

ORDERS = """
def is_big(order):
    return order["total"] >= 500
"""


def readme_pipeline() -> str:
    text = README.read_text(encoding="utf-8")
    intro = text.index("A pipeline file names installed connectors")
    block = re.search(r"```toml\n(.*?)```", text[intro:], re.DOTALL)
    assert block is not None, "the README's pipeline example"
    return block.group(1)


def big_orders(database: Path) -> list[tuple[int, int]]:
    if not database.exists():
        return []
    with sqlite3.connect(database) as connection:
        try:
            return sorted(connection.execute("SELECT id, total FROM big_orders").fetchall())
        except sqlite3.OperationalError:  # the table is created with the first rows
            return []


@pytest.mark.slow
def test_the_readme_pipeline_runs_as_written(
    kafka_service: RunningService, unique_name: str, tmp_path: Path
) -> None:
    bootstrap, topic = kafka_service.address, f"{unique_name}_orders"
    written = [{"id": i, "total": i * 37 % 1000} for i in range(400)]

    async def prepare() -> None:
        await create_topic(bootstrap, topic, 2)
        await produce(bootstrap, topic, [orjson.dumps(o) for o in written])

    asyncio.run(prepare())
    pipeline = readme_pipeline()
    assert 'bootstrap_servers = "localhost:9092"' in pipeline and 'topics = ["orders"]' in pipeline
    pipeline = pipeline.replace("localhost:9092", bootstrap).replace(
        'topics = ["orders"]', f'topics = ["{topic}"]'
    )
    (tmp_path / "orders.toml").write_text(pipeline)
    (tmp_path / "orders.py").write_text(ORDERS)
    expected = sorted((o["id"], o["total"]) for o in written if o["total"] >= 500)
    job = subprocess.Popen(
        [sys.executable, "-m", "headwater.core._cli", "run", "--quiet", "orders.toml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while big_orders(tmp_path / "orders.db") != expected:
            assert job.poll() is None, job.communicate()[1].decode()[-3000:]
            assert time.monotonic() < deadline, f"{len(big_orders(tmp_path / 'orders.db'))} rows"
            time.sleep(0.5)
    finally:
        job.send_signal(signal.SIGINT)  # the Kafka source is unbounded: stop it as a user would
        try:
            job.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            job.kill()
            job.communicate()
    assert big_orders(tmp_path / "orders.db") == expected
