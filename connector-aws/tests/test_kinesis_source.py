"""KinesisStreamsSource against kinesis-mock: bounded reads, positions, discovery, resharding, restores."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import kinesis_record_source, put_all, wait_active
from headwater.connectors.aws import (
    KinesisRecord,
    KinesisStreamsSourceOptions,
)
from headwater.connectors.aws._kinesis_api import KinesisApi
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import (
    CheckpointConfig,
    CollectSink,
    ConfigurationError,
    ExecutionConfig,
    StreamEnvironment,
)
from headwater.core.testing import GatedSink, wait_for_metrics


def _records(keys: int, per_key: int, offset: int = 0) -> list[tuple[str, bytes]]:
    return [
        (f"key-{k}", f"{k}:{i}".encode())
        for i in range(offset, offset + per_key)
        for k in range(keys)
    ]


def test_bounded_read_equals_written_with_timestamps(
    kinesis_service: RunningService, kinesis_client: Any, new_stream: Any
) -> None:
    kinesis = kinesis_client
    arn = new_stream(3)
    written = _records(keys=20, per_key=30)
    before = int(time.time() * 1000) - 1000
    put_all(kinesis, arn, written)
    env = StreamEnvironment(parallelism=2)
    got = env.from_source(
        kinesis_record_source(kinesis_service, arn, bounded=True)
    ).execute_and_collect()
    assert sorted(r.data for r in got) == sorted(d for _, d in written)
    assert all(
        r.approximate_arrival_timestamp and r.approximate_arrival_timestamp >= before for r in got
    )
    by_key: dict[str, list[bytes]] = defaultdict(list)
    for r in got:
        by_key[r.partition_key].append(r.data)
    for key, data in by_key.items():
        assert data == [d for k, d in written if k == key], f"order of {key}"


def test_latest_and_at_timestamp_start_positions(
    kinesis_service: RunningService, kinesis_client: Any, new_stream: Any
) -> None:
    kinesis = kinesis_client
    arn = new_stream(1)
    put_all(kinesis, arn, [("a", b"old")])
    time.sleep(1.1)
    middle = datetime.now(UTC)
    time.sleep(0.1)
    put_all(kinesis, arn, [("a", b"new")])
    env = StreamEnvironment(parallelism=1)
    source = kinesis_record_source(
        kinesis_service,
        arn,
        bounded=True,
        initial_position="AT_TIMESTAMP",
        initial_timestamp=middle,
    )
    assert [r.data for r in env.from_source(source).execute_and_collect()] == [b"new"]
    env = StreamEnvironment(parallelism=1)
    latest = kinesis_record_source(kinesis_service, arn, bounded=True, initial_position="LATEST")
    assert env.from_source(latest).execute_and_collect() == []
    with pytest.raises(ConfigurationError, match="initial_timestamp"):
        KinesisStreamsSourceOptions(stream_arn=arn, initial_position="AT_TIMESTAMP")


def test_list_shards_is_paginated_and_filtered(
    kinesis_service: RunningService, kinesis_client: Any, new_stream: Any
) -> None:
    kinesis = kinesis_client
    arn = new_stream(5)
    api = KinesisApi(kinesis, page_size=2)
    shards = api.list_shards(arn, None, None)
    assert len(shards) == 5 and len({s.shard_id for s in shards}) == 5
    after = api.list_shards(arn, None, shards[2].shard_id)
    assert [s.shard_id for s in after] == [s.shard_id for s in shards[3:]]


def _reshard(kinesis: Any, arn: str, step: int) -> None:
    """Step 0: split the first open shard; step 1: merge two adjacent open shards; 2: update count."""
    shards = [
        s for s in kinesis.list_shards(StreamARN=arn, ShardFilter={"Type": "AT_LATEST"})["Shards"]
    ]
    shards.sort(key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
    if step == 0:
        first = shards[0]
        low = int(first["HashKeyRange"]["StartingHashKey"])
        high = int(first["HashKeyRange"]["EndingHashKey"])
        kinesis.split_shard(
            StreamARN=arn, ShardToSplit=first["ShardId"], NewStartingHashKey=str((low + high) // 2)
        )
    elif step == 1:
        kinesis.merge_shards(
            StreamARN=arn,
            ShardToMerge=shards[0]["ShardId"],
            AdjacentShardToMerge=shards[1]["ShardId"],
        )
    else:
        kinesis.update_shard_count(StreamARN=arn, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    wait_active(kinesis, arn)


@pytest.mark.slow
def test_resharding_with_restores_keeps_order_per_key(
    kinesis_service: RunningService, kinesis_client: Any, new_stream: Any, tmp_path: Path
) -> None:
    """Split and update_shard_count while the job runs, merge while it is stopped.

    Between the runs the job is stopped with a savepoint and restored. While it is stopped,
    records go into the parents, the stream is resharded, and records go into the children: the
    restored job must finish the parents before reading the children. Per partition key the
    output is the write order, nothing lost or repeated.
    """
    kinesis = kinesis_client
    arn = new_stream(2)
    keys, per_round = 16, 10
    written: list[tuple[str, bytes]] = []
    rounds = iter(range(100))
    sink: CollectSink[KinesisRecord] = CollectSink()

    def write_round() -> None:
        batch = _records(keys, per_round, offset=next(rounds) * per_round)
        put_all(kinesis, arn, batch)
        written.extend(batch)

    async def run(restore: Path | None, reshard_step: int | None, savepoint: Path) -> None:
        env = StreamEnvironment(
            parallelism=2,
            checkpointing=CheckpointConfig(
                interval=timedelta(milliseconds=150),
                restore_from=str(restore) if restore else None,
            ),
        )
        # Small fetches: a child read too early would interleave with its parent.
        env.from_source(kinesis_record_source(kinesis_service, arn, records_per_fetch=7)).sink_to(
            sink
        )
        job = await env.execute_async("kinesis resharding")
        await asyncio.to_thread(write_round)
        if reshard_step is not None:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(_reshard, kinesis, arn, reshard_step)
            await asyncio.to_thread(write_round)
        deadline = time.monotonic() + 20
        while len(sink.results()) < len(written) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await job.stop_with_savepoint(savepoint)

    asyncio.run(run(None, 0, tmp_path / "savepoint-0"))
    write_round()
    _reshard(kinesis, arn, 1)
    write_round()
    asyncio.run(run(tmp_path / "savepoint-0", None, tmp_path / "savepoint-1"))
    asyncio.run(run(tmp_path / "savepoint-1", 2, tmp_path / "savepoint-2"))
    got = sink.results()
    assert len(got) == len(written), "nothing lost or repeated"
    by_key: dict[str, list[bytes]] = defaultdict(list)
    for r in got:
        by_key[r.partition_key].append(r.data)
    for key in {k for k, _ in written}:
        assert by_key[key] == [d for k, d in written if k == key], f"order of {key}"
    shards = kinesis.list_shards(StreamARN=arn)["Shards"]
    assert len(shards) > 6, "the stream was resharded"


@pytest.mark.slow
def test_millis_behind_latest_is_the_gap_to_the_newest_record(
    kinesis_service: RunningService, kinesis_client: Any, new_stream: Any
) -> None:
    """Held back behind a gated sink, the reader is behind by the gap between the two writes;
    once the sink takes records it catches up to 0."""
    arn = new_stream(1)
    put_all(kinesis_client, arn, _records(keys=1, per_key=50))
    time.sleep(1.5)
    put_all(kinesis_client, arn, _records(keys=1, per_key=50, offset=50))

    async def run() -> tuple[Mapping[str, Any], Mapping[str, Any], list[KinesisRecord]]:
        sink = GatedSink()
        env = StreamEnvironment(
            parallelism=1,
            checkpointing=CheckpointConfig(interval=timedelta(milliseconds=200)),
            execution=ExecutionConfig(batch_size=2, channel_capacity=1),
        )
        source = kinesis_record_source(kinesis_service, arn, records_per_fetch=2)
        env.from_source(source, name="kinesis").sink_to(sink)
        client = await env.execute_async("millisBehindLatest")
        try:
            behind = await wait_for_metrics(
                client, "kinesis", lambda m: m.get("millisBehindLatest") is not None
            )
            sink.gate.set()
            caught_up = await wait_for_metrics(
                client, "kinesis", lambda m: m.get("millisBehindLatest") == 0
            )
        finally:
            await client.cancel()
        return behind, caught_up, sink.results()

    behind, caught_up, _ = asyncio.run(run())
    # The first fetches are of the first write: at least the 1.5 s gap behind the second.
    assert behind["millisBehindLatest"] >= 1500, behind
    assert caught_up["millisBehindLatest"] == 0
