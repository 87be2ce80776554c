"""KinesisStreamsSource with enhanced fan-out against kinesis-mock (through the test-only EFO hook).

kinesis-mock sends an event per subscription about every second and no ``ChildShards``: the reader
finds a closed shard's end with ListShards. Subscriptions are cut after a few events by the hook,
as the real service ends each after 5 minutes, so every test also re-subscribes.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import efo_hook
import pytest
from aws_helpers import kinesis_record_source, put_all
from botocore.exceptions import ClientError
from headwater.connectors.aws import (
    EnhancedFanOutOptions,
    KinesisRecord,
    KinesisStreamsSource,
)
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import CheckpointConfig, CollectSink, ConfigurationError, StreamEnvironment
from test_kinesis_source import _records, _reshard


@pytest.fixture(autouse=True)
def _short_subscriptions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(efo_hook, "end_after_events", 2)


def _source(
    service: RunningService, arn: str, fan_out: EnhancedFanOutOptions, **options: Any
) -> KinesisStreamsSource[KinesisRecord]:
    return kinesis_record_source(
        service,
        arn,
        shard_discovery_interval=timedelta(milliseconds=300),
        enhanced_fan_out=fan_out,
        **options,
    )


def _consumers(kinesis: Any, arn: str) -> list[str]:
    """The names of the stream's consumers that are not being deleted."""
    consumers = kinesis.list_stream_consumers(StreamARN=arn)["Consumers"]
    return [c["ConsumerName"] for c in consumers if c["ConsumerStatus"] != "DELETING"]


def _assert_in_order(got: list[KinesisRecord], written: list[tuple[str, bytes]]) -> None:
    assert len(got) == len(written), "nothing lost or repeated"
    by_key: dict[str, list[bytes]] = defaultdict(list)
    for r in got:
        by_key[r.partition_key].append(r.data)
    for key in {k for k, _ in written}:
        assert by_key[key] == [d for k, d in written if k == key], f"order of {key}"


@pytest.mark.slow
def test_bounded_read_with_a_job_managed_consumer(
    kinesis_service: RunningService, kinesis_client: Any, new_stream: Any, unique_name: str
) -> None:
    arn = new_stream(2)
    written = _records(keys=10, per_key=20)
    put_all(kinesis_client, arn, written)
    source = _source(
        kinesis_service, arn, EnhancedFanOutOptions(consumer_name=unique_name), bounded=True
    )
    env = StreamEnvironment(parallelism=2)
    got = env.from_source(source).execute_and_collect()
    _assert_in_order(got, written)
    assert _consumers(kinesis_client, arn) == [], "deregistered when the job ended"


@pytest.mark.slow
def test_resharding_and_restore_with_a_self_managed_consumer(
    kinesis_service: RunningService,
    kinesis_client: Any,
    new_stream: Any,
    unique_name: str,
    tmp_path: Path,
) -> None:
    """A split while the job runs, a merge while it is stopped; re-subscriptions after restore.

    Children are found with ListShards (kinesis-mock sends no ``ChildShards``) and read only after
    their parents; per key the output is the write order, nothing lost or repeated.
    """
    kinesis = kinesis_client
    arn = new_stream(2)
    kinesis.register_stream_consumer(StreamARN=arn, ConsumerName=unique_name)
    fan_out = EnhancedFanOutOptions(consumer_name=unique_name, consumer_lifecycle="SELF_MANAGED")
    written: list[tuple[str, bytes]] = []
    rounds = iter(range(100))
    sink: CollectSink[KinesisRecord] = CollectSink()

    def write_round() -> None:
        batch = _records(8, 5, offset=next(rounds) * 5)
        put_all(kinesis, arn, batch)
        written.extend(batch)

    async def run(restore: Path | None, reshard: bool, savepoint: Path) -> None:
        env = StreamEnvironment(
            parallelism=2,
            checkpointing=CheckpointConfig(
                interval=timedelta(milliseconds=200),
                restore_from=str(restore) if restore else None,
            ),
        )
        env.from_source(_source(kinesis_service, arn, fan_out)).sink_to(sink)
        job = await env.execute_async("kinesis fan-out resharding")
        await asyncio.to_thread(write_round)
        if reshard:
            await asyncio.sleep(0.5)
            await asyncio.to_thread(_reshard, kinesis, arn, 0)
            await asyncio.to_thread(write_round)
        deadline = time.monotonic() + 30
        while len(sink.results()) < len(written) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await job.stop_with_savepoint(savepoint)

    asyncio.run(run(None, True, tmp_path / "savepoint-0"))
    write_round()
    _reshard(kinesis, arn, 1)
    write_round()
    asyncio.run(run(tmp_path / "savepoint-0", False, tmp_path / "savepoint-1"))
    _assert_in_order(sink.results(), written)
    assert _consumers(kinesis, arn) == [unique_name], "a self-managed consumer stays"


def test_a_missing_self_managed_consumer_fails_the_job(
    kinesis_service: RunningService, new_stream: Any
) -> None:
    arn = new_stream(1)
    fan_out = EnhancedFanOutOptions(consumer_name="missing", consumer_lifecycle="SELF_MANAGED")
    env = StreamEnvironment(parallelism=1)
    env.from_source(_source(kinesis_service, arn, fan_out, bounded=True)).sink_to(CollectSink())
    with pytest.raises(Exception) as info:
        env.execute("missing consumer")
    chain: list[BaseException] = []
    error: BaseException | None = info.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(e, ClientError) for e in chain), chain
    assert any("DescribeStreamConsumer" in str(e) for e in chain), chain
    with pytest.raises(ConfigurationError, match="consumer_name"):
        EnhancedFanOutOptions(consumer_name="no spaces")
