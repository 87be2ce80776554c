"""The AWS connectors in pipeline files (``headwater run pipeline.toml``).

- ``kinesis`` source: ``format`` (without it, payloads are emitted as ``bytes``); sink: ``format``
  (default ``raw``: records are ``bytes``) and ``partition_key`` (a ``module:function`` returning
  the record's partition key; default: a random one).
- ``firehose`` sink: ``format`` (default ``raw``).
- ``dynamodb`` source (change events) and sink (records are items: dicts): options only.

The ``options`` tables are the connectors' options models.
"""

from __future__ import annotations

from typing import Any

from headwater.connectors.aws._dynamodb_sink import DynamoDbSink, DynamoDbSinkOptions
from headwater.connectors.aws._dynamodb_streams_source import (
    DynamoDbStreamsSource,
    DynamoDbStreamsSourceOptions,
)
from headwater.connectors.aws._firehose_sink import FirehoseSink, FirehoseSinkOptions
from headwater.connectors.aws._kinesis_sink import (
    KinesisStreamsSink,
    KinesisStreamsSinkOptions,
    random_partition_key,
)
from headwater.connectors.aws._kinesis_source import (
    KinesisStreamsSource,
    KinesisStreamsSourceOptions,
)
from headwater.connectors.base import pipeline_format
from headwater.core import PipelineEndpoint

__all__ = [
    "dynamodb_sink",
    "dynamodb_source",
    "firehose_sink",
    "kinesis_sink",
    "kinesis_source",
]


def kinesis_source(endpoint: PipelineEndpoint) -> KinesisStreamsSource[Any]:
    """A :class:`KinesisStreamsSource` from a pipeline's ``[source]`` table."""
    endpoint.check_settings({"format"})
    return KinesisStreamsSource(
        KinesisStreamsSourceOptions(**endpoint.options), value_format=pipeline_format(endpoint)
    )


def kinesis_sink(endpoint: PipelineEndpoint) -> KinesisStreamsSink[Any]:
    """A :class:`KinesisStreamsSink` from a pipeline's ``[sink]`` table."""
    endpoint.check_settings({"format", "partition_key"})
    return KinesisStreamsSink(
        KinesisStreamsSinkOptions(**endpoint.options),
        value_format=pipeline_format(endpoint, default="raw"),
        partition_key_generator=endpoint.function("partition_key") or random_partition_key,
    )


def firehose_sink(endpoint: PipelineEndpoint) -> FirehoseSink[Any]:
    """A :class:`FirehoseSink` from a pipeline's ``[sink]`` table."""
    endpoint.check_settings({"format"})
    return FirehoseSink(
        FirehoseSinkOptions(**endpoint.options),
        value_format=pipeline_format(endpoint, default="raw"),
    )


def dynamodb_source(endpoint: PipelineEndpoint) -> DynamoDbStreamsSource[Any]:
    """A :class:`DynamoDbStreamsSource` (change events) from a pipeline's ``[source]`` table."""
    endpoint.check_settings(set())
    return DynamoDbStreamsSource(DynamoDbStreamsSourceOptions(**endpoint.options))


def dynamodb_sink(endpoint: PipelineEndpoint) -> DynamoDbSink[Any]:
    """A :class:`DynamoDbSink` (records are items) from a pipeline's ``[sink]`` table."""
    endpoint.check_settings(set())
    return DynamoDbSink(DynamoDbSinkOptions(**endpoint.options))
