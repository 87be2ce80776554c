"""Jobs for the process-kill conformance tests (run by ``headwater.connectors.testing.jobrunner``).

Each writes the integers ``[0, count)`` at ``rate`` records/s append-only, so a record written
twice is read back twice: Kinesis and Firehose append by nature, and the DynamoDB items are keyed
by a fresh ``write_id`` per conversion (a retried request keeps its ids, a replayed record gets
new ones).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

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
from headwater.connectors.base import Format
from headwater.core import (
    CheckpointConfig,
    DataGenSource,
    ExponentialBackoffRestart,
    Sink,
    StreamEnvironment,
)


class NumberLines(Format[int]):
    """An integer as one line of text (Firehose concatenates records into S3 objects)."""

    def decode(self, payload: bytes) -> int:
        return int(payload)

    def encode(self, record: int) -> bytes:
        return b"%d\n" % record


def aws_client(endpoint: str) -> AwsClientOptions:
    return AwsClientOptions(
        endpoint_url=endpoint, region="us-east-1", access_key_id="test", secret_access_key="test"
    )


def append_put(n: int) -> DynamoDbWriteRequest:
    """``{"write_id": <new>, "n": n}``: every conversion is an item of its own."""
    return DynamoDbWriteRequest.put({"write_id": uuid.uuid4().hex, "n": n})


def dynamodb_sink(endpoint: str, table: str) -> DynamoDbSink[int]:
    options = DynamoDbSinkOptions(
        table_name=table, key_attributes=("write_id",), client=aws_client(endpoint)
    )
    return DynamoDbSink(options, element_converter=append_put)


def kinesis_sink(endpoint: str, stream_arn: str) -> KinesisStreamsSink[int]:
    options = KinesisStreamsSinkOptions(stream_arn=stream_arn, client=aws_client(endpoint))
    return KinesisStreamsSink(options, value_format=NumberLines(), partition_key_generator=str)


def firehose_sink(endpoint: str, delivery_stream: str) -> FirehoseSink[int]:
    options = FirehoseSinkOptions(delivery_stream_name=delivery_stream, client=aws_client(endpoint))
    return FirehoseSink(options, value_format=NumberLines())


def _job(
    checkpoint_dir: Path, parallelism: int, count: str, rate: str, sink: Sink[int]
) -> StreamEnvironment:
    env = StreamEnvironment(
        parallelism=parallelism,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=200), storage=checkpoint_dir, restore_from="latest"
        ),
        restart_strategy=ExponentialBackoffRestart(initial=timedelta(milliseconds=100), attempts=3),
    )
    source = DataGenSource(lambda i, _rng: i, count=int(count), rows_per_second=float(rate))
    env.from_source(source).sink_to(sink)
    return env


def dynamodb_job(
    *, checkpoint_dir: Path, parallelism: int, count: str, rate: str, endpoint: str, table: str
) -> StreamEnvironment:
    """``[0, count)`` into ``table``, one item per write."""
    return _job(checkpoint_dir, parallelism, count, rate, dynamodb_sink(endpoint, table))


def kinesis_job(
    *, checkpoint_dir: Path, parallelism: int, count: str, rate: str, endpoint: str, stream: str
) -> StreamEnvironment:
    """``[0, count)`` into the Kinesis stream ``stream`` (an ARN)."""
    return _job(checkpoint_dir, parallelism, count, rate, kinesis_sink(endpoint, stream))


def firehose_job(
    *, checkpoint_dir: Path, parallelism: int, count: str, rate: str, endpoint: str, stream: str
) -> StreamEnvironment:
    """``[0, count)`` into the Firehose delivery stream ``stream``."""
    return _job(checkpoint_dir, parallelism, count, rate, firehose_sink(endpoint, stream))
