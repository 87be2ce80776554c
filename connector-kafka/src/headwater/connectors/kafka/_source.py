"""KafkaSource: a FLIP-27 source over topics (by list or pattern), one split per partition."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from headwater.connectors.kafka._enumerator import KafkaSourceEnumerator
from headwater.connectors.kafka._options import KafkaSourceOptions
from headwater.connectors.kafka._reader import KafkaRecordEmitter, KafkaSourceReader
from headwater.connectors.kafka._records import KafkaRecord, ValueFormat
from headwater.connectors.kafka._split import (
    ENUMERATOR_STATE_SERIALIZER,
    SPLIT_SERIALIZER,
    EnumeratorState,
    KafkaPartitionSplit,
)
from headwater.core import (
    Boundedness,
    ConfigurationError,
    MetricGroup,
    Source,
    SourceReader,
    SourceReaderContext,
    SplitEnumerator,
    SplitEnumeratorContext,
    VersionedSerializer,
)
from typing_extensions import override

__all__ = ["KafkaSource"]

T = TypeVar("T")
"""The type of the records the source emits."""


class KafkaSource(Source[T, KafkaPartitionSplit, EnumeratorState], Generic[T]):
    """Reads Kafka topics; every partition is a split, its offset is checkpointed.

    Example::

        from headwater.connectors.kafka import KafkaSource, KafkaSourceOptions, Latest

        source = KafkaSource(
            KafkaSourceOptions(bootstrap_servers="localhost:9092", topics=["clicks"],
                               group_id="clicks-job", stopping_offsets=Latest()),
            value_format=JsonFormat(),            # from headwater.connectors.base
        )
        env.from_source(source, name="clicks").map(...)

    Guarantee: exactly-once reading. Offsets live in the checkpoint; after a failure every reader
    resumes at the first record it had not emitted before the checkpoint. Committing them to the
    consumer group on checkpoint completion is only for monitoring and ``Committed`` starts.

    Event timestamps are the Kafka record timestamps (each batch of a partition goes out in one
    ``output.collect_batch(records, timestamps)``), so a ``WatermarkStrategy`` sees them.

    Args:
        options: where and what to read (:class:`KafkaSourceOptions`).
        value_format: decodes values only (a connector-base format: its error policy handles bad
            values). Records without a value (tombstones) are skipped.
        record_deserializer: turns a whole :class:`KafkaRecord` (key, value, headers, topic,
            partition, offset, timestamp) into a record. Exclusive with ``value_format``.
            With neither, the values are emitted as ``bytes``.
    """

    def __init__(
        self,
        options: KafkaSourceOptions,
        *,
        value_format: ValueFormat[T] | None = None,
        record_deserializer: Callable[[KafkaRecord], T] | None = None,
    ) -> None:
        if not isinstance(options, KafkaSourceOptions):
            raise ConfigurationError(
                f"kafka source: expected KafkaSourceOptions, got {type(options).__name__}"
            )
        if value_format is not None and record_deserializer is not None:
            raise ConfigurationError(
                "kafka source: set at most one of 'value_format' and 'record_deserializer'"
            )
        self.options = options
        self._value_format = value_format
        self._record_deserializer = record_deserializer

    def __repr__(self) -> str:
        return f"KafkaSource({self.options!r})"

    @property
    @override
    def boundedness(self) -> Boundedness:
        if self.options.stopping_offsets is None:
            return Boundedness.CONTINUOUS_UNBOUNDED
        return Boundedness.BOUNDED

    @override
    def create_enumerator(
        self, context: SplitEnumeratorContext[KafkaPartitionSplit]
    ) -> SplitEnumerator[KafkaPartitionSplit, EnumeratorState]:
        return KafkaSourceEnumerator(context, self.options)

    @override
    def restore_enumerator(
        self, context: SplitEnumeratorContext[KafkaPartitionSplit], state: EnumeratorState
    ) -> SplitEnumerator[KafkaPartitionSplit, EnumeratorState]:
        return KafkaSourceEnumerator(context, self.options, state)

    @override
    def create_reader(self, context: SourceReaderContext) -> SourceReader[T, KafkaPartitionSplit]:
        return KafkaSourceReader(context, self.options, self._emitter)

    def _emitter(self, metric_group: MetricGroup) -> KafkaRecordEmitter[T]:
        """The emitter of one reader, its format bound to the reader's ``numRecordsInErrors``."""
        fmt = self._value_format
        return KafkaRecordEmitter(
            fmt.deserializer(metric_group) if fmt is not None else None,
            self._record_deserializer,
            metric_group.counter("numRecordsInErrors"),
        )

    @override
    def split_serializer(self) -> VersionedSerializer[KafkaPartitionSplit]:
        return SPLIT_SERIALIZER

    @override
    def enumerator_state_serializer(self) -> VersionedSerializer[EnumeratorState]:
        return ENUMERATOR_STATE_SERIALIZER
