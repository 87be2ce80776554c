"""What the source emits and the sink consumes: :class:`KafkaRecord` and the (de)serializer hooks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from headwater.connectors.base import Deserializer
from headwater.core import MetricGroup

__all__ = ["KafkaRecord", "KafkaRecordSerializer", "ValueFormat"]

T = TypeVar("T")
"""The record type produced by a deserializer or consumed by a serializer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaRecord:
    """One record as read from a partition.

    Attributes:
        topic: the topic it was read from.
        partition: the partition it was read from.
        offset: its offset in the partition.
        timestamp: its timestamp in epoch milliseconds (create or log-append time).
        key: the key bytes, or ``None``.
        value: the value bytes, or ``None`` for a tombstone.
        headers: the headers in order, as ``(name, value)`` pairs.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class ValueFormat(Protocol[T]):
    """A decoder of values that a reader binds to its metrics, as connector-base formats are.

    Any of connector-base's formats (``JsonFormat``, ``TextFormat``, ``AvroFormat``, ...) fits; its
    error policy (fail, skip and count, dead-letter) decides what happens to a bad value, and the
    :class:`~headwater.connectors.base.Deserializer` it returns counts bad values in the
    reader's ``numRecordsInErrors``.
    """

    def deserializer(self, metric_group: MetricGroup, /) -> Deserializer[T]:
        """The format bound to one reader's metric group (called once per reader)."""
        ...


@dataclass(frozen=True, kw_only=True)
class KafkaRecordSerializer(Generic[T]):
    """How the sink turns a record into a Kafka record. Every hook gets the record.

    Args:
        topic: the target topic, or a function choosing it per record (a topic selector).
        value: the value bytes (``None`` writes a tombstone). Default: the record itself, which
            must then be ``bytes``. A connector-base format's ``encode`` fits.
        key: the key bytes, or ``None`` for no key. Default: no key.
        headers: the headers as ``(name, value)`` pairs. Default: none.
        timestamp: the timestamp in epoch milliseconds. Default: the producer's clock.
        partitioner: ``(record, key, num_partitions) -> partition``. Default: Kafka's (murmur2 of
            the key; records without a key go to one partition per batch, rotating).
        skip: records for which it returns true are not written (e.g. ``UPDATE_BEFORE``
            changes of an upsert changelog). Default: every record is written.
    """

    topic: str | Callable[[T], str]
    value: Callable[[T], bytes | None] | None = None
    key: Callable[[T], bytes | None] | None = None
    headers: Callable[[T], Sequence[tuple[str, bytes]]] | None = None
    timestamp: Callable[[T], int | None] | None = None
    partitioner: Callable[[T, bytes | None, int], int] | None = None
    skip: Callable[[T], bool] | None = None
