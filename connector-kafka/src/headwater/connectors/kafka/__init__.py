"""The Kafka connector for headwater: source, sink (none, at-least-once, exactly-once), upsert-kafka.

The source is a FLIP-27 source with one split per partition; the sink writes with NONE,
AT_LEAST_ONCE or EXACTLY_ONCE delivery (Kafka transactions); upsert-kafka reads and writes
changelogs keyed by the record key.

Install with ``pip install headwater-connector-kafka`` (``[compression]`` adds snappy, lz4 and zstd).

Example::

    from headwater.core import CheckpointConfig, DeliveryGuarantee, StreamEnvironment
    from headwater.connectors.kafka import (
        KafkaRecordSerializer, KafkaSink, KafkaSinkOptions, KafkaSource, KafkaSourceOptions,
    )

    env = StreamEnvironment(parallelism=2, checkpointing=CheckpointConfig(interval=timedelta(seconds=1)))
    source = KafkaSource(KafkaSourceOptions(bootstrap_servers="localhost:9092", topics=["in"]))
    sink = KafkaSink(
        KafkaSinkOptions(bootstrap_servers="localhost:9092",
                         delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE,
                         transactional_id_prefix="upper-job"),
        KafkaRecordSerializer(topic="out"),
    )
    env.from_source(source).map(bytes.upper).sink_to(sink)
    env.execute("upper")

Registered as ``kafka`` and ``upsert-kafka`` in the ``headwater.connectors`` entry-point group.
"""

from headwater.connectors.kafka._options import (
    AtTimestamp,
    Committed,
    Earliest,
    KafkaClientOptions,
    KafkaSinkOptions,
    KafkaSourceOptions,
    Latest,
    PartitionOffset,
    SpecificOffsets,
    StartingOffsets,
    StoppingOffsets,
)
from headwater.connectors.kafka._pipeline import pipeline_sink, pipeline_source
from headwater.connectors.kafka._records import KafkaRecord, KafkaRecordSerializer, ValueFormat
from headwater.connectors.kafka._sink import KafkaSink
from headwater.connectors.kafka._source import KafkaSource
from headwater.connectors.kafka._split import EnumeratorState, KafkaPartitionSplit
from headwater.connectors.kafka._transactions import KafkaCommittable
from headwater.connectors.kafka._upsert import (
    UPSERT_CONNECTOR,
    RowKind,
    UpsertRecord,
    upsert_kafka_sink,
    upsert_kafka_source,
)
from headwater.connectors.kafka.version import __version__
from headwater.core import ConnectorSpec

__all__ = [
    "CONNECTOR",
    "UPSERT_CONNECTOR",
    "AtTimestamp",
    "Committed",
    "Earliest",
    "EnumeratorState",
    "KafkaClientOptions",
    "KafkaCommittable",
    "KafkaPartitionSplit",
    "KafkaRecord",
    "KafkaRecordSerializer",
    "KafkaSink",
    "KafkaSinkOptions",
    "KafkaSource",
    "KafkaSourceOptions",
    "Latest",
    "PartitionOffset",
    "RowKind",
    "SpecificOffsets",
    "StartingOffsets",
    "StoppingOffsets",
    "UpsertRecord",
    "ValueFormat",
    "__version__",
    "upsert_kafka_sink",
    "upsert_kafka_source",
]

CONNECTOR = ConnectorSpec(
    identifier="kafka",
    summary="Apache Kafka topics: partitioned source, sink with none/at-least-once/exactly-once.",
    source=KafkaSource,
    sink=KafkaSink,
    options={"source": KafkaSourceOptions, "sink": KafkaSinkOptions},
    distribution="headwater-connector-kafka",
    pipeline_source=pipeline_source,
    pipeline_sink=pipeline_sink,
)
"""The entry point of the ``kafka`` connector (group ``headwater.connectors``)."""

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("headwater.connectors.kafka._"):
        _obj.__module__ = "headwater.connectors.kafka"
del _name, _obj
