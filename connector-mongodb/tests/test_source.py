"""The MongoDB source against the real mongod: split strategies, in-split resume, initial mode."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from bson.decimal128 import Decimal128
from headwater.connectors.mongodb import (
    MongoChangeEvent,
    MongoSource,
    MongoSourceOptions,
)
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import CheckpointConfig, CollectSink, ConfigurationError, StreamEnvironment
from pymongo import MongoClient

from .mongo_helpers import ThrottledMongoSource


def _mixed_documents() -> list[dict[str, Any]]:
    """Documents whose ``_id`` values are of several BSON types, with real Python values."""
    ids: list[Any] = [
        *range(600),
        *(f"s{i:04d}" for i in range(300)),
        *(ObjectId() for _ in range(100)),
    ]
    return [
        {"_id": i, "n": k, "at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=k),
         "price": Decimal128(Decimal(k) / 4), "pair": [k, -k]}
        for k, i in enumerate(ids)
    ]  # fmt: skip


@pytest.mark.parametrize("strategy", ["single", "pagination", "sample", "split-vector"])
def test_every_strategy_reads_each_document_once(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str, strategy: str
) -> None:
    documents = _mixed_documents()
    mongo[unique_name]["docs"].insert_many([dict(d) for d in documents])
    options = MongoSourceOptions(
        uri=mongodb_service.address, database=unique_name, collection="docs",
        partition_strategy=strategy, partition_records=170, partition_size_mb=0.02,
        samples_per_partition=20, fetch_size=64,
    )  # fmt: skip
    got = StreamEnvironment(parallelism=3).from_source(MongoSource(options)).execute_and_collect()
    assert Counter(str(d["_id"]) for d in got) == Counter(str(d["_id"]) for d in documents)
    by_id = {str(d["_id"]): d for d in got}
    for expected in documents:  # record by record, values included
        assert by_id[str(expected["_id"])] == expected


def test_filter_and_projection_apply(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str
) -> None:
    mongo[unique_name]["docs"].insert_many([{"_id": i, "n": i, "x": "y"} for i in range(500)])
    options = MongoSourceOptions(
        uri=mongodb_service.address, database=unique_name, collection="docs",
        filter={"n": {"$mod": [3, 0]}}, projection={"x": 0}, partition_strategy="pagination",
        partition_records=100,
    )  # fmt: skip
    got = StreamEnvironment(parallelism=2).from_source(MongoSource(options)).execute_and_collect()
    assert sorted(got, key=lambda d: d["_id"]) == [{"_id": i, "n": i} for i in range(0, 500, 3)]


def test_a_split_resumes_inside_itself_after_a_savepoint(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str, tmp_path: Path
) -> None:
    """One split, stopped mid-read: the restored job starts after the last _id emitted."""
    count = 2000
    mongo[unique_name]["docs"].insert_many([{"_id": i, "n": i} for i in range(count)])
    options = MongoSourceOptions(
        uri=mongodb_service.address, database=unique_name, collection="docs",
        partition_strategy="single", fetch_size=50,
    )  # fmt: skip
    sink: CollectSink[Any] = CollectSink()

    def job(restore: str | None, rate: float) -> StreamEnvironment:
        env = StreamEnvironment(
            parallelism=1,
            checkpointing=CheckpointConfig(
                interval=timedelta(milliseconds=100), restore_from=restore
            ),
        )
        env.from_source(ThrottledMongoSource(options, rate=rate)).uid("mongo").sink_to(sink)
        return env

    async def stop_midway() -> Path:
        client = await job(None, 1000).execute_async("resume: first")
        await asyncio.sleep(0.8)
        return await client.stop_with_savepoint(tmp_path / "savepoint")

    savepoint = asyncio.run(stop_midway())
    first = len(sink.results())
    assert 0 < first < count, "the stop must land inside the split"
    job(str(savepoint), 1e9).execute("resume: restored")
    got = [d["_id"] for d in sink.results()]
    assert got == list(range(count)), "in _id order, each once, across the restore"


def test_initial_mode_hands_over_without_gap_or_duplicate(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str
) -> None:
    """Writes during the snapshot: the snapshot (at one cluster time) plus the stream after it,
    applied in order, equal the collection's final contents; no event is doubled."""
    collection = mongo[unique_name]["docs"]
    collection.insert_many([{"_id": i, "v": 0} for i in range(3000)])
    options = MongoSourceOptions(
        uri=mongodb_service.address, database=unique_name, collection="docs",
        startup_mode="initial", output="change_event", partition_strategy="pagination",
        partition_records=500, fetch_size=100,
    )  # fmt: skip
    sink: CollectSink[MongoChangeEvent] = CollectSink()
    writes_done = threading.Event()

    def writer() -> None:
        for k in range(600):
            i = (k * 7) % 3300
            if k % 5 == 4:
                collection.delete_one({"_id": i})
            else:
                collection.update_one({"_id": i}, {"$set": {"v": k}}, upsert=True)
        writes_done.set()

    def caught_up(events: list[MongoChangeEvent]) -> bool:
        return writes_done.is_set() and _apply(events) == _contents(collection)

    async def run() -> None:
        env = StreamEnvironment(
            parallelism=3, checkpointing=CheckpointConfig(interval=timedelta(milliseconds=100))
        )
        env.from_source(ThrottledMongoSource(options, rate=6000)).sink_to(sink)
        client = await env.execute_async("initial mode")
        thread = threading.Thread(target=writer)
        await asyncio.sleep(0.2)
        thread.start()
        for _ in range(600):
            if caught_up(sink.results()):
                break
            await asyncio.sleep(0.05)
        thread.join()
        await client.cancel()

    asyncio.run(run())
    events = sink.results()
    snapshot = [e for e in events if e.operation == "snapshot"]
    stream = [e for e in events if e.operation != "snapshot"]
    assert len(snapshot) >= 3000 - 200 and stream, (len(snapshot), len(stream))
    assert not [k for k, n in Counter(e.key["_id"] for e in snapshot).items() if n > 1]
    assert not [t for t, n in Counter(e.cluster_time for e in stream).items() if n > 1]
    assert max(e.cluster_time for e in snapshot) < min(e.cluster_time for e in stream)
    assert _apply(events) == _contents(collection)


def _apply(events: list[MongoChangeEvent]) -> dict[Any, Any]:
    """The collection's contents after applying ``events`` in order (snapshot first)."""
    state: dict[Any, Any] = {}
    for event in sorted(events, key=lambda e: (e.operation != "snapshot", e.cluster_time)):
        record = event.to_changelog()
        assert record is not None
        if record.document is None:
            state.pop(event.key["_id"], None)
        else:
            state[event.key["_id"]] = dict(record.document)
    return state


def _contents(collection: Any) -> dict[Any, Any]:
    return {d["_id"]: d for d in collection.find()}


def test_options_name_the_option_at_fault() -> None:
    with pytest.raises(ConfigurationError, match="startup_timestamp"):
        MongoSourceOptions(
            uri="mongodb://h:1", database="d", collection="c", startup_mode="timestamp"
        )
    with pytest.raises(ConfigurationError, match="database and collection"):
        MongoSourceOptions(uri="mongodb://h:1", database="d", startup_mode="snapshot")
    with pytest.raises(ConfigurationError, match="uri") as info:
        MongoSourceOptions(uri="http://user:hunter2@h:1", database="d", collection="c")
    assert "hunter2" not in str(info.value)
