"""The AWS connectors in pipeline files (``headwater run pipeline.toml``).

- ``kinesis`` source: ``format`` (without it, payloads are emitted as ``bytes``); sink: ``format``
  (default ``raw``: records are ``bytes``) and ``partition_key`` (a ``module:function`` returning
  the record's partition key; default: a random one).
- ``firehose`` sink: ``format`` (default ``raw``).
- ``dynamodb`` source (change events) and sink (records are items: dicts): options only.

The ``options`` tables are the connectors' options models.
"""

from __future__ import annotations

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
from headwater.connectors.base import format_setting
from headwater.core import PipelineBinding, function_setting

__all__ = [
    "dynamodb_sink",
    "dynamodb_source",
    "firehose_sink",
    "kinesis_sink",
    "kinesis_source",
]

kinesis_source = PipelineBinding(
    build=KinesisStreamsSource,
    options=KinesisStreamsSourceOptions,
    settings={"format": format_setting("value_format")},
)
"""A :class:`KinesisStreamsSource` from a pipeline's ``[source]`` table."""
kinesis_sink = PipelineBinding(
    build=KinesisStreamsSink,
    options=KinesisStreamsSinkOptions,
    settings={
        "format": format_setting("value_format", default="raw"),
        "partition_key": function_setting("partition_key_generator", default=random_partition_key),
    },
)
"""A :class:`KinesisStreamsSink` from a pipeline's ``[sink]`` table."""
firehose_sink = PipelineBinding(
    build=FirehoseSink,
    options=FirehoseSinkOptions,
    settings={"format": format_setting("value_format", default="raw")},
)
"""A :class:`FirehoseSink` from a pipeline's ``[sink]`` table."""
dynamodb_source = PipelineBinding(build=DynamoDbStreamsSource, options=DynamoDbStreamsSourceOptions)
"""A :class:`DynamoDbStreamsSource` (change events) from a pipeline's ``[source]`` table."""
dynamodb_sink = PipelineBinding(build=DynamoDbSink, options=DynamoDbSinkOptions)
"""A :class:`DynamoDbSink` (records are items) from a pipeline's ``[sink]`` table."""
