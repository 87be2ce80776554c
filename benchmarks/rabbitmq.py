"""RabbitMQ source and sink throughput vs raw pika loops (same run, same broker).

200,000 messages of 100 bytes at HEADWATER_BENCH_SCALE=1. The broker is HEADWATER_RABBITMQ_URL if
set, else the one ``tools/services up rabbitmq`` finds or starts.

- raw_source_rps: pika's asyncio adapter consuming one queue with prefetch ``PREFETCH`` and a
  ``basic.ack(multiple)`` every ``PREFETCH // 2`` messages, until it has every message.
- source_rps: RabbitMQSource (AT_LEAST_ONCE: acks when 100 ms checkpoints complete, the same
  prefetch) draining the same number of messages into a counting sink, parallelism 1.
- raw_sink_rps: pika's asyncio adapter publishing with confirms, at most ``IN_FLIGHT``
  unconfirmed messages (the sink's ``max_in_flight_requests * max_batch_size``).
- sink_rps: RabbitMQSink (AT_LEAST_ONCE, confirms) publishing the same messages from a collection.

Every run is timed from connecting to closing; counts are checked on both sides (messages read,
messages left in the queue). Rounds: HEADWATER_BENCH_ROUNDS (default 3), interleaved; medians.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pika
from headwater.connectors.rabbitmq import (
    RabbitMQConnectionOptions,
    RabbitMQSink,
    RabbitMQSinkOptions,
    RabbitMQSource,
    RabbitMQSourceOptions,
    RabbitMQWriterOptions,
)
from headwater.connectors.rabbitmq._client import AmqpConnection
from headwater.core import (
    CheckpointConfig,
    DeliveryGuarantee,
    Sink,
    SinkWriter,
    StreamEnvironment,
    WriterInitContext,
)

ROOT = Path(__file__).resolve().parent.parent
BODY = b"x" * 100
PREFETCH = 10_000
BATCH = 500
IN_FLIGHT_REQUESTS = 4
IN_FLIGHT = BATCH * IN_FLIGHT_REQUESTS


def _url() -> str:
    configured = os.environ.get("HEADWATER_RABBITMQ_URL")
    if configured:
        return configured
    services = [sys.executable, str(ROOT / "tools" / "services")]
    subprocess.run([*services, "up", "rabbitmq"], check=True, capture_output=True)
    env = subprocess.run([*services, "env", "rabbitmq"], check=True, capture_output=True, text=True)
    return dict(token.split("=", 1) for token in shlex.split(env.stdout))["HEADWATER_RABBITMQ_URL"]


def _blocking(url: str, queue: str, *, fill: int = 0, delete: bool = False) -> int:
    """Declare ``queue``, publish ``fill`` messages; return its ready count (or delete it)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        if delete:
            channel.queue_delete(queue)
            return 0
        channel.queue_declare(queue, durable=True)
        for _ in range(fill):
            channel.basic_publish("", queue, BODY)
        return int(channel.queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


async def _raw_source(options: RabbitMQConnectionOptions, queue: str, count: int) -> float:
    started = time.perf_counter()
    connection = await AmqpConnection.open(options.parameters(), options.where, 10)
    channel = await connection.channel()
    await channel.call(channel.channel.basic_qos, "qos", prefetch_count=PREFETCH)
    done = asyncio.get_running_loop().create_future()
    seen = 0

    def on_message(ch: Any, method: Any, _properties: Any, _body: bytes) -> None:
        nonlocal seen
        seen += 1
        if seen % (PREFETCH // 2) == 0 or seen == count:
            ch.basic_ack(method.delivery_tag, multiple=True)
        if seen == count and not done.done():
            done.set_result(None)

    channel.channel.basic_consume(queue, on_message, auto_ack=False)
    await done
    await connection.close()
    return time.perf_counter() - started


async def _raw_sink(options: RabbitMQConnectionOptions, queue: str, count: int) -> float:
    started = time.perf_counter()
    connection = await AmqpConnection.open(options.parameters(), options.where, 10)
    channel = await connection.channel()
    confirmed = 0
    space = asyncio.Event()
    finished = asyncio.get_running_loop().create_future()

    def on_confirm(frame: Any) -> None:
        nonlocal confirmed
        confirmed = (
            max(confirmed, frame.method.delivery_tag) if frame.method.multiple else confirmed + 1
        )
        space.set()
        if confirmed >= count and not finished.done():
            finished.set_result(None)

    await channel.call(channel.channel.confirm_delivery, "confirms", ack_nack_callback=on_confirm)
    properties = pika.BasicProperties(delivery_mode=2)
    published = 0
    while published < count:
        while published - confirmed >= IN_FLIGHT:
            space.clear()
            await space.wait()
        n = min(IN_FLIGHT - (published - confirmed), count - published)
        for _ in range(n):
            channel.channel.basic_publish("", queue, BODY, properties, True)
        published += n
        await asyncio.sleep(0)
    await finished
    await connection.close()
    return time.perf_counter() - started


class _Counting(SinkWriter[Any]):
    def __init__(self, counts: list[int]) -> None:
        self._counts = counts

    async def write_batch(self, records: Sequence[Any]) -> None:
        self._counts[0] += len(records)


class _CountingSink(Sink[Any]):
    def __init__(self) -> None:
        self.counts = [0]

    def create_writer(self, context: WriterInitContext) -> SinkWriter[Any]:
        return _Counting(self.counts)


def _source_job(options: RabbitMQConnectionOptions, queue: str, count: int) -> float:
    sink = _CountingSink()
    env = StreamEnvironment(checkpointing=CheckpointConfig(interval=timedelta(milliseconds=100)))
    source = RabbitMQSource(
        RabbitMQSourceOptions(
            connection=options,
            queues=(queue,),
            bounded=True,
            prefetch_count=PREFETCH,
            delivery_guarantee=DeliveryGuarantee.AT_LEAST_ONCE,
        )
    )
    env.from_source(source).sink_to(sink)
    started = time.perf_counter()
    env.execute("rabbitmq source benchmark")
    elapsed = time.perf_counter() - started
    assert sink.counts[0] == count, (sink.counts, count)
    return elapsed


def _sink_job(options: RabbitMQConnectionOptions, queue: str, count: int) -> float:
    env = StreamEnvironment()
    sink = RabbitMQSink(
        RabbitMQSinkOptions(
            connection=options,
            routing_key=queue,
            writer=RabbitMQWriterOptions(
                max_batch_size=BATCH, max_in_flight_requests=IN_FLIGHT_REQUESTS
            ),
        )
    )
    env.from_collection([BODY] * count).sink_to(sink)
    started = time.perf_counter()
    env.execute("rabbitmq sink benchmark")
    return time.perf_counter() - started


def run() -> dict[str, Any]:
    """Measure; the last printed line is the result."""
    count = int(200_000 * float(os.environ.get("HEADWATER_BENCH_SCALE", "1")))
    rounds = max(1, int(os.environ.get("HEADWATER_BENCH_ROUNDS", "3")))
    url = _url()
    options = RabbitMQConnectionOptions.from_url(url)
    queue = f"hw_bench_{uuid.uuid4().hex[:8]}"
    results: dict[str, list[float]] = {k: [] for k in ("raw_source", "source", "raw_sink", "sink")}
    try:
        assert _blocking(url, queue) == 0  # declares it
        for _ in range(rounds):
            # sinks first: each fills the queue that the sources then drain
            results["raw_sink"].append(count / asyncio.run(_raw_sink(options, queue, count)))
            assert _blocking(url, queue) == count
            results["raw_source"].append(count / asyncio.run(_raw_source(options, queue, count)))
            assert _blocking(url, queue) == 0
            results["sink"].append(count / _sink_job(options, queue, count))
            assert _blocking(url, queue) == count
            results["source"].append(count / _source_job(options, queue, count))
            assert _blocking(url, queue) == 0
    finally:
        _blocking(url, queue, delete=True)
    median = {k: statistics.median(v) for k, v in results.items()}
    return {
        "count": count,
        "raw_source_rps": round(median["raw_source"]),
        "source_rps": round(median["source"]),
        "raw_sink_rps": round(median["raw_sink"]),
        "sink_rps": round(median["sink"]),
        "ratio_source": round(median["source"] / median["raw_source"], 3),
        "ratio_sink": round(median["sink"] / median["raw_sink"], 3),
        "rounds": [
            {"source": round(s / r, 3), "sink": round(k / w, 3)}
            for s, r, k, w in zip(
                results["source"],
                results["raw_source"],
                results["sink"],
                results["raw_sink"],
                strict=True,
            )
        ],
    }
