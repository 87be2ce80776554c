"""RabbitMQSource: a FLIP-27 source over queues, one split per consumer, acks on checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from headwater.connectors.base import Format
from headwater.connectors.rabbitmq._enumerator import RabbitMQSplitEnumerator
from headwater.connectors.rabbitmq._options import RabbitMQSourceOptions
from headwater.connectors.rabbitmq._reader import RabbitMQRecordEmitter, RabbitMQSourceReader
from headwater.connectors.rabbitmq._records import RabbitMQMessage
from headwater.connectors.rabbitmq._split import (
    ENUMERATOR_STATE_SERIALIZER,
    SPLIT_SERIALIZER,
    EnumeratorState,
    RabbitMQQueueSplit,
)
from headwater.core import (
    Boundedness,
    CheckpointConfig,
    ConfigurationError,
    DeliveryGuarantee,
    MetricGroup,
    Source,
    SourceReader,
    SourceReaderContext,
    SplitEnumerator,
    SplitEnumeratorContext,
    VersionedSerializer,
)
from typing_extensions import override

__all__ = ["RabbitMQSource"]

T = TypeVar("T")
"""The type of the records the source emits."""


class RabbitMQSource(Source[T, RabbitMQQueueSplit, EnumeratorState], Generic[T]):
    """Consumes RabbitMQ queues with manual acknowledgements sent when checkpoints complete.

    Example::

        from headwater.connectors.base import JsonFormat
        from headwater.connectors.rabbitmq import (
            RabbitMQConnectionOptions, RabbitMQSource, RabbitMQSourceOptions,
        )

        source = RabbitMQSource(
            RabbitMQSourceOptions(
                connection=RabbitMQConnectionOptions(host="localhost"),
                queues=("orders",),
                delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE,  # every message has a message_id
            ),
            value_format=JsonFormat(),
        )
        env.from_source(source, name="orders").map(...)

    Splits: ``consumers_per_queue`` per queue, spread round-robin over the readers.

    Guarantees (see :class:`RabbitMQSourceOptions`): a message is acknowledged only after the
    checkpoint that covers it completes, so a failure before that makes the broker redeliver it.
    ``AT_LEAST_ONCE`` emits such redeliveries again; ``EXACTLY_ONCE`` drops them by the message's
    id (``message_id``, ``correlation_id`` or ``id_extractor``), which the producer must set,
    unique per message. Both need periodic checkpoints for an unbounded source.

    Args:
        options: where and what to read.
        value_format: decodes bodies (a connector-base format; its error policy handles bad
            bodies). Exclusive with ``message_deserializer``.
        message_deserializer: turns a whole :class:`RabbitMQMessage` (body, properties, headers)
            into a record. With neither, bodies are emitted as ``bytes``.
        id_extractor: the id of a message for exactly-once (instead of the ``id_from`` property).
    """

    def __init__(
        self,
        options: RabbitMQSourceOptions,
        *,
        value_format: Format[T] | None = None,
        message_deserializer: Callable[[RabbitMQMessage], T] | None = None,
        id_extractor: Callable[[RabbitMQMessage], str | None] | None = None,
    ) -> None:
        if not isinstance(options, RabbitMQSourceOptions):
            raise ConfigurationError(
                f"rabbitmq source: expected RabbitMQSourceOptions, got {type(options).__name__}"
            )
        if value_format is not None and message_deserializer is not None:
            raise ConfigurationError(
                "rabbitmq source: set at most one of 'value_format' and 'message_deserializer'"
            )
        self.options = options
        self._value_format = value_format
        self._message_deserializer = message_deserializer
        self._id_extractor = id_extractor

    def __repr__(self) -> str:
        return f"RabbitMQSource({self.options!r})"

    @property
    @override
    def boundedness(self) -> Boundedness:
        return Boundedness.BOUNDED if self.options.bounded else Boundedness.CONTINUOUS_UNBOUNDED

    @override
    def check_checkpointing(self, checkpointing: CheckpointConfig) -> None:
        guarantee = self.options.delivery_guarantee
        if self.options.bounded or guarantee is DeliveryGuarantee.NONE:
            return
        if checkpointing.interval is None:
            raise ConfigurationError(
                f"rabbitmq source: delivery_guarantee {guarantee.name} acknowledges messages when "
                "the checkpoint covering them completes, and this job takes no checkpoints: set "
                "checkpointing=CheckpointConfig(interval=...), or use delivery_guarantee NONE "
                "(acknowledged when emitted, lost on a failure)"
            )

    def splits(self) -> list[RabbitMQQueueSplit]:
        """Every split of the source, in a fixed order."""
        consumers = range(self.options.consumers_per_queue)
        return [RabbitMQQueueSplit(queue, i) for queue in self.options.queues for i in consumers]

    @override
    def create_enumerator(
        self, context: SplitEnumeratorContext[RabbitMQQueueSplit]
    ) -> SplitEnumerator[RabbitMQQueueSplit, EnumeratorState]:
        splits = self.splits()
        return RabbitMQSplitEnumerator(
            context, splits, split_ids=[s.split_id for s in splits], bounded=self.options.bounded
        )

    @override
    def restore_enumerator(
        self, context: SplitEnumeratorContext[RabbitMQQueueSplit], state: EnumeratorState
    ) -> SplitEnumerator[RabbitMQQueueSplit, EnumeratorState]:
        return RabbitMQSplitEnumerator(
            context,
            state.unassigned,
            split_ids=[s.split_id for s in self.splits()],
            bounded=self.options.bounded,
        )

    @override
    def create_reader(self, context: SourceReaderContext) -> SourceReader[T, RabbitMQQueueSplit]:
        return RabbitMQSourceReader(context, self.options, self.emitter)

    def emitter(self, metric_group: MetricGroup) -> RabbitMQRecordEmitter[T]:
        """The emitter of one reader, its format bound to the reader's ``numRecordsInErrors``."""
        fmt = self._value_format
        return RabbitMQRecordEmitter(
            self.options,
            fmt.deserializer(metric_group) if fmt is not None else None,
            self._message_deserializer,
            self._id_extractor,
            metric_group,
        )

    @override
    def split_serializer(self) -> VersionedSerializer[RabbitMQQueueSplit]:
        return SPLIT_SERIALIZER

    @override
    def enumerator_state_serializer(self) -> VersionedSerializer[EnumeratorState]:
        return ENUMERATOR_STATE_SERIALIZER
