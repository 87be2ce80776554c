"""The connector-testing conformance suites: Kinesis source (with bad records); DynamoDB, Kinesis and
Firehose sinks (with kills), each read back append-only so that a duplicate shows."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import aws_jobs
import pytest
from aws_helpers import client, client_options, put_all, put_to_shards, read_stream, scan_items
from headwater.connectors.aws import (
    KinesisStreamsSource,
    KinesisStreamsSourceOptions,
)
from headwater.connectors.base import ErrorPolicy, JsonFormat
from headwater.connectors.testing import (
    SinkExternalContext,
    SinkTestSuiteBase,
    SourceExternalContext,
    SourceTestSuiteBase,
)
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import Sink, Source


class KinesisSourceContext(SourceExternalContext):
    """Integers written as ``str(n)`` with partition key ``str(n)`` into a fresh 2-shard stream."""

    def __init__(self, service: RunningService, kinesis: Any, arn: str) -> None:
        self.service = service
        self.kinesis = kinesis
        self.arn = arn

    def write_test_data(self, records: Sequence[Any]) -> None:
        put_all(self.kinesis, self.arn, [(str(r), str(r).encode()) for r in records])

    def create_source(self, *, bounded: bool) -> Source[Any, Any, Any]:
        options = KinesisStreamsSourceOptions(
            stream_arn=self.arn,
            client=client_options(self.service),
            initial_position="TRIM_HORIZON",
            bounded=bounded,
            # Small fetches, so that an unbounded run stopped after 0.6 s has not read everything.
            records_per_fetch=2,
            idle_poll_interval=timedelta(milliseconds=50),
        )
        return KinesisStreamsSource(options, record_deserializer=lambda r: int(r.data))

    def write_test_data_in_splits(self, splits: Sequence[Sequence[Any]]) -> None:
        put_to_shards(self.kinesis, self.arn, [[str(r).encode() for r in rs] for rs in splits])

    def write_bad_records(self, count: int) -> None:
        """``count`` payloads that are not JSON, among the good records' shards."""
        put_all(self.kinesis, self.arn, [(f"bad-{i}", b"{not json") for i in range(count)])

    def create_source_with_error_policy(self, policy: ErrorPolicy) -> Source[Any, Any, Any]:
        """A bounded source decoding the payloads with ``JsonFormat`` (``"5"`` is 5) under ``policy``."""
        options = KinesisStreamsSourceOptions(
            stream_arn=self.arn,
            client=client_options(self.service),
            initial_position="TRIM_HORIZON",
            bounded=True,
            idle_poll_interval=timedelta(milliseconds=50),
        )
        return KinesisStreamsSource(options, value_format=JsonFormat(on_error=policy))


@pytest.mark.slow  # kinesis-mock takes about 0.5 s per 500-record PutRecords
class TestKinesisSource(SourceTestSuiteBase):
    count = 600

    @pytest.fixture
    def external(
        self, kinesis_service: RunningService, kinesis_client: Any, new_stream: Any
    ) -> KinesisSourceContext:
        return KinesisSourceContext(kinesis_service, kinesis_client, new_stream(2))


@pytest.fixture
def job_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kill tests run the job in a subprocess that imports aws_jobs from this directory."""
    here = str(Path(__file__).parent)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    )


class DynamoDbSinkContext(SinkExternalContext):
    """A fresh table keyed by a ``write_id`` per write (append-only); records are ``n``."""

    job_target = "aws_jobs:dynamodb_job"

    def __init__(self, service: RunningService, table: str) -> None:
        self.service = service
        self.table = table
        self.dynamodb = client(service, "dynamodb")
        self.dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "write_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "write_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )

    def create_sink(self) -> Sink[Any]:
        return aws_jobs.dynamodb_sink(self.service.address, self.table)

    def read_back(self) -> list[Any]:
        return [int(item["n"]) for item in scan_items(self.dynamodb, self.table)]

    def job_params(self) -> dict[str, str]:
        return {"endpoint": self.service.address, "table": self.table}


class TestDynamoDbSink(SinkTestSuiteBase):
    count = 1000

    @pytest.fixture
    def external(
        self, dynamodb_service: RunningService, unique_name: str, job_imports: None
    ) -> DynamoDbSinkContext:
        return DynamoDbSinkContext(dynamodb_service, unique_name)


class KinesisSinkContext(SinkExternalContext):
    """A fresh 2-shard stream; records are ``n`` as a line, read back from every shard."""

    job_target = "aws_jobs:kinesis_job"

    def __init__(self, service: RunningService, kinesis: Any, arn: str) -> None:
        self.service = service
        self.kinesis = kinesis
        self.arn = arn

    def create_sink(self) -> Sink[Any]:
        return aws_jobs.kinesis_sink(self.service.address, self.arn)

    def read_back(self) -> list[Any]:
        return [int(record["Data"]) for record in read_stream(self.kinesis, self.arn)]

    def job_params(self) -> dict[str, str]:
        return {"endpoint": self.service.address, "stream": self.arn}


class TestKinesisSink(SinkTestSuiteBase):
    count = 1000

    @pytest.fixture
    def external(
        self,
        kinesis_service: RunningService,
        kinesis_client: Any,
        new_stream: Any,
        job_imports: None,
    ) -> KinesisSinkContext:
        return KinesisSinkContext(kinesis_service, kinesis_client, new_stream(2))


class FirehoseSinkContext(SinkExternalContext):
    """A fresh DirectPut delivery stream into an S3 bucket of moto; records are ``n`` as a line."""

    job_target = "aws_jobs:firehose_job"

    def __init__(self, service: RunningService, name: str) -> None:
        self.service = service
        self.name = name
        self.bucket = name.replace("_", "-")
        self.s3 = client(service, "s3")
        self.s3.create_bucket(Bucket=self.bucket)
        client(service, "firehose").create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": f"arn:aws:s3:::{self.bucket}",
            },
        )

    def create_sink(self) -> Sink[Any]:
        return aws_jobs.firehose_sink(self.service.address, self.name)

    def read_back(self) -> list[Any]:
        numbers: list[int] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for obj in page.get("Contents", []):
                body = self.s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                numbers.extend(int(line) for line in body.splitlines())
        return numbers

    def job_params(self) -> dict[str, str]:
        return {"endpoint": self.service.address, "stream": self.name}


class TestFirehoseSink(SinkTestSuiteBase):
    count = 1000

    @pytest.fixture
    def external(
        self, moto_service: RunningService, unique_name: str, job_imports: None
    ) -> FirehoseSinkContext:
        return FirehoseSinkContext(moto_service, unique_name)
