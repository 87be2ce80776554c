"""Upsert-Kafka: a compacted topic as a changelog keyed by the record key.

The sink writes each change keyed: ``INSERT`` and ``UPDATE_AFTER`` write the new value,
``DELETE`` writes a tombstone (a ``None`` value), ``UPDATE_BEFORE`` is dropped (the next
``UPDATE_AFTER`` of the key replaces it). Records of one key go to one partition (murmur2 of the
key), so their order is kept. The source reads such a topic back: a value is an ``UPDATE_AFTER``
(an insert or an update: the topic does not say which; the first one per key is the insert), a
tombstone is a ``DELETE``. These are Flink's upsert-kafka semantics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from headwater.connectors.kafka._options import KafkaSinkOptions, KafkaSourceOptions
from headwater.connectors.kafka._records import KafkaRecord, KafkaRecordSerializer
from headwater.connectors.kafka._sink import KafkaSink
from headwater.connectors.kafka._source import KafkaSource
from headwater.core import ConnectorSpec, RowKind

__all__ = [
    "UPSERT_CONNECTOR",
    "RowKind",
    "UpsertRecord",
    "upsert_kafka_sink",
    "upsert_kafka_source",
]

K = TypeVar("K")
"""The key type of a changelog."""
V = TypeVar("V")
"""The value type of a changelog."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UpsertRecord(Generic[K, V]):
    """One change of the row of ``key``; ``value`` is ``None`` for a ``DELETE``."""

    kind: RowKind
    key: K
    value: V | None = None


def upsert_kafka_sink(
    options: KafkaSinkOptions,
    *,
    topic: str,
    key: Callable[[K], bytes],
    value: Callable[[V], bytes],
) -> KafkaSink[UpsertRecord[K, V]]:
    """A sink writing :class:`UpsertRecord` changes as keyed records and tombstones.

    Args:
        options: the sink options (delivery guarantee, transactions, client settings).
        topic: the changelog topic (make it compacted: ``cleanup.policy=compact``).
        key: encodes a key (required: records without key cannot be compacted).
        value: encodes a value.
    """

    def encode_value(change: UpsertRecord[K, V]) -> bytes | None:
        if change.kind is RowKind.DELETE or change.value is None:
            return None
        return value(change.value)

    serializer: KafkaRecordSerializer[UpsertRecord[K, V]] = KafkaRecordSerializer(
        topic=topic,
        key=lambda change: key(change.key),
        value=encode_value,
        skip=lambda change: change.kind is RowKind.UPDATE_BEFORE,
    )
    return KafkaSink(options, serializer)


def upsert_kafka_source(
    options: KafkaSourceOptions,
    *,
    key: Callable[[bytes], K],
    value: Callable[[bytes], V],
) -> KafkaSource[UpsertRecord[K, V]]:
    """A source reading a keyed topic as a changelog of :class:`UpsertRecord`.

    Records without a key cannot belong to a changelog and fail the job (``SerializationError``).
    """

    def decode(record: KafkaRecord) -> UpsertRecord[K, V]:
        if record.key is None:
            raise ValueError("upsert-kafka records need a key")
        if record.value is None:
            return UpsertRecord(kind=RowKind.DELETE, key=key(record.key))
        return UpsertRecord(
            kind=RowKind.UPDATE_AFTER, key=key(record.key), value=value(record.value)
        )

    return KafkaSource(options, record_deserializer=decode)


UPSERT_CONNECTOR = ConnectorSpec(
    identifier="upsert-kafka",
    summary="Kafka topics as changelogs keyed by the record key (upserts and tombstones).",
    source=upsert_kafka_source,
    sink=upsert_kafka_sink,
    options={"source": KafkaSourceOptions, "sink": KafkaSinkOptions},
    distribution="headwater-connector-kafka",
)
"""The entry point of the ``upsert-kafka`` connector (group ``headwater.connectors``)."""
