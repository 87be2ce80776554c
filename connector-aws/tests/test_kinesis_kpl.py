"""KPL-aggregated records: written by AWS's reference aggregator to kinesis-mock, read back split."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aws_helpers import client_options, kinesis_record_source
from aws_kinesis_agg.aggregator import RecordAggregator
from headwater.connectors.aws import (
    KinesisRecord,
    KinesisStreamsSource,
    KinesisStreamsSourceOptions,
)
from headwater.connectors.aws._kpl import MAGIC, deaggregate
from headwater.connectors.base import JsonFormat
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import CheckpointConfig, CollectSink, SerializationError, StreamEnvironment

PER_AGGREGATE = 40


def _write(kinesis: Any, arn: str, aggregates: int) -> list[list[tuple[str, bytes]]]:
    """Write ``aggregates`` aggregated records, each followed by a plain one.

    Returns what each Kinesis record holds: an aggregate's user records, or the plain record.
    """
    written: list[list[tuple[str, bytes]]] = []
    entries = []
    for a in range(aggregates):
        aggregator = RecordAggregator()
        users = [(f"user-{i % 7}", orjson.dumps([a, i])) for i in range(PER_AGGREGATE)]
        for key, data in users:
            assert aggregator.add_user_record(key, data) is None  # all fit in one aggregate
        key, hash_key, payload = aggregator.clear_and_get().get_contents()
        assert payload.startswith(MAGIC)
        entry = {"PartitionKey": key, "Data": payload}
        if hash_key is not None:
            entry["ExplicitHashKey"] = hash_key
        plain = (f"plain-{a}", orjson.dumps([a, "plain"]))
        entries += [entry, {"PartitionKey": plain[0], "Data": plain[1]}]
        written += [users, [plain]]
    response = kinesis.put_records(StreamARN=arn, Records=entries)
    assert response["FailedRecordCount"] == 0
    return written


def test_aggregated_records_are_read_as_their_user_records(
    kinesis_service: RunningService, kinesis_client: Any, new_stream: Any
) -> None:
    arn = new_stream(2)
    written = _write(kinesis_client, arn, aggregates=6)
    env = StreamEnvironment(parallelism=2)
    got = env.from_source(
        kinesis_record_source(kinesis_service, arn, bounded=True)
    ).execute_and_collect()
    by_sequence: dict[str, list[KinesisRecord]] = {}
    for record in got:
        by_sequence.setdefault(record.sequence_number, []).append(record)
    assert len(by_sequence) == len(written)
    read = [[(r.partition_key, r.data) for r in records] for records in by_sequence.values()]
    # every Kinesis record yields exactly what was put in it, in the aggregate's order
    assert sorted(read, key=repr) == sorted(written, key=repr)
    for records in by_sequence.values():
        subs = [r.sub_sequence_number for r in records]
        assert subs == ([None] if len(records) == 1 else list(range(PER_AGGREGATE)))


def test_a_format_decodes_user_records_and_deaggregation_can_be_off(
    kinesis_service: RunningService, kinesis_client: Any, new_stream: Any
) -> None:
    arn = new_stream(1)
    written = _write(kinesis_client, arn, aggregates=3)
    options = KinesisStreamsSourceOptions(
        stream_arn=arn,
        client=client_options(kinesis_service),
        initial_position="TRIM_HORIZON",
        bounded=True,
    )
    decoded = (
        StreamEnvironment(parallelism=1)
        .from_source(KinesisStreamsSource(options, value_format=JsonFormat()))
        .execute_and_collect()
    )
    assert decoded == [orjson.loads(data) for users in written for _, data in users]
    raw = (
        StreamEnvironment(parallelism=1)
        .from_source(KinesisStreamsSource(options.model_copy(update={"deaggregate": False})))
        .execute_and_collect()
    )
    assert len(raw) == len(written)  # one payload per Kinesis record, aggregates as written
    assert sum(payload.startswith(MAGIC) for payload in raw) == 3


def test_restore_never_splits_an_aggregate(
    kinesis_service: RunningService, kinesis_client: Any, new_stream: Any, tmp_path: Path
) -> None:
    """Positions are per Kinesis record: a savepoint falls between aggregates, never inside one."""
    arn = new_stream(1)
    written = _write(kinesis_client, arn, aggregates=10)
    expected = Counter(data for users in written for _, data in users)
    sink: CollectSink[bytes] = CollectSink()

    async def run(restore: Path | None, until: int, savepoint: Path) -> None:
        env = StreamEnvironment(
            parallelism=1,
            checkpointing=CheckpointConfig(
                interval=timedelta(milliseconds=50),
                restore_from=str(restore) if restore else None,
            ),
        )
        # One Kinesis record per fetch: checkpoints land between many aggregates.
        source = kinesis_record_source(kinesis_service, arn, bounded=False, records_per_fetch=1)
        env.from_source(source).map(lambda r: r.data).sink_to(sink)
        job = await env.execute_async("kpl restore")
        for _ in range(400):
            if len(sink.results()) >= until:
                break
            await asyncio.sleep(0.05)
        await job.stop_with_savepoint(savepoint)

    asyncio.run(run(None, PER_AGGREGATE * 3, tmp_path / "sp1"))
    first = len(sink.results())
    asyncio.run(run(tmp_path / "sp1", sum(expected.values()), tmp_path / "sp2"))
    assert 0 < first < sum(expected.values())
    assert Counter(sink.results()) == expected, "a user record lost or read twice"


def _payload(body: bytes, digest: bytes | None = None) -> bytes:
    return MAGIC + body + (digest if digest is not None else hashlib.md5(body).digest())


def test_a_wrong_digest_is_a_plain_record_and_a_corrupt_aggregate_is_refused() -> None:
    plain = _payload(b"\x0a\x01k", digest=b"\x00" * 16)  # magic by chance: digest does not match
    record = {"Data": plain, "PartitionKey": "p", "SequenceNumber": "49"}
    assert deaggregate([record], "shardId-0") == [record]
    corrupt = {"Data": _payload(b"\x1a\x05\x08"), "PartitionKey": "p", "SequenceNumber": "50"}
    with pytest.raises(SerializationError, match=r"record 50 of shard shardId-0 is corrupt"):
        deaggregate([corrupt], "shardId-0")
