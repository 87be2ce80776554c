"""The source reader of the RabbitMQ source: acknowledgements on checkpoint, deduplication by id.

- :class:`AckLedger` (the mutable state of one split): what was emitted and not acknowledged,
  cut into *chunks* by checkpoint and connection. A chunk holds the last delivery tag it covers
  and, under exactly-once, the ids of its messages. ``known`` maps every id not yet safely
  acknowledged to its chunk; a delivery whose id is known is a repeat and is dropped.
- :class:`RabbitMQRecordEmitter`: drops repeats, decodes the rest, advances the ledger.
- :class:`RabbitMQSourceReader`: seals the current chunks into checkpoint ``n`` at its snapshot
  and acknowledges them (one ``basic.ack(multiple)`` per split) when ``n`` completes.

Why the ids: an acknowledgement may be lost (the process dies after the checkpoint completed but
before the broker got the ack, or the connection drops). The broker then redelivers messages whose
effects are already in the checkpoint. Their ids are in the checkpointed split
(``unacked_ids``), so the restored reader recognises and drops them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar, cast

from headwater.connectors.base import (
    Deserializer,
    RecordEmitter,
    SourceReaderBase,
    SplitFetcherManager,
)
from headwater.connectors.rabbitmq._consumer import Delivery, RabbitMQSplitReader
from headwater.connectors.rabbitmq._options import RabbitMQSourceOptions
from headwater.connectors.rabbitmq._records import RabbitMQMessage
from headwater.connectors.rabbitmq._split import RabbitMQQueueSplit
from headwater.core import (
    Counter,
    DeliveryGuarantee,
    InputStatus,
    MetricGroup,
    ReaderOutput,
    SerializationError,
    SourceReaderContext,
)
from typing_extensions import override

__all__ = ["AckLedger", "RabbitMQRecordEmitter", "RabbitMQSourceReader", "to_message"]

T = TypeVar("T")
"""The type of the records the source emits."""

_ORPHAN = -1
"""The chunk number of ids whose acknowledgement was lost: kept until redelivered or expired."""


def to_message(queue: str, delivery: Delivery) -> RabbitMQMessage:
    """The typed message of a delivery."""
    method, props = delivery.method, delivery.properties
    return RabbitMQMessage(
        queue=queue,
        body=delivery.body,
        routing_key=method.routing_key or "",
        exchange=method.exchange or "",
        redelivered=bool(method.redelivered),
        message_id=props.message_id,
        correlation_id=props.correlation_id,
        content_type=props.content_type,
        timestamp=props.timestamp,
        headers=dict(props.headers or {}),
    )


@dataclasses.dataclass(slots=True)
class _Chunk:
    """Consecutive deliveries of one connection, all in the same checkpoint (``None``: not yet)."""

    number: int
    epoch: int
    last_tag: int = 0
    ids: list[str] = dataclasses.field(default_factory=list)
    checkpoint: int | None = None


class AckLedger:
    """The unacknowledged deliveries of one split, for acks on checkpoint and deduplication."""

    __slots__ = ("_next", "chunks", "known", "orphans", "retention", "split")

    def __init__(self, split: RabbitMQQueueSplit, retention: float) -> None:
        self.split = split
        self.retention = retention
        self.known: dict[str, int] = {}
        """Every id not safely acknowledged -> the number of the chunk holding it (or orphan)."""
        self.chunks: list[_Chunk] = []
        self.orphans: list[tuple[float, list[str]]] = []
        """(expiry on the monotonic clock, ids) of ids whose acknowledgement was lost."""
        self._next = 0
        self.orphan(list(split.unacked_ids))

    def current(self, epoch: int) -> _Chunk:
        """The open chunk for deliveries of connection ``epoch`` (a new one if the epoch changed)."""
        chunks = self.chunks
        if chunks and chunks[-1].checkpoint is None and chunks[-1].epoch == epoch:
            return chunks[-1]
        self._next += 1
        chunk = _Chunk(self._next, epoch)
        chunks.append(chunk)
        return chunk

    def seal(self, checkpoint_id: int) -> None:
        """The open chunks belong to checkpoint ``checkpoint_id``."""
        for chunk in reversed(self.chunks):
            if chunk.checkpoint is not None:
                break
            chunk.checkpoint = checkpoint_id

    def completed(self, checkpoint_id: int) -> list[_Chunk]:
        """Remove and return the chunks of checkpoints up to ``checkpoint_id``, oldest first."""
        done = [
            c for c in self.chunks if c.checkpoint is not None and c.checkpoint <= checkpoint_id
        ]
        if done:
            self.chunks = [c for c in self.chunks if c not in done]
        return done

    def acknowledged(self, chunk: _Chunk) -> None:
        """The chunk's ack reached a live channel: its ids are no longer needed."""
        known = self.known
        number = chunk.number
        for message_id in chunk.ids:
            if known.get(message_id) == number:
                del known[message_id]

    def orphan(self, ids: list[str]) -> None:
        """These ids' acknowledgement was lost: keep them until redelivered or expired."""
        if not ids:
            return
        known = self.known
        for message_id in ids:
            known[message_id] = _ORPHAN
        self.orphans.append((time.monotonic() + self.retention, ids))

    def expire(self) -> None:
        """Forget orphans older than the retention."""
        now = time.monotonic()
        while self.orphans and self.orphans[0][0] <= now:
            _, ids = self.orphans.pop(0)
            for message_id in ids:
                if self.known.get(message_id) == _ORPHAN:
                    del self.known[message_id]

    def snapshot(self) -> RabbitMQQueueSplit:
        """The split with every id whose acknowledgement may not have reached the broker."""
        return dataclasses.replace(self.split, unacked_ids=tuple(self.known))


class RabbitMQRecordEmitter(RecordEmitter[Delivery, T, AckLedger], Generic[T]):
    """Drops repeats (exactly-once), decodes the rest, and records the deliveries in the ledger.

    At most one of ``deserializer`` (a connector-base format bound to the reader's metrics: its
    error policy handles bad bodies) and ``message_deserializer`` (sees a whole
    :class:`RabbitMQMessage`); with neither, bodies are emitted as ``bytes``. Event timestamps
    come from ``timestamp_header`` (epoch ms) or the ``timestamp`` property (s).
    """

    def __init__(
        self,
        options: RabbitMQSourceOptions,
        deserializer: Deserializer[T] | None,
        message_deserializer: Callable[[RabbitMQMessage], T] | None,
        id_extractor: Callable[[RabbitMQMessage], str | None] | None,
        metrics: MetricGroup,
    ) -> None:
        self._deserializer = deserializer
        self._message_deserializer = message_deserializer
        self._id_extractor = id_extractor
        self._exactly_once = options.delivery_guarantee is DeliveryGuarantee.EXACTLY_ONCE
        self._id_property = options.id_from
        self._header = options.timestamp_header
        self._errors = metrics.counter("numRecordsInErrors")
        self._duplicates = metrics.counter("numRecordsInDuplicates")

    @override
    def emit_record(
        self, element: Delivery, output: ReaderOutput[T], split_state: AckLedger
    ) -> None:
        self.emit_batch([element], output, split_state)

    @override
    def emit_batch(
        self, elements: Sequence[Delivery], output: ReaderOutput[T], split_state: AckLedger
    ) -> None:
        chunk = split_state.current(elements[0].epoch)
        if elements[-1].epoch != chunk.epoch:  # a fetch never spans connections; be safe anyway
            for element in elements:
                self.emit_batch([element], output, split_state)
            return
        fresh = (
            self._deduplicate(elements, split_state, chunk.number, chunk.ids)
            if self._exactly_once
            else elements
        )
        chunk.last_tag = elements[-1].method.delivery_tag
        if fresh:
            self._emit(fresh, output, split_state.split.queue)

    def _deduplicate(
        self, elements: Sequence[Delivery], ledger: AckLedger, number: int, ids: list[str]
    ) -> list[Delivery]:
        """The deliveries whose id is new; every id joins the chunk (its ack covers repeats too)."""
        known = ledger.known
        fresh = []
        for delivery in elements:
            message_id = self._message_id(delivery, ledger.split.queue)
            if message_id in known:
                self._duplicates.inc()
            else:
                fresh.append(delivery)
            known[message_id] = number
            ids.append(message_id)
        return fresh

    def _message_id(self, delivery: Delivery, queue: str) -> str:
        if self._id_extractor is not None:
            message_id = self._id_extractor(to_message(queue, delivery))
        elif self._id_property == "message_id":
            message_id = delivery.properties.message_id
        else:
            message_id = delivery.properties.correlation_id
        if not message_id:
            self._errors.inc()
            raise SerializationError(
                f"rabbitmq source: the message at queue {queue!r} delivery tag "
                f"{delivery.method.delivery_tag} has no {self._id_property if self._id_extractor is None else 'id'}"
                " (delivery_guarantee EXACTLY_ONCE needs one on every message; see id_from)"
            )
        return str(message_id)

    def _timestamps(self, elements: Sequence[Delivery]) -> list[int | None]:
        header = self._header
        if header is not None:
            return [_header_ms((d.properties.headers or {}).get(header)) for d in elements]
        return [
            None if d.properties.timestamp is None else int(d.properties.timestamp) * 1000
            for d in elements
        ]

    def _emit(self, elements: Sequence[Delivery], output: ReaderOutput[T], queue: str) -> None:
        timestamps = self._timestamps(elements)
        if self._message_deserializer is not None:
            values = []
            deserialize = self._message_deserializer
            for d in elements:
                try:
                    values.append(deserialize(to_message(queue, d)))
                except Exception as exc:
                    self._errors.inc()
                    raise SerializationError(
                        f"rabbitmq source: cannot deserialize the message at queue {queue!r} "
                        f"delivery tag {d.method.delivery_tag}: {type(exc).__name__}: {exc}"
                    ) from exc
            output.collect_batch(values, timestamps)
        elif self._deserializer is None:  # T is bytes
            output.collect_batch(cast("list[T]", [d.body for d in elements]), timestamps)
        else:
            decoded, kept = self._deserializer.deserialize_timestamped(
                [d.body for d in elements],
                timestamps,
                position=lambda i: (
                    f"queue {queue!r} delivery tag {elements[i].method.delivery_tag}"
                ),
            )
            output.collect_batch(decoded, kept)


def _header_ms(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class RabbitMQSourceReader(SourceReaderBase[Delivery, T, RabbitMQQueueSplit, AckLedger]):
    """Reads the splits of one subtask; acknowledges when the checkpoint covering them completes.

    Contracts: ``snapshot_state`` seals every split's open chunk into the checkpoint and returns
    the splits with the ids not yet acknowledged; ``notify_checkpoint_complete(n)`` sends one
    ``basic.ack(multiple=True)`` per split for the chunks of checkpoints up to ``n``. A chunk of an
    older connection cannot be acknowledged: its ids become orphans, kept (and checkpointed) until
    the redelivery is seen or ``dedup_retention`` has passed. Under ``NONE`` every poll
    acknowledges what it emitted.

    Metrics: the base's FLIP-33 set, ``numRecordsInDuplicates`` (repeats dropped),
    ``pendingAcknowledgements`` (chunks awaiting their checkpoint) and ``lostAcknowledgements``.
    """

    def __init__(
        self,
        context: SourceReaderContext,
        options: RabbitMQSourceOptions,
        make_emitter: Callable[[MetricGroup], RabbitMQRecordEmitter[T]],
    ) -> None:
        self._split_reader = RabbitMQSplitReader(options)
        metrics = context.metric_group
        super().__init__(
            context, SplitFetcherManager(lambda: self._split_reader), make_emitter(metrics)
        )
        self._options = options
        self._retention = options.dedup_retention.total_seconds()
        self._ack_on_poll = options.delivery_guarantee is DeliveryGuarantee.NONE
        self._ledgers: dict[str, AckLedger] = {}
        self._finished: dict[str, AckLedger] = {}
        self._lost: Counter = metrics.counter("lostAcknowledgements")
        metrics.gauge("pendingAcknowledgements", self._pending_chunks)

    @override
    def initialized_state(self, split: RabbitMQQueueSplit) -> AckLedger:
        ledger = AckLedger(split, self._retention)
        self._ledgers[split.split_id] = ledger
        return ledger

    @override
    def to_split(self, split_id: str, state: AckLedger) -> RabbitMQQueueSplit:
        return state.snapshot()

    @override
    def on_split_finished(self, finished: Mapping[str, AckLedger]) -> None:
        # A drained split still owes acknowledgements: keep its ledger until they are sent.
        for split_id in finished:
            self._finished[split_id] = self._ledgers.pop(split_id)

    @override
    def poll_next(self, output: ReaderOutput[T]) -> InputStatus:
        status = super().poll_next(output)
        if self._ack_on_poll:
            for ledger in (*self._ledgers.values(), *self._finished.values()):
                if ledger.chunks:
                    ledger.seal(0)
                    self._acknowledge(ledger, 0)
        return status

    @override
    def snapshot_state(self, checkpoint_id: int) -> list[RabbitMQQueueSplit]:
        # A drained split whose acknowledgements are not sent yet stays in the checkpoint: after a
        # restore it is drained again, dropping the redeliveries of its ids.
        splits = super().snapshot_state(checkpoint_id)
        splits += [ledger.snapshot() for ledger in self._finished.values()]
        for ledger in (*self._ledgers.values(), *self._finished.values()):
            ledger.seal(checkpoint_id)
        return splits

    @override
    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        for ledger in (*self._ledgers.values(), *self._finished.values()):
            self._acknowledge(ledger, checkpoint_id)
            ledger.expire()
        done = [split_id for split_id, ledger in self._finished.items() if not ledger.chunks]
        for split_id in done:
            del self._finished[split_id]
        self._split_reader.forget(done)

    def _acknowledge(self, ledger: AckLedger, checkpoint_id: int) -> None:
        chunks = ledger.completed(checkpoint_id)
        if not chunks:
            return
        split_id = ledger.split.split_id
        live = self._split_reader.epoch
        last = max((c.last_tag for c in chunks if c.epoch == live), default=0)
        acked = last > 0 and self._split_reader.acknowledge(split_id, live, last)
        for chunk in chunks:
            if acked and chunk.epoch == live:
                ledger.acknowledged(chunk)
            else:
                self._lost.inc()
                ledger.orphan(chunk.ids)

    def _pending_chunks(self) -> int:
        return sum(
            len(ledger.chunks) for ledger in (*self._ledgers.values(), *self._finished.values())
        )

    @override
    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await self._split_reader.aclose()
