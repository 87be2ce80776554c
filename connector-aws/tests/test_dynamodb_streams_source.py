"""DynamoDbStreamsSource against DynamoDB Local: change events in order per key, across a restore.

DynamoDB Local never reshards a stream: shard lineage is tested on Kinesis (same enumerator).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import client, client_options
from headwater.connectors.aws import (
    DynamoDbStreamRecord,
    DynamoDbStreamsSource,
    DynamoDbStreamsSourceOptions,
)
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import CheckpointConfig, CollectSink, ConfigurationError, StreamEnvironment


def _table_with_stream(dynamodb: Any, name: str) -> str:
    answer = dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return str(answer["TableDescription"]["LatestStreamArn"])


def _source(service: RunningService, arn: str, **options: Any) -> DynamoDbStreamsSource[Any]:
    return DynamoDbStreamsSource(
        DynamoDbStreamsSourceOptions(
            stream_arn=arn,
            client=client_options(service),
            initial_position="TRIM_HORIZON",
            idle_poll_interval=timedelta(milliseconds=50),
            **options,
        )
    )


def _changes(dynamodb: Any, table: str, keys: range, round_no: int) -> list[tuple[str, str, Any]]:
    """Insert (round 0) or modify each key, then remove every third; the expected events."""
    expected: list[tuple[str, str, Any]] = []
    for k in keys:
        key = f"item-{k}"
        dynamodb.put_item(TableName=table, Item={"id": {"S": key}, "n": {"N": str(round_no)}})
        expected.append((key, "INSERT" if round_no == 0 else "MODIFY", round_no))
        if k % 3 == 0 and round_no == 1:
            dynamodb.delete_item(TableName=table, Key={"id": {"S": key}})
            expected.append((key, "REMOVE", None))
    return expected


def _event(change: DynamoDbStreamRecord) -> tuple[str, str, Any]:
    image = change.new_image
    return (str(change.keys["id"]), change.event_name, None if image is None else int(image["n"]))


def test_change_events_bounded(dynamodb_service: RunningService, unique_name: str) -> None:
    dynamodb = client(dynamodb_service, "dynamodb")
    arn = _table_with_stream(dynamodb, unique_name)
    expected = _changes(dynamodb, unique_name, range(20), 0) + _changes(
        dynamodb, unique_name, range(20), 1
    )
    env = StreamEnvironment(parallelism=2)
    got = env.from_source(_source(dynamodb_service, arn, bounded=True)).execute_and_collect()
    assert sorted(map(str, map(_event, got))) == sorted(map(str, expected))
    by_key: dict[str, list[tuple[str, str, Any]]] = defaultdict(list)
    for change in got:
        by_key[str(change.keys["id"])].append(_event(change))
    for key in {k for k, _, _ in expected}:
        assert by_key[key] == [e for e in expected if e[0] == key]
    removed = [c for c in got if c.event_name == "REMOVE"]
    assert removed and all(c.old_image and c.new_image is None for c in removed)
    modified = [c for c in got if c.event_name == "MODIFY"]
    assert all(c.old_image == {"id": c.keys["id"], "n": 0} for c in modified)
    assert all(c.approximate_creation_time for c in got)


def test_change_events_in_order_across_a_restore(
    dynamodb_service: RunningService, unique_name: str, tmp_path: Path
) -> None:
    dynamodb = client(dynamodb_service, "dynamodb")
    arn = _table_with_stream(dynamodb, unique_name)
    sink: CollectSink[DynamoDbStreamRecord] = CollectSink()
    expected: list[tuple[str, str, Any]] = []

    async def run(restore: Path | None, round_no: int) -> None:
        env = StreamEnvironment(
            parallelism=2,
            checkpointing=CheckpointConfig(
                interval=timedelta(milliseconds=150),
                restore_from=str(restore) if restore else None,
            ),
        )
        env.from_source(_source(dynamodb_service, arn)).sink_to(sink)
        job = await env.execute_async("dynamodb streams")
        expected.extend(
            await asyncio.to_thread(_changes, dynamodb, unique_name, range(15), round_no)
        )
        deadline = time.monotonic() + 20
        while len(sink.results()) < len(expected) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await job.stop_with_savepoint(tmp_path / f"savepoint-{round_no}")

    asyncio.run(run(None, 0))
    # Changes made while the job is stopped are read after the restore.
    expected.extend(_changes(dynamodb, unique_name, range(15, 20), 0))
    asyncio.run(run(tmp_path / "savepoint-0", 1))
    got = [_event(c) for c in sink.results()]
    assert len(got) == len(expected), "nothing lost or repeated"
    for key in {k for k, _, _ in expected}:
        assert [e for e in got if e[0] == key] == [e for e in expected if e[0] == key]


def test_options_refuse_at_timestamp() -> None:
    with pytest.raises(ConfigurationError, match=r"DynamoDbStreamsSourceOptions: .*AT_TIMESTAMP"):
        DynamoDbStreamsSourceOptions(
            stream_arn="arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/x",
            initial_position="AT_TIMESTAMP",
        )
