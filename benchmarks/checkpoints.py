"""Checkpoints as often as configured: Kafka -> event-time windows -> JDBC exactly-once.

A producer writes ``N`` records (default 200,000; HEADWATER_BENCH_CHECKPOINT_RECORDS for a quick
run) into a 2-partition topic at ``RATE`` records/s, keyed ``k0``..``k49``, each stamped with its
send time. The job (parallelism 2, 300 ms checkpoints, consumer-group offset commits on) counts
the records per key in 1 s tumbling event-time windows and writes each window exactly-once into
a PostgreSQL table (HEADWATER_POSTGRES_URL, default postgres on 127.0.0.1:5432; a fresh database
is created and dropped) with the newest send time of its records. A poller records when each
row becomes visible.

Measured in the same run:

- ``median_interval_s`` / ``max_interval_s``: between completed checkpoints (from the metadata
  timestamps of every checkpoint, all retained), against the configured 0.3 s;
- ``latency_p50_s`` / ``latency_p99_s``: from the newest record of a window written to Kafka to
  its row visible in the table (the 1 s window itself, the watermark delay and one checkpoint
  are part of it: an exactly-once row is visible only after its checkpoint commits);
- the result checked against the input: the counts per key and window equal the records sent.

Goals (issue 12): ``median_interval_s <= 0.6`` and ``latency_p99_s <= 2``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from headwater.connectors.jdbc import JdbcSink, JdbcSinkOptions
from headwater.connectors.kafka import KafkaRecord, KafkaSource, KafkaSourceOptions
from headwater.core import (
    CheckpointConfig,
    DeliveryGuarantee,
    StreamEnvironment,
    TumblingEventTimeWindows,
    WatermarkStrategy,
)
from sqlalchemy import make_url

RATE = 20_000
KEYS = 50
WINDOW_MS = 1000
INTERVAL = timedelta(milliseconds=300)
TABLE_SQL = (
    "CREATE TABLE windows (k TEXT NOT NULL, window_start BIGINT NOT NULL, n BIGINT NOT NULL, "
    "newest_ms BIGINT NOT NULL, PRIMARY KEY (k, window_start))"
)


def _records() -> int:
    return int(os.environ.get("HEADWATER_BENCH_CHECKPOINT_RECORDS", "200000"))


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, n: int) -> Counter[tuple[str, int]]:
    """Write ``n`` records at ``RATE``/s; the expected count per (key, window)."""
    expected: Counter[tuple[str, int]] = Counter()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        started = time.monotonic()
        step = RATE // 100  # every 10 ms
        futures = []
        for first in range(0, n, step):
            for i in range(first, min(n, first + step)):
                key = f"k{i % KEYS}"
                now_ms = int(time.time() * 1000)
                expected[(key, now_ms - now_ms % WINDOW_MS)] += 1
                futures.append(
                    await producer.send(topic, key.encode(), key=key.encode(), timestamp_ms=now_ms)
                )
            delay = started + (first + step) / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        for future in futures:
            await future
    finally:
        await producer.stop()
    return expected


def _decode(record: KafkaRecord) -> tuple[str, int, int, int]:
    ts = record.timestamp
    return (record.key.decode() if record.key else "", ts - ts % WINDOW_MS, 1, ts)


def _merge(a: tuple[str, int, int, int], b: tuple[str, int, int, int]) -> tuple[str, int, int, int]:
    return (a[0], a[1], a[2] + b[2], max(a[3], b[3]))


def _as_row(w: tuple[str, int, int, int]) -> dict[str, Any]:
    return {"k": w[0], "window_start": w[1], "n": w[2], "newest_ms": w[3]}


async def _poll_rows(
    dsn: str, seen: dict[tuple[str, int], tuple[float, int]], stop: asyncio.Event
) -> None:
    """Record when each row first becomes visible (wall clock, s) with its newest send time."""
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    try:
        while True:
            rows = await (
                await conn.execute("SELECT k, window_start, newest_ms FROM windows")
            ).fetchall()
            now = time.time()
            for k, start, newest in rows:
                seen.setdefault((k, start), (now, newest))
            if stop.is_set():
                return
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def _run(bootstrap: str, url: str, dsn: str, n: int, storage: Path) -> dict[str, Any]:
    topic = f"bench-checkpoints-{uuid.uuid4().hex[:8]}"
    env = StreamEnvironment(
        parallelism=2,
        checkpointing=CheckpointConfig(interval=INTERVAL, storage=storage, retained=100_000),
    )
    source = KafkaSource(
        KafkaSourceOptions(bootstrap_servers=bootstrap, topics=[topic], group_id=topic),
        record_deserializer=_decode,
    )
    watermarks: WatermarkStrategy[Any] = (
        # No idleness: both partitions always have data, and a reader stalled longer than an
        # idle timeout on a loaded machine would see its records dropped as late when it resumes.
        WatermarkStrategy.for_bounded_out_of_orderness(
            timedelta(milliseconds=100)
        ).with_emit_interval(timedelta(milliseconds=50))
    )
    sink = JdbcSink(
        JdbcSinkOptions(
            url=url,
            table="windows",
            key_columns=("k", "window_start"),
            delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE,
        )
    )
    (
        env.from_source(source, watermarks)
        .key_by(lambda w: w[0])
        .window(TumblingEventTimeWindows.of(timedelta(milliseconds=WINDOW_MS)))
        .reduce(_merge)
        .map(_as_row)
        .sink_to(sink)
    )
    await asyncio.to_thread(asyncio.run, _create_topic(bootstrap, topic))
    client = await env.execute_async("checkpoints benchmark")
    seen: dict[tuple[str, int], tuple[float, int]] = {}
    stop = asyncio.Event()
    poller = asyncio.create_task(_poll_rows(dsn, seen, stop))
    # The producer runs on a loop of its own (a thread), so its sends never stall the job's loop.
    expected = await asyncio.to_thread(asyncio.run, _produce(bootstrap, topic, n))
    # Every window closes once event time passes it: wait for the last rows, then stop.
    deadline = time.monotonic() + 30
    last_window = max(start for _, start in expected)
    while time.monotonic() < deadline and len(
        [key for key in expected if key[1] < last_window and key not in seen]
    ):
        await asyncio.sleep(0.05)
    await client.cancel()
    stop.set()
    await poller
    completed = sorted(
        json.loads((path / "_metadata").read_text())["timestamp_ms"]
        for path in storage.glob("chk-*")
        if (path / "_metadata").is_file()
    )
    intervals = [(b - a) / 1000 for a, b in itertools.pairwise(completed)]
    closed = {key: count for key, count in expected.items() if key[1] < last_window}
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT k, window_start, n FROM windows").fetchall()
    got = {(k, start): count for k, start, count in rows if start < last_window}
    wrong = {key: (got.get(key), count) for key, count in closed.items() if got.get(key) != count}
    assert not wrong, (
        f"{len(wrong)} of {len(closed)} windows differ (got, sent): {list(wrong.items())[:5]}"
    )
    latencies = sorted(at - newest / 1000 for key, (at, newest) in seen.items() if key in closed)
    return {
        "records": n,
        "windows": len(closed),
        "checkpoints": len(completed),
        "interval_s": INTERVAL.total_seconds(),
        "median_interval_s": round(statistics.median(intervals), 3),
        "max_interval_s": round(max(intervals), 3),
        "latency_p50_s": round(latencies[len(latencies) // 2], 3),
        "latency_p99_s": round(latencies[int(len(latencies) * 0.99)], 3),
        "results_equal_input": True,
    }


def run() -> dict[str, Any]:
    n = _records()
    bootstrap = os.environ.get("HEADWATER_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    server = make_url(
        os.environ.get("HEADWATER_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    database = f"hw_bench_{uuid.uuid4().hex[:8]}"
    admin_dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {database}")
    try:
        target = server.set(database=database)
        dsn = target.set(drivername="postgresql").render_as_string(hide_password=False)
        url = target.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        with psycopg.connect(dsn) as conn:
            conn.execute(TABLE_SQL)
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(_run(bootstrap, url, dsn, n, Path(tmp)))
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    result["goals_met"] = result["median_interval_s"] <= 0.6 and result["latency_p99_s"] <= 2
    return result
