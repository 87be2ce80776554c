"""The change-stream source against the real mongod: modes, scopes, errors, and process kills."""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson.timestamp import Timestamp
from headwater.connectors.mongodb import MongoChangeEvent, MongoSource, MongoSourceOptions
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import CheckpointConfig, CollectSink, StreamEnvironment
from headwater.core.testing import kill_repeatedly
from pymongo import MongoClient

JOB = Path(__file__).parent / "jobs" / "changelog_kill_job.py"


def _collect(
    source: MongoSource[Any],
    until: Callable[[list[Any]], bool],
    during: Callable[[], None] | None = None,
    timeout: float = 20.0,
) -> list[Any]:
    """Run ``source`` into a collect sink, call ``during`` once it runs, stop when ``until``."""
    sink: CollectSink[Any] = CollectSink()

    async def run() -> None:
        env = StreamEnvironment(
            parallelism=2, checkpointing=CheckpointConfig(interval=timedelta(milliseconds=100))
        )
        env.from_source(source).sink_to(sink)
        client = await env.execute_async("change stream")
        await asyncio.sleep(0.5)
        if during is not None:
            await asyncio.to_thread(during)
        deadline = time.monotonic() + timeout
        while not until(sink.results()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await client.cancel()

    asyncio.run(run())
    return sink.results()


def _options(service: RunningService, database: str | None, **kwargs: Any) -> MongoSourceOptions:
    return MongoSourceOptions(uri=service.address, database=database, **kwargs)


def test_latest_mode_reads_changes_from_now_with_every_operation(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str
) -> None:
    collection = mongo[unique_name]["docs"]
    collection.insert_one({"_id": "before", "v": 0})  # before the job: not read

    def write() -> None:
        collection.insert_one({"_id": 1, "v": 1})
        collection.update_one({"_id": 1}, {"$set": {"v": 2}})
        collection.replace_one({"_id": 1}, {"v": 3})
        collection.delete_one({"_id": 1})

    options = _options(
        mongodb_service, unique_name, collection="docs", startup_mode="latest",
        output="change_event",
    )  # fmt: skip
    events: list[MongoChangeEvent] = _collect(
        MongoSource(options), lambda got: len(got) >= 4, write
    )
    assert [(e.operation, e.key) for e in events] == [
        ("insert", {"_id": 1}), ("update", {"_id": 1}), ("replace", {"_id": 1}),
        ("delete", {"_id": 1}),
    ]  # fmt: skip
    assert events[0].full_document == {"_id": 1, "v": 1}
    assert events[1].update_description is not None
    assert events[1].update_description["updatedFields"] == {"v": 2}
    assert events[2].full_document == {"_id": 1, "v": 3}
    assert events[0].namespace == (unique_name, "docs")
    assert all(isinstance(e.cluster_time, Timestamp) for e in events)


def test_database_scope_and_pre_images(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str
) -> None:
    database = mongo[unique_name]
    database.create_collection("a", changeStreamPreAndPostImages={"enabled": True})
    database.create_collection("b")

    def write() -> None:
        database["a"].insert_one({"_id": 1, "v": "old"})
        database["b"].insert_one({"_id": 2})
        database["a"].update_one({"_id": 1}, {"$set": {"v": "new"}})

    options = _options(
        mongodb_service, unique_name, startup_mode="latest", output="change_event",
        full_document_before_change="when_available",
    )  # fmt: skip
    events: list[MongoChangeEvent] = _collect(
        MongoSource(options), lambda got: len(got) >= 3, write
    )
    assert [(e.namespace[1], e.operation) for e in events] == [
        ("a", "insert"), ("b", "insert"), ("a", "update"),
    ]  # fmt: skip
    assert events[2].full_document_before_change == {"_id": 1, "v": "old"}
    assert events[2].full_document == {"_id": 1, "v": "new"}


def test_timestamp_mode_starts_at_the_given_time(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str
) -> None:
    collection = mongo[unique_name]["docs"]
    collection.insert_one({"_id": "old"})
    time.sleep(1.1)  # cluster times have one-second resolution
    start = datetime.now(UTC)
    collection.insert_many([{"_id": i} for i in range(5)])
    options = _options(
        mongodb_service, unique_name, collection="docs", startup_mode="timestamp",
        startup_timestamp=start,
    )  # fmt: skip
    got = _collect(MongoSource(options), lambda got: len(got) >= 5)
    assert [d["_id"] for d in got] == list(range(5))


def test_an_invalidated_stream_fails_naming_the_option(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str
) -> None:
    collection = mongo[unique_name]["docs"]
    collection.insert_one({"_id": 0})
    options = _options(mongodb_service, unique_name, collection="docs", startup_mode="latest")

    async def run() -> None:
        env = StreamEnvironment(
            parallelism=1, checkpointing=CheckpointConfig(interval=timedelta(milliseconds=100))
        )
        env.from_source(MongoSource(options)).sink_to(CollectSink())
        client = await env.execute_async("invalidated")
        await asyncio.sleep(0.8)
        collection.drop()
        await asyncio.wait_for(client.wait(), 30)

    with pytest.raises(Exception) as info:
        asyncio.run(run())
    text = " ".join(str(e) for e in _chain(info.value))
    assert "invalidated" in text and "startup_mode" in text


def _chain(error: BaseException | None) -> list[BaseException]:
    chain = []
    while error is not None and len(chain) < 10:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


# -- process kills --------------------------------------------------------------------------------


class _Writer(threading.Thread):
    """Inserts, updates and deletes at random keys until stopped; a raw change stream watches."""

    def __init__(self, client: MongoClient, database: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.collection = client[database]["docs"]
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.operations = 0

    def run(self) -> None:
        while not self.stop.is_set():
            key = self.rng.randrange(3500)
            roll = self.rng.random()
            if roll < 0.2:
                self.collection.delete_one({"_id": key})
            elif roll < 0.6:
                self.collection.update_one({"_id": key}, {"$inc": {"v": 1}}, upsert=True)
            else:
                self.collection.replace_one({"_id": key}, {"v": self.operations}, upsert=True)
            self.operations += 1
            time.sleep(0.004)


def _raw_events(client: MongoClient, database: str, start: Timestamp) -> list[tuple[Any, ...]]:
    """Every change of the collection from ``start`` on, read directly with pymongo."""
    events = []
    with client[database]["docs"].watch(start_at_operation_time=start) as stream:
        while True:
            event = stream.try_next()
            if event is None:
                return events
            events.append(
                (event["clusterTime"], event["operationType"], event["documentKey"]["_id"])
            )


def _state_at(client: MongoClient, database: str, at: Timestamp) -> dict[Any, Any]:
    """The collection as it was at cluster time ``at`` (a snapshot read)."""
    cursor = client[database].cursor_command(
        {"find": "docs", "readConcern": {"level": "snapshot", "atClusterTime": at}}
    )
    return {d["_id"]: d for d in cursor}


@pytest.mark.slow
def test_initial_mode_changelog_under_repeated_sigkill(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str, tmp_path: Path
) -> None:
    """Snapshot then stream, killed 10 times while a writer changes the collection: the replayed
    log equals the collection, and matches the snapshot and the raw change stream record by
    record (nothing missing, nothing doubled)."""
    database = mongo[unique_name]
    database["docs"].insert_many([{"_id": i, "v": 0} for i in range(3000)])
    writer = _Writer(mongo, unique_name, seed=5)
    stop = tmp_path / "stop"
    runs = tmp_path / "runs"
    job = [
        sys.executable, str(JOB), mongodb_service.address, unique_name, "docs", "log",
        str(tmp_path / "checkpoints"), str(stop),
    ]  # fmt: skip
    # The shell counts the runs, then becomes the job (exec: the kill reaches Python).
    command = ["sh", "-c", f'echo run >> "{runs}"; exec "$@"', "sh", *job]
    outcome: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: outcome.update(
            report=kill_repeatedly(command, kills=10, uptime=(3.5, 5.5), timeout=120, seed=3)
        )
    )
    runner.start()
    # The writer starts once a checkpoint holds the snapshot's cluster time (the log has entries).
    deadline = time.monotonic() + 60
    while database["log"].estimated_document_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    writer.start()
    time.sleep(20)
    writer.stop.set()
    writer.join()
    final = {d["_id"]: d for d in database["docs"].find()}
    # The last run (after the 10 kills) must catch up; a run that ends by itself ends the kills.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(runs.read_text().splitlines()) <= 10:
        time.sleep(0.2)
    while time.monotonic() < deadline and _replay(list(database["log"].find())) != final:
        time.sleep(0.5)
    stop.touch()
    runner.join()
    outcome["report"].check(10)

    log = list(database["log"].find())
    snapshot_time = next(e["t"] for e in log if e["op"] == "snapshot")
    state = _state_at(mongo, unique_name, snapshot_time)
    raw = [e for e in _raw_events(mongo, unique_name, snapshot_time) if e[0] > snapshot_time]
    # The checks see a doubled event and a lost one:
    stream_entries = [e for e in log if e["op"] != "snapshot"]
    assert _problems([*log, stream_entries[len(stream_entries) // 2]], final, state, raw)
    assert _problems([e for e in log if e is not stream_entries[-1]], final, state, raw)
    assert _problems(log, final, state, raw) == []
    assert writer.operations > 300 and len(stream_entries) > 300


def _problems(
    log: list[dict[str, Any]], final: dict[Any, Any], state: dict[Any, Any], raw: list[Any]
) -> list[str]:
    """What is wrong with ``log``: compared with the final collection, the collection at the
    snapshot time and the raw change stream after it, record by record."""
    problems = []
    if _replay(log) != final:
        problems.append("the replayed log differs from the collection")
    snapshot = [e for e in log if e["op"] == "snapshot"]
    if len({e["t"] for e in snapshot}) != 1:
        problems.append("snapshot documents at several cluster times")
    doubled = [k for k, n in Counter(e["key"] for e in snapshot).items() if n > 1]
    if doubled:
        problems.append(f"snapshot documents read twice: {doubled[:10]}")
    if {e["key"]: e["doc"] for e in snapshot} != state:
        problems.append("the snapshot differs from the collection at its cluster time")
    got = Counter((e["t"], e["op"], e["key"]) for e in log if e["op"] != "snapshot")
    expected = Counter(raw)
    if got != expected:
        problems.append(f"stream: missing {expected - got}, doubled or unexpected {got - expected}")
    return problems


def _replay(log: list[dict[str, Any]]) -> dict[Any, Any]:
    """The collection after applying the log's events in order (the snapshot first)."""
    state: dict[Any, Any] = {}
    for entry in sorted(log, key=lambda e: (e["op"] != "snapshot", e["t"])):
        if entry["op"] == "delete":
            state.pop(entry["key"], None)
        elif entry["doc"] is not None:
            state[entry["key"]] = entry["doc"]
    return state
