"""Helpers of the AWS connector tests: clients, streams, tables and plain-boto3 reads."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import boto3
from headwater.connectors.aws import (
    AwsClientOptions,
    KinesisRecord,
    KinesisStreamsSource,
    KinesisStreamsSourceOptions,
)
from headwater.connectors.testing.pytest_plugin import RunningService


def client(service: RunningService, name: str, endpoint: str | None = None) -> Any:
    kwargs = service.boto3_kwargs()
    if endpoint is not None:
        kwargs["endpoint_url"] = endpoint
    return boto3.client(name, **kwargs)


def client_options(service: RunningService, endpoint: str | None = None) -> AwsClientOptions:
    kwargs = service.boto3_kwargs()
    return AwsClientOptions(
        region=kwargs["region_name"],
        endpoint_url=endpoint or kwargs["endpoint_url"],
        access_key_id=kwargs["aws_access_key_id"],
        secret_access_key=kwargs["aws_secret_access_key"],
    )


def kinesis_record_source(
    service: RunningService, arn: str, **options: Any
) -> KinesisStreamsSource[KinesisRecord]:
    """A Kinesis source of whole :class:`KinesisRecord`s from TRIM_HORIZON, with quick discovery
    and idle polls for tests; ``options`` override or add source options."""
    settings: dict[str, Any] = {
        "initial_position": "TRIM_HORIZON",
        "shard_discovery_interval": timedelta(milliseconds=200),
        "idle_poll_interval": timedelta(milliseconds=50),
        **options,
    }
    return KinesisStreamsSource(
        KinesisStreamsSourceOptions(stream_arn=arn, client=client_options(service), **settings),
        record_deserializer=lambda r: r,
    )


def create_stream(kinesis: Any, name: str, shards: int) -> str:
    """Create a stream, wait until it is active, return its ARN."""
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    for _ in range(100):
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return str(summary["StreamARN"])
        time.sleep(0.05)
    raise AssertionError(f"stream {name} never became active")


def wait_active(kinesis: Any, arn: str) -> None:
    for _ in range(200):
        summary = kinesis.describe_stream_summary(StreamARN=arn)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.05)
    raise AssertionError(f"stream {arn} never became active again")


def put_all(kinesis: Any, arn: str, records: list[tuple[str, bytes]]) -> None:
    """PutRecords in batches of 500, in order, retrying nothing (the emulator never fails entries)."""
    for i in range(0, len(records), 500):
        batch = records[i : i + 500]
        response = kinesis.put_records(
            StreamARN=arn, Records=[{"PartitionKey": k, "Data": d} for k, d in batch]
        )
        assert response["FailedRecordCount"] == 0


def put_to_shards(kinesis: Any, arn: str, per_shard: Sequence[Sequence[bytes]]) -> None:
    """Write ``per_shard[i]`` into the stream's i-th shard (by hash key order), in order."""
    shards = sorted(
        kinesis.list_shards(StreamARN=arn)["Shards"],
        key=lambda shard: int(shard["HashKeyRange"]["StartingHashKey"]),
    )
    assert len(shards) >= len(per_shard), "fewer shards than record lists"
    for shard, payloads in zip(shards, per_shard, strict=False):
        hash_key = shard["HashKeyRange"]["StartingHashKey"]
        for i in range(0, len(payloads), 500):
            response = kinesis.put_records(
                StreamARN=arn,
                Records=[
                    {"PartitionKey": "k", "ExplicitHashKey": hash_key, "Data": data}
                    for data in payloads[i : i + 500]
                ],
            )
            assert response["FailedRecordCount"] == 0
            assert {r["ShardId"] for r in response["Records"]} == {shard["ShardId"]}


def read_stream(kinesis: Any, arn: str) -> list[dict[str, Any]]:
    """Every record of every shard from TRIM_HORIZON (plain boto3), shard by shard."""
    records: list[dict[str, Any]] = []
    for shard in kinesis.list_shards(StreamARN=arn)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamARN=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = kinesis.get_records(StreamARN=arn, ShardIterator=iterator, Limit=10000)
            records.extend(response["Records"])
            iterator = response.get("NextShardIterator")
            if not response["Records"] and response.get("MillisBehindLatest", 0) == 0:
                break
    return records


def create_table_with_id(dynamodb: Any, name: str, *, sort_key: bool = False) -> None:
    """Create table ``name`` keyed by the string ``id`` (and the number ``seq`` with ``sort_key``)."""
    keys = [{"AttributeName": "id", "KeyType": "HASH"}]
    attributes = [{"AttributeName": "id", "AttributeType": "S"}]
    if sort_key:
        keys.append({"AttributeName": "seq", "KeyType": "RANGE"})
        attributes.append({"AttributeName": "seq", "AttributeType": "N"})
    dynamodb.create_table(
        TableName=name,
        KeySchema=keys,
        AttributeDefinitions=attributes,
        BillingMode="PAY_PER_REQUEST",
    )


def scan_items(dynamodb: Any, name: str) -> list[dict[str, Any]]:
    """Every item of table ``name``, as Python values."""
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    items = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=name):
        items.extend(
            {k: deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"]
        )
    return items
