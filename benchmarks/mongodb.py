"""MongoDB connector against raw pymongo loops on the same server, in the same run.

- Sink: N small documents upserted by ``_id`` (``ReplaceOne(upsert=True)``). Raw: pymongo's
  ``AsyncMongoClient`` ``bulk_write(ordered=False)`` in batches of 1,000, one after the other.
  headwater: DataGen -> MongoSink (parallelism 1, batches of 1,000), at-least-once and
  exactly-once (checkpoints every 500 ms; the transactions commit after each checkpoint).
- Scan: raw ``find()`` over the collection (batches of 2,048) against a bounded MongoSource
  (parallelism 1, ``sample`` splits).
- Stream catch-up: N inserts already in the oplog; raw ``watch()`` from before them against a
  MongoSource with ``startup_mode='timestamp'`` (parallelism 1), until N events arrived (the
  headwater time includes starting the job).

Every run checks the counts on both sides. N defaults to 200,000 (HEADWATER_BENCH_MONGODB_DOCS);
the server is HEADWATER_MONGODB_URL (default 127.0.0.1:27017, replica set rs0); a fresh database
is created and dropped. The best of ``ROUNDS`` alternating rounds counts (the machine is shared).
Prints {"raw_upsert_dps", "alo_dps", "eo_dps", "ratio_alo", "ratio_eo", "raw_scan_dps",
"scan_dps", "ratio_scan", "raw_stream_eps", "stream_eps", "ratio_stream"}.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from headwater.connectors.mongodb import (
    MongoSink,
    MongoSinkOptions,
    MongoSource,
    MongoSourceOptions,
)
from headwater.core import (
    CheckpointConfig,
    CollectSink,
    DataGenSource,
    DeliveryGuarantee,
    StreamEnvironment,
)
from pymongo import AsyncMongoClient, ReplaceOne

BATCH = 1000
ROUNDS = 2


def _document(index: int, _rng: Any) -> dict[str, Any]:
    return {"_id": index, "v": index, "name": f"name-{index}"}


async def _raw_upserts(uri: str, database: str, collection: str, n: int) -> float:
    client: AsyncMongoClient[Any] = AsyncMongoClient(uri)
    target = client[database][collection]
    started = time.perf_counter()
    for start in range(0, n, BATCH):
        await target.bulk_write(
            [
                ReplaceOne({"_id": i}, _document(i, None), upsert=True)
                for i in range(start, min(n, start + BATCH))
            ],
            ordered=False,
        )
    elapsed = time.perf_counter() - started
    assert await target.count_documents({}) == n
    await client.close()
    return n / elapsed


def _headwater_upserts(uri: str, database: str, collection: str, n: int, eo: bool) -> float:
    env = StreamEnvironment(
        parallelism=1,
        checkpointing=CheckpointConfig(interval=timedelta(milliseconds=500) if eo else None),
    )
    options = MongoSinkOptions(
        uri=uri, database=database, collection=collection, max_batch_size=BATCH,
        delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE if eo else DeliveryGuarantee.AT_LEAST_ONCE,
    )  # fmt: skip
    env.from_source(DataGenSource(_document, count=n, batch_size=BATCH)).sink_to(MongoSink(options))
    started = time.perf_counter()
    env.execute("mongodb-benchmark-sink")
    elapsed = time.perf_counter() - started
    assert asyncio.run(_count(uri, database, collection)) == n
    return n / elapsed


async def _count(uri: str, database: str, collection: str) -> int:
    client: AsyncMongoClient[Any] = AsyncMongoClient(uri)
    try:
        return await client[database][collection].count_documents({})
    finally:
        await client.close()


async def _raw_scan(uri: str, database: str, collection: str, n: int) -> float:
    client: AsyncMongoClient[Any] = AsyncMongoClient(uri)
    started = time.perf_counter()
    count = 0
    async for _ in client[database][collection].find(batch_size=2048):
        count += 1
    elapsed = time.perf_counter() - started
    await client.close()
    assert count == n
    return n / elapsed


def _headwater_scan(uri: str, database: str, collection: str, n: int) -> float:
    options = MongoSourceOptions(uri=uri, database=database, collection=collection)
    env = StreamEnvironment(parallelism=1)
    sink: CollectSink[Any] = CollectSink()
    env.from_source(MongoSource(options)).sink_to(sink)
    started = time.perf_counter()
    env.execute("mongodb-benchmark-scan")
    elapsed = time.perf_counter() - started
    assert len(sink.results()) == n
    return n / elapsed


async def _raw_stream(uri: str, database: str, collection: str, n: int, since: datetime) -> float:
    from bson.timestamp import Timestamp

    client: AsyncMongoClient[Any] = AsyncMongoClient(uri)
    started = time.perf_counter()
    count = 0
    async with await client[database][collection].watch(
        start_at_operation_time=Timestamp(since, 0), batch_size=2048
    ) as stream:
        while count < n:
            if await stream.try_next() is not None:
                count += 1
    elapsed = time.perf_counter() - started
    await client.close()
    return n / elapsed


def _headwater_stream(uri: str, database: str, collection: str, n: int, since: datetime) -> float:
    options = MongoSourceOptions(
        uri=uri, database=database, collection=collection, startup_mode="timestamp",
        startup_timestamp=since, full_document="default",
    )  # fmt: skip
    sink: CollectSink[Any] = CollectSink()

    async def run() -> float:
        env = StreamEnvironment(
            parallelism=1, checkpointing=CheckpointConfig(interval=timedelta(seconds=1))
        )
        env.from_source(MongoSource(options)).sink_to(sink)
        started = time.perf_counter()
        client = await env.execute_async("mongodb-benchmark-stream")
        while len(sink.results()) < n and time.perf_counter() - started < 300:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        await client.cancel()
        return elapsed

    elapsed = asyncio.run(run())
    got = len(sink.results())
    assert got == n, f"the stream delivered {got} of {n} events"
    return n / elapsed


async def _fill_stream(uri: str, database: str, collection: str, n: int) -> datetime:
    client: AsyncMongoClient[Any] = AsyncMongoClient(uri)
    await client[database][collection].drop()
    await asyncio.sleep(1.1)  # cluster times have second resolution
    since = datetime.now(UTC)
    target = client[database][collection]
    for start in range(0, n, BATCH):
        await target.insert_many([_document(i, None) for i in range(start, min(n, start + BATCH))])
    await client.close()
    return since


def run() -> dict[str, float]:
    n = int(os.environ.get("HEADWATER_BENCH_MONGODB_DOCS", "200000"))
    uri = os.environ.get("HEADWATER_MONGODB_URL", "mongodb://127.0.0.1:27017/?replicaSet=rs0")
    database = f"hw_bench_{uuid.uuid4().hex[:8]}"
    best: dict[str, float] = {}

    def keep(key: str, value: float) -> None:
        best[key] = max(best.get(key, 0.0), value)

    try:
        for round_ in range(ROUNDS):
            keep("raw_upsert_dps", asyncio.run(_raw_upserts(uri, database, f"raw{round_}", n)))
            keep("alo_dps", _headwater_upserts(uri, database, f"alo{round_}", n, eo=False))
            keep("eo_dps", _headwater_upserts(uri, database, f"eo{round_}", n, eo=True))
            keep("raw_scan_dps", asyncio.run(_raw_scan(uri, database, "raw0", n)))
            keep("scan_dps", _headwater_scan(uri, database, "raw0", n))
            since = asyncio.run(_fill_stream(uri, database, f"stream{round_}", n))
            keep(
                "raw_stream_eps",
                asyncio.run(_raw_stream(uri, database, f"stream{round_}", n, since)),
            )
            keep("stream_eps", _headwater_stream(uri, database, f"stream{round_}", n, since))
    finally:
        client: AsyncMongoClient[Any] = AsyncMongoClient(uri)
        asyncio.run(_drop(client, database))
    best["ratio_alo"] = best["alo_dps"] / best["raw_upsert_dps"]
    best["ratio_eo"] = best["eo_dps"] / best["raw_upsert_dps"]
    best["ratio_scan"] = best["scan_dps"] / best["raw_scan_dps"]
    best["ratio_stream"] = best["stream_eps"] / best["raw_stream_eps"]
    return {k: round(v, 3) for k, v in best.items()}


async def _drop(client: AsyncMongoClient[Any], database: str) -> None:
    await client.drop_database(database)
    await client.close()
