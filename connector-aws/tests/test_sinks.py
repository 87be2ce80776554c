"""The Kinesis, Firehose and DynamoDB sinks against the emulators, with and without partial failures."""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from aws_helpers import client, client_options, create_table_with_id, read_stream, scan_items
from headwater.connectors.aws import (
    AwsClientOptions,
    DynamoDbSink,
    DynamoDbSinkOptions,
    DynamoDbWriteRequest,
    FirehoseSink,
    FirehoseSinkOptions,
    KinesisStreamsSink,
    KinesisStreamsSinkOptions,
)
from headwater.connectors.base import AsyncSinkOptions, DeadLetter, DeadLetterOnError, SkipOnError
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import (
    ConfigurationError,
    FatalError,
    JobFailedError,
    StreamEnvironment,
)


def _cause_chain(exc: BaseException) -> list[BaseException]:
    chain = []
    current: BaseException | None = exc
    while current is not None:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


# --- Kinesis ------------------------------------------------------------------------------


def _kinesis_sink(
    service: RunningService, arn: str, endpoint: str | None = None, **writer: Any
) -> KinesisStreamsSink[bytes]:
    options = KinesisStreamsSinkOptions(
        stream_arn=arn,
        client=client_options(service, endpoint),
        writer=AsyncSinkOptions(max_batch_size=100, **writer),
    )
    return KinesisStreamsSink(options, partition_key_generator=lambda r: r.decode()[-2:])


def test_kinesis_sink_writes_exactly_what_was_sent(
    kinesis_service: RunningService, kinesis_client: Any, new_stream: Any
) -> None:
    kinesis = kinesis_client
    arn = new_stream(2)
    sent = [f"record-{i:04d}".encode() for i in range(600)]
    env = StreamEnvironment(parallelism=2)
    env.from_collection(sent).sink_to(_kinesis_sink(kinesis_service, arn))
    env.execute("kinesis sink")
    records = read_stream(kinesis, arn)
    assert sorted(r["Data"] for r in records) == sent
    assert all(r["PartitionKey"] == r["Data"].decode()[-2:] for r in records)


def test_kinesis_sink_retries_only_failed_entries(
    kinesis_service: RunningService,
    kinesis_client: Any,
    new_stream: Any,
    fault_http_proxy_factory: Any,
) -> None:
    kinesis = kinesis_client
    arn = new_stream(2)
    proxy = fault_http_proxy_factory(kinesis_service.address, failure_rate=0.3, seed=7)
    sent = [f"record-{i:04d}".encode() for i in range(500)]
    env = StreamEnvironment(parallelism=2)
    env.from_collection(sent).sink_to(_kinesis_sink(kinesis_service, arn, proxy.url))
    result = env.execute("kinesis sink with failures")
    data = Counter(r["Data"] for r in read_stream(kinesis, arn))
    assert data == Counter(sent), "every entry exactly once"
    failed = sum(s.failed for s in proxy.stats().values())
    assert failed > 50
    errors = sum(m.get("numRecordsSendErrors") or 0 for m in result.metrics.values())
    assert errors == failed


def test_kinesis_sink_missing_stream_fails_at_once(
    kinesis_service: RunningService, unique_name: str
) -> None:
    arn = f"arn:aws:kinesis:us-east-1:000000000000:stream/{unique_name}"
    options = KinesisStreamsSinkOptions(
        stream_arn=arn,
        client=AwsClientOptions(
            endpoint_url=kinesis_service.address,
            region="us-east-1",
            access_key_id="AKIDHEADWATER",
            secret_access_key="very-secret-value",
        ),
    )
    env = StreamEnvironment(parallelism=1)
    env.from_collection([b"a", b"b"]).sink_to(KinesisStreamsSink(options))
    started = time.monotonic()
    with pytest.raises(JobFailedError) as info:
        env.execute("kinesis sink, no stream")
    assert time.monotonic() - started < 10, "not retried"
    chain = _cause_chain(info.value)
    fatal = [e for e in chain if isinstance(e, FatalError)]
    assert fatal and "ResourceNotFoundException" in str(fatal[0])
    text = " ".join(f"{e} {getattr(e, '__notes__', '')}" for e in chain)
    assert "very-secret-value" not in text


def test_kinesis_sink_options_are_validated() -> None:
    with pytest.raises(ConfigurationError, match=r"KinesisStreamsSinkOptions: .*stream_arn"):
        KinesisStreamsSinkOptions()
    with pytest.raises(ConfigurationError, match="max_batch_size must be <= 500"):
        KinesisStreamsSinkOptions(
            stream_name="s", writer=AsyncSinkOptions(max_batch_size=501, max_buffered_requests=1000)
        )
    secret = KinesisStreamsSinkOptions(
        stream_name="s",
        client=client_options_with_secret(),
    )
    assert "very-secret" not in repr(secret) and "very-secret" not in str(secret)


def client_options_with_secret() -> AwsClientOptions:
    return AwsClientOptions(access_key_id="AKIDEXAMPLE", secret_access_key="very-secret")


# --- Firehose -----------------------------------------------------------------------------


def _delivery_stream(moto_service: RunningService, name: str) -> tuple[Any, str]:
    s3 = client(moto_service, "s3")
    bucket = name.replace("_", "-")
    s3.create_bucket(Bucket=bucket)
    firehose = client(moto_service, "firehose")
    firehose.create_delivery_stream(
        DeliveryStreamName=name,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
        },
    )
    return s3, bucket


def _read_bucket(s3: Any, bucket: str) -> list[bytes]:
    lines: list[bytes] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            lines.extend(body.splitlines())
    return lines


@pytest.mark.parametrize("failure_rate", [0.0, 0.3])
def test_firehose_sink_delivers_every_record_once(
    moto_service: RunningService,
    unique_name: str,
    fault_http_proxy_factory: Any,
    failure_rate: float,
) -> None:
    s3, bucket = _delivery_stream(moto_service, unique_name)
    endpoint = None
    if failure_rate:
        endpoint = fault_http_proxy_factory(
            moto_service.address, failure_rate=failure_rate, seed=3
        ).url
    sent = [f"event-{i:04d}\n".encode() for i in range(1000)]
    options = FirehoseSinkOptions(
        delivery_stream_name=unique_name,
        client=client_options(moto_service, endpoint),
        writer={"max_batch_size": 100},
    )
    env = StreamEnvironment(parallelism=2)
    env.from_collection(sent).sink_to(FirehoseSink(options))
    env.execute("firehose sink")
    assert Counter(_read_bucket(s3, bucket)) == Counter(s.rstrip(b"\n") for s in sent)


# --- DynamoDB -----------------------------------------------------------------------------


@dataclass
class Order:
    id: str
    seq: int
    total: float
    tags: list[str]


def test_dynamodb_sink_puts_deletes_and_collapses_duplicates(
    dynamodb_service: RunningService, unique_name: str
) -> None:
    dynamodb = client(dynamodb_service, "dynamodb")
    create_table_with_id(dynamodb, unique_name, sort_key=True)
    records: list[Any] = [Order(f"o{i % 50}", i // 50, i * 1.5, ["a", "b"]) for i in range(200)]
    # Same keys again in the same batches: the last write of a key wins.
    records += [
        {"id": f"o{i}", "seq": 0, "total": Decimal(-1), "blob": b"\x00\x01"} for i in range(50)
    ]
    records += [DynamoDbWriteRequest.delete({"id": f"o{i}", "seq": 3}) for i in range(0, 50, 2)]
    options = DynamoDbSinkOptions(
        table_name=unique_name,
        client=client_options(dynamodb_service),
        writer={"max_in_flight_requests": 1},
    )
    env = StreamEnvironment(parallelism=1)
    env.from_collection(records).sink_to(DynamoDbSink(options))
    env.execute("dynamodb sink")
    items = {(i["id"], int(i["seq"])): i for i in scan_items(dynamodb, unique_name)}
    assert len(items) == 200 - 25
    assert items[("o7", 0)]["total"] == -1 and items[("o7", 0)]["blob"].value == b"\x00\x01"
    assert items[("o7", 1)]["total"] == Decimal("85.5") and items[("o7", 1)]["tags"] == ["a", "b"]
    assert ("o8", 3) not in items and ("o9", 3) in items


def test_dynamodb_sink_retries_unprocessed_items(
    dynamodb_service: RunningService, unique_name: str, fault_http_proxy_factory: Any
) -> None:
    dynamodb = client(dynamodb_service, "dynamodb")
    create_table_with_id(dynamodb, unique_name)
    proxy = fault_http_proxy_factory(dynamodb_service.address, failure_rate=0.3, seed=11)
    options = DynamoDbSinkOptions(
        table_name=unique_name, client=client_options(dynamodb_service, proxy.url)
    )
    env = StreamEnvironment(parallelism=2)
    env.from_collection([{"id": f"k{i}", "n": i} for i in range(600)]).sink_to(
        DynamoDbSink(options)
    )
    env.execute("dynamodb sink with failures")
    items = scan_items(dynamodb, unique_name)
    assert sorted(int(i["n"]) for i in items) == list(range(600))
    assert sum(s.failed for s in proxy.stats().values()) > 50


def test_dynamodb_sink_missing_table_fails_at_once(
    dynamodb_service: RunningService, unique_name: str
) -> None:
    options = DynamoDbSinkOptions(table_name=unique_name, client=client_options(dynamodb_service))
    env = StreamEnvironment(parallelism=1)
    env.from_collection([{"id": "a"}]).sink_to(DynamoDbSink(options))
    with pytest.raises(JobFailedError) as info:
        env.execute("dynamodb sink, no table")
    assert any(
        isinstance(e, FatalError) and "ResourceNotFoundException" in str(e)
        for e in _cause_chain(info.value)
    )


# --- fail_on_error ------------------------------------------------------------------------


def _failed_entry_error(info: pytest.ExceptionInfo[JobFailedError], connector: str) -> str:
    fatal = [e for e in _cause_chain(info.value) if isinstance(e, FatalError)]
    assert fatal, info.value
    message = str(fatal[0])
    assert message.startswith(f"{connector}: ") and "option 'fail_on_error' is set" in message
    return message


def test_kinesis_sink_fail_on_error_fails_at_the_first_failed_entry(
    kinesis_service: RunningService,
    kinesis_client: Any,
    new_stream: Any,
    fault_http_proxy_factory: Any,
) -> None:
    arn = new_stream(1)
    proxy = fault_http_proxy_factory(kinesis_service.address, failure_rate=0.3, seed=7)
    options = KinesisStreamsSinkOptions(
        stream_arn=arn,
        client=client_options(kinesis_service, proxy.url),
        writer=AsyncSinkOptions(max_batch_size=100),
        fail_on_error=True,
    )
    sent = [f"record-{i:04d}".encode() for i in range(500)]
    env = StreamEnvironment(parallelism=1)
    env.from_collection(sent).sink_to(KinesisStreamsSink(options))
    with pytest.raises(JobFailedError) as info:
        env.execute("kinesis sink, fail_on_error")
    message = _failed_entry_error(info, "kinesis sink")
    assert "ProvisionedThroughputExceededException" in message or "InternalFailure" in message
    # The failed entries were not sent again: they are missing, and nothing is there twice.
    data = Counter(r["Data"] for r in read_stream(kinesis_client, arn))
    assert set(data) < set(sent) and max(data.values(), default=1) == 1
    assert sum(s.failed for s in proxy.stats().values()) > 0


def test_firehose_sink_fail_on_error_fails_at_the_first_failed_entry(
    moto_service: RunningService, unique_name: str, fault_http_proxy_factory: Any
) -> None:
    s3, bucket = _delivery_stream(moto_service, unique_name)
    proxy = fault_http_proxy_factory(moto_service.address, failure_rate=0.3, seed=3)
    options = FirehoseSinkOptions(
        delivery_stream_name=unique_name,
        client=client_options(moto_service, proxy.url),
        writer={"max_batch_size": 100},
        fail_on_error=True,
    )
    sent = [f"event-{i:04d}\n".encode() for i in range(500)]
    env = StreamEnvironment(parallelism=1)
    env.from_collection(sent).sink_to(FirehoseSink(options))
    with pytest.raises(JobFailedError) as info:
        env.execute("firehose sink, fail_on_error")
    _failed_entry_error(info, "firehose sink")
    lines = Counter(_read_bucket(s3, bucket))
    assert set(lines) < {s.rstrip(b"\n") for s in sent} and max(lines.values(), default=1) == 1


# --- Records over the size limit ----------------------------------------------------------


def test_kinesis_sink_oversized_records_follow_the_error_policy(
    kinesis_service: RunningService, kinesis_client: Any, new_stream: Any
) -> None:
    """Default: the job fails naming size, limit and option; skip and dead-letter drop them."""
    arn = new_stream(1)
    small = [f"record-{i:04d}".encode() for i in range(50)]
    big = [b"x" * 3000, b"y" * 5000]
    options = KinesisStreamsSinkOptions(
        stream_arn=arn,
        client=client_options(kinesis_service),
        writer=AsyncSinkOptions(max_record_size_in_bytes=2000, max_batch_size=100),
    )
    env = StreamEnvironment()
    env.from_collection(small[:25] + big + small[25:]).sink_to(KinesisStreamsSink(options))
    with pytest.raises(JobFailedError) as info:
        env.execute("kinesis sink: oversized fails")
    # the size counts the (random) partition key too
    assert re.search(
        r"kinesis sink: a record of 30\d\d bytes exceeds max_record_size_in_bytes \(2000\); "
        r"raise that option",
        str(info.value),
    ), info.value
    for policy_name in ("skip", "dead-letter"):
        letters: list[DeadLetter] = []
        policy = SkipOnError() if policy_name == "skip" else DeadLetterOnError(letters.append)
        stream = new_stream(1)
        options = options.model_copy(update={"stream_arn": stream})
        env = StreamEnvironment()
        env.from_collection(small[:25] + big + small[25:]).sink_to(
            KinesisStreamsSink(options, on_record_too_large=policy)
        )
        result = env.execute(f"kinesis sink: oversized {policy_name}")
        assert sorted(r["Data"] for r in read_stream(kinesis_client, stream)) == small
        sink_metrics = [m for name, m in result.metrics.items() if "Sink" in name]
        assert sum(m.get("numRecordsOutErrors") or 0 for m in sink_metrics) == 2
    assert [letter.payload for letter in letters] == big


def test_firehose_and_dynamodb_sinks_skip_oversized_records(
    moto_service: RunningService, dynamodb_service: RunningService, unique_name: str
) -> None:
    s3, bucket = _delivery_stream(moto_service, unique_name)
    sent = [f"event-{i:04d}\n".encode() for i in range(40)]
    firehose = FirehoseSinkOptions(
        delivery_stream_name=unique_name,
        client=client_options(moto_service),
        writer={"max_record_size_in_bytes": 1000},
    )
    env = StreamEnvironment()
    env.from_collection([*sent[:20], b"z" * 1001, *sent[20:]]).sink_to(
        FirehoseSink(firehose, on_record_too_large=SkipOnError())
    )
    env.execute("firehose sink: oversized skipped")
    assert Counter(_read_bucket(s3, bucket)) == Counter(s.rstrip(b"\n") for s in sent)

    dynamodb = client(dynamodb_service, "dynamodb")
    create_table_with_id(dynamodb, unique_name)
    table = DynamoDbSinkOptions(
        table_name=unique_name,
        client=client_options(dynamodb_service),
        writer={"max_record_size_in_bytes": 1000},
    )
    items = [{"id": f"k{i}", "n": i} for i in range(30)] + [{"id": "big", "blob": "b" * 2000}]
    env = StreamEnvironment()
    env.from_collection(items).sink_to(DynamoDbSink(table, on_record_too_large=SkipOnError()))
    env.execute("dynamodb sink: oversized skipped")
    assert sorted(int(i["n"]) for i in scan_items(dynamodb, unique_name)) == list(range(30))
