"""The connector-testing conformance suites: Kinesis source (with bad records), DynamoDB sink (with kills)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import client, client_options, put_all, put_to_shards
from headwater.connectors.aws import (
    DynamoDbSink,
    DynamoDbSinkOptions,
    DynamoDbWriteRequest,
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


class TestKinesisSource(SourceTestSuiteBase):
    count = 600

    @pytest.fixture
    def external(
        self, kinesis_service: RunningService, kinesis_client: Any, new_stream: Any
    ) -> KinesisSourceContext:
        return KinesisSourceContext(kinesis_service, kinesis_client, new_stream(2))


class DynamoDbSinkContext(SinkExternalContext):
    """A fresh table keyed by the number ``id``; records are ``{"id": n}``."""

    job_target = "aws_jobs:dynamodb_job"

    def __init__(self, service: RunningService, table: str) -> None:
        self.service = service
        self.table = table
        self.dynamodb = client(service, "dynamodb")
        self.dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
            BillingMode="PAY_PER_REQUEST",
        )

    def create_sink(self) -> Sink[Any]:
        options = DynamoDbSinkOptions(table_name=self.table, client=client_options(self.service))
        return DynamoDbSink(options, element_converter=_put_id)

    def read_back(self) -> list[Any]:
        ids = []
        for page in self.dynamodb.get_paginator("scan").paginate(TableName=self.table):
            ids.extend(int(item["id"]["N"]) for item in page["Items"])
        return ids

    def job_params(self) -> dict[str, str]:
        return {"endpoint": self.service.address, "table": self.table}


def _put_id(n: int) -> DynamoDbWriteRequest:
    return DynamoDbWriteRequest.put({"id": n})


class TestDynamoDbSink(SinkTestSuiteBase):
    count = 1000

    @pytest.fixture
    def external(
        self,
        dynamodb_service: RunningService,
        unique_name: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> DynamoDbSinkContext:
        # The kill test runs the job in a subprocess that imports aws_jobs from this directory.
        here = str(Path(__file__).parent)
        monkeypatch.setenv(
            "PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
        )
        return DynamoDbSinkContext(dynamodb_service, unique_name)
