"""AWS connectors for headwater: Kinesis Data Streams, Amazon Data Firehose, DynamoDB.

- :class:`KinesisStreamsSource`: FLIP-27, every shard a split, parents read before children;
  polling (GetRecords) or enhanced fan-out (SubscribeToShard, :class:`EnhancedFanOutOptions`).
- :class:`DynamoDbStreamsSource`: a table's change events (INSERT, MODIFY, REMOVE), same lineage.
- :class:`KinesisStreamsSink`, :class:`FirehoseSink`, :class:`DynamoDbSink`: at-least-once sinks
  on connector-base's async sink (batching, requests in flight, retries of failed entries only).

Install with ``pip install headwater-connector-aws``. Credentials come from boto3's standard chain
unless given in :class:`AwsClientOptions`.

Example::

    from headwater.connectors.aws import KinesisStreamsSink, KinesisStreamsSinkOptions

    sink = KinesisStreamsSink(
        KinesisStreamsSinkOptions(stream_arn="arn:aws:kinesis:eu-west-1:123456789012:stream/out"),
        partition_key_generator=lambda record: record[:8].hex(),
    )
    env.from_collection([b"a", b"b"]).sink_to(sink)

Registered as ``kinesis``, ``firehose`` and ``dynamodb`` in the ``headwater.connectors``
entry-point group.
"""

from headwater.connectors.aws._dynamodb_sink import (
    DynamoDbSink,
    DynamoDbSinkOptions,
    DynamoDbWriteRequest,
    to_attribute_values,
)
from headwater.connectors.aws._dynamodb_streams_source import (
    DynamoDbStreamRecord,
    DynamoDbStreamsSource,
    DynamoDbStreamsSourceOptions,
)
from headwater.connectors.aws._enumerator import (
    AssignmentContext,
    ShardAssigner,
    uniform_shard_assigner,
)
from headwater.connectors.aws._fan_out import EnhancedFanOutOptions
from headwater.connectors.aws._firehose_sink import FirehoseSink, FirehoseSinkOptions
from headwater.connectors.aws._kinesis_sink import (
    KinesisEntry,
    KinesisStreamsSink,
    KinesisStreamsSinkOptions,
    random_partition_key,
)
from headwater.connectors.aws._kinesis_source import (
    KinesisRecord,
    KinesisStreamsSource,
    KinesisStreamsSourceOptions,
)
from headwater.connectors.aws._pipeline import (
    dynamodb_sink,
    dynamodb_source,
    firehose_sink,
    kinesis_sink,
    kinesis_source,
)
from headwater.connectors.aws._shards import EnumeratorState, ShardSplit, StartingPosition
from headwater.connectors.aws._source_base import ShardSourceOptions
from headwater.connectors.aws.version import __version__
from headwater.connectors.base.aws import AwsClientOptions
from headwater.core import ConnectorSpec

__all__ = [
    "DYNAMODB_CONNECTOR",
    "FIREHOSE_CONNECTOR",
    "KINESIS_CONNECTOR",
    "AssignmentContext",
    "AwsClientOptions",
    "DynamoDbSink",
    "DynamoDbSinkOptions",
    "DynamoDbStreamRecord",
    "DynamoDbStreamsSource",
    "DynamoDbStreamsSourceOptions",
    "DynamoDbWriteRequest",
    "EnhancedFanOutOptions",
    "EnumeratorState",
    "FirehoseSink",
    "FirehoseSinkOptions",
    "KinesisEntry",
    "KinesisRecord",
    "KinesisStreamsSink",
    "KinesisStreamsSinkOptions",
    "KinesisStreamsSource",
    "KinesisStreamsSourceOptions",
    "ShardAssigner",
    "ShardSourceOptions",
    "ShardSplit",
    "StartingPosition",
    "__version__",
    "random_partition_key",
    "to_attribute_values",
    "uniform_shard_assigner",
]

_DISTRIBUTION = "headwater-connector-aws"

KINESIS_CONNECTOR = ConnectorSpec(
    identifier="kinesis",
    summary="Amazon Kinesis Data Streams: FLIP-27 source (polling or enhanced fan-out), async sink.",
    source=KinesisStreamsSource,
    sink=KinesisStreamsSink,
    options={"source": KinesisStreamsSourceOptions, "sink": KinesisStreamsSinkOptions},
    distribution=_DISTRIBUTION,
    pipeline_source=kinesis_source,
    pipeline_sink=kinesis_sink,
)
"""The entry point of the ``kinesis`` connector (group ``headwater.connectors``)."""

FIREHOSE_CONNECTOR = ConnectorSpec(
    identifier="firehose",
    summary="Amazon Data Firehose delivery streams: async sink (PutRecordBatch).",
    source=None,
    sink=FirehoseSink,
    options={"sink": FirehoseSinkOptions},
    distribution=_DISTRIBUTION,
    pipeline_sink=firehose_sink,
)
"""The entry point of the ``firehose`` connector (group ``headwater.connectors``)."""

DYNAMODB_CONNECTOR = ConnectorSpec(
    identifier="dynamodb",
    summary="Amazon DynamoDB: DynamoDB Streams change-event source, async sink (BatchWriteItem).",
    source=DynamoDbStreamsSource,
    sink=DynamoDbSink,
    options={"source": DynamoDbStreamsSourceOptions, "sink": DynamoDbSinkOptions},
    distribution=_DISTRIBUTION,
    pipeline_source=dynamodb_source,
    pipeline_sink=dynamodb_sink,
)
"""The entry point of the ``dynamodb`` connector (group ``headwater.connectors``)."""

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("headwater.connectors.aws._"):
        _obj.__module__ = "headwater.connectors.aws"
del _name, _obj
