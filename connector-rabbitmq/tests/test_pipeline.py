"""The ``rabbitmq`` connector in a pipeline file: queue -> step -> queue, on the real broker."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

from headwater.core.testing import run_cli

from .rabbitmq_helpers import declare, drain, publish

FUNCTIONS = """
def tag(order):
    return {**order, "big": order["total"] > 50}

def order_id(order):
    return f"order-{order['id']}"
"""


def test_a_pipeline_reads_transforms_and_publishes(
    rabbitmq_url: str, queues: list[str], tmp_path: Path
) -> None:
    orders, tagged = queues[0], queues[1]
    declare(rabbitmq_url, orders, tagged)
    written = [{"id": i, "total": i * 7 % 100} for i in range(300)]
    publish(
        rabbitmq_url,
        orders,
        [json.dumps(o).encode() for o in written],
        [f"in-{i}" for i in range(300)],
    )
    (tmp_path / "order_steps.py").write_text(FUNCTIONS)
    url = urlsplit(rabbitmq_url)
    connection = f'{{ host = "{url.hostname}", port = {url.port} }}'
    path = tmp_path / "tag.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [job]
            parallelism = 2
            [checkpointing]
            interval = "200ms"
            [source]
            connector = "rabbitmq"
            format = "json"
            [source.options]
            connection = {connection}
            queues = ["{orders}"]
            bounded = true
            delivery_guarantee = "exactly_once"
            [[steps]]
            map = "order_steps:tag"
            [sink]
            connector = "rabbitmq"
            format = "json"
            message_id = "order_steps:order_id"
            [sink.options]
            connection = {connection}
            routing_key = "{tagged}"
            """
        )
    )
    done = run_cli("run", "--quiet", str(path))
    assert done.returncode == 0, done.stderr[-3000:]
    got = drain(rabbitmq_url, tagged)
    assert sorted((mid, json.loads(body)["id"]) for mid, body in got) == sorted(
        (f"order-{o['id']}", o["id"]) for o in written
    )
    assert sorted((json.loads(body) for _, body in got), key=lambda o: o["id"]) == [
        {**o, "big": o["total"] > 50} for o in written
    ]
    assert drain(rabbitmq_url, orders) == [], "the source acknowledged every message"
