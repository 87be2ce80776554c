"""MongoSource: a bounded snapshot of a collection, a change stream, or a snapshot then its stream."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from headwater.connectors.base import Format
from headwater.connectors.mongodb._enumerator import MongoSourceEnumerator
from headwater.connectors.mongodb._options import MongoSourceOptions
from headwater.connectors.mongodb._reader import MongoRecordEmitter, MongoSourceReader
from headwater.connectors.mongodb._records import BsonFormat
from headwater.connectors.mongodb._split import (
    ENUMERATOR_STATE_SERIALIZER,
    SPLIT_SERIALIZER,
    EnumeratorState,
    MongoSplit,
)
from headwater.core import (
    Boundedness,
    ConfigurationError,
    Source,
    SourceReader,
    SourceReaderContext,
    SplitEnumerator,
    SplitEnumeratorContext,
    VersionedSerializer,
)
from typing_extensions import override

__all__ = ["MongoSource"]

T = TypeVar("T")
"""The type of the records the source emits."""


class MongoSource(Source[T, MongoSplit, EnumeratorState], Generic[T]):
    """Reads a MongoDB collection (snapshot), its change stream, or both, exactly once.

    Example::

        from headwater.connectors.mongodb import MongoSource, MongoSourceOptions

        source = MongoSource(MongoSourceOptions(
            uri="mongodb://localhost:27017/?replicaSet=rs0", database="shop",
            collection="orders", startup_mode="initial", output="changelog"))
        env.from_source(source, name="orders").sink_to(...)

    Guarantee: exactly-once reading. A snapshot split's checkpoint holds the last ``_id`` it
    emitted, the change stream's the resume token of the last event emitted; a restored job goes
    on from there. In ``initial`` mode the snapshot reads at one cluster time and the stream
    starts right after it, once the whole snapshot is read.

    Args:
        options: what to read and how (:class:`MongoSourceOptions`).
        format: decodes documents for ``output='document'`` (a connector-base format over BSON
            bytes; its error policy handles documents it refuses). Default :class:`BsonFormat`
            (``dict``); :class:`ExtendedJsonFormat` gives Extended JSON text.
    """

    def __init__(self, options: MongoSourceOptions, *, format: Format[Any] | None = None) -> None:
        if not isinstance(options, MongoSourceOptions):
            raise ConfigurationError(
                f"mongodb source: expected MongoSourceOptions, got {type(options).__name__}"
            )
        if format is not None and options.output != "document":
            raise ConfigurationError(
                f"mongodb source: a format decodes documents; it is not used with "
                f"output={options.output!r}"
            )
        self.options = options
        self.format: Format[Any] = format if format is not None else BsonFormat()

    def __repr__(self) -> str:
        return f"MongoSource({self.options!r})"

    @property
    @override
    def boundedness(self) -> Boundedness:
        if self.options.bounded:
            return Boundedness.BOUNDED
        return Boundedness.CONTINUOUS_UNBOUNDED

    @override
    def create_enumerator(
        self, context: SplitEnumeratorContext[MongoSplit]
    ) -> SplitEnumerator[MongoSplit, EnumeratorState]:
        return MongoSourceEnumerator(context, self.options)

    @override
    def restore_enumerator(
        self, context: SplitEnumeratorContext[MongoSplit], state: EnumeratorState
    ) -> SplitEnumerator[MongoSplit, EnumeratorState]:
        return MongoSourceEnumerator(context, self.options, state)

    @override
    def create_reader(self, context: SourceReaderContext) -> SourceReader[T, MongoSplit]:
        emitter: MongoRecordEmitter[T] = MongoRecordEmitter(
            self.options, self.format.deserializer(context.metric_group)
        )
        return MongoSourceReader(context, self.options, emitter)

    @override
    def split_serializer(self) -> VersionedSerializer[MongoSplit]:
        return SPLIT_SERIALIZER

    @override
    def enumerator_state_serializer(self) -> VersionedSerializer[EnumeratorState]:
        return ENUMERATOR_STATE_SERIALIZER
