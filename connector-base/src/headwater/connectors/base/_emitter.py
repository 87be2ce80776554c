"""The decoding record emitter: a format, a record deserializer or raw bytes, one loop for every source.

A message-queue source (Kafka, Kinesis, DynamoDB Streams, RabbitMQ, ...) fetches client messages
and emits records decoded from them. What differs per connector is only how to read a message:
its payload, its timestamp, where it was read (for errors and dead letters), the connector's own
record type for a ``record_deserializer``, and the split position after it. Those are the hooks
of :class:`DecodingRecordEmitter`; the base owns the decoding loop, the error handling (a
format's error policy for bad payloads; a record deserializer that raises fails the job with a
:class:`SerializationError` naming the position, counted in ``numRecordsInErrors``) and the
batched ``collect_batch`` with the records' timestamps.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, cast

from headwater.connectors.base._formats import Deserializer
from headwater.connectors.base._reader import RecordEmitter
from headwater.core import Counter, ReaderOutput, SerializationError

__all__ = ["DecodingRecordEmitter"]

E = TypeVar("E")
"""The element type the split reader fetches (a client library's message)."""
R = TypeVar("R")
"""The connector's record type handed to a record deserializer (e.g. ``KafkaRecord``)."""
T = TypeVar("T")
"""The record type the source emits."""
StateT = TypeVar("StateT")
"""The mutable per-split state."""


class DecodingRecordEmitter(RecordEmitter[E, T, StateT], Generic[E, R, T, StateT]):
    """Decodes a batch of one split's elements in one of three ways, then advances the split.

    - ``record_deserializer`` (sees the connector's record, from :meth:`to_record`): every
      element through it; the first that raises fails the job with :class:`SerializationError`
      ``"<name>: cannot deserialize the record at <position>: ..."`` (counted in ``errors``);
    - ``deserializer`` (a connector-base format bound to the reader's metrics): the payloads of
      :meth:`payloads` (``None`` payloads, e.g. Kafka tombstones, are skipped); bad ones go to
      the format's error policy;
    - neither: the payloads as they are (``bytes``; ``None`` payloads skipped).

    Records are collected with :meth:`timestamps` in one ``collect_batch`` per fetch. A subclass
    implements :meth:`payloads`, :meth:`timestamps`, :meth:`position`, :meth:`advance`, and
    :meth:`to_record` if it accepts a record deserializer; :meth:`prepare` may drop or expand
    elements first (de-duplication, de-aggregation).

    Args:
        name: the source, as errors name it (``"kafka source"``).
        deserializer: a format bound to the reader's metrics, or ``None``.
        record_deserializer: turns the connector's record into the emitted value, or ``None``
            (at most one of the two).
        errors: the reader's ``numRecordsInErrors`` counter (record deserializer failures).
    """

    def __init__(
        self,
        name: str,
        *,
        deserializer: Deserializer[T] | None,
        record_deserializer: Callable[[R], T] | None,
        errors: Counter,
    ) -> None:
        if deserializer is not None and record_deserializer is not None:
            raise ValueError(f"{name}: give a format or a record deserializer, not both")
        self.name = name
        self._deserializer = deserializer
        self._record_deserializer = record_deserializer
        self._errors = errors

    # -- hooks -----------------------------------------------------------------------------
    @abstractmethod
    def payloads(self, elements: Sequence[E]) -> list[bytes | None]:
        """The payload of each element (``None`` for an element without one: skipped)."""

    @abstractmethod
    def timestamps(self, elements: Sequence[E]) -> list[int | None]:
        """The event timestamp (epoch ms) of each element, or ``None``."""

    @abstractmethod
    def position(self, element: E, split_state: StateT) -> str:
        """Where ``element`` was read, for errors and dead letters (``topic-0@42``)."""

    @abstractmethod
    def advance(self, elements: Sequence[E], split_state: StateT) -> None:
        """Move ``split_state`` past ``elements`` (the batch as fetched, before :meth:`prepare`)."""

    def to_record(self, element: E, split_state: StateT) -> R:
        """The connector's record for ``element`` (what a record deserializer sees)."""
        raise NotImplementedError(f"{self.name}: this source takes no record deserializer")

    def prepare(self, elements: Sequence[E], split_state: StateT) -> Sequence[E]:
        """The elements to decode (override to de-duplicate or de-aggregate); all by default."""
        return elements

    # -- RecordEmitter ---------------------------------------------------------------------
    def emit_record(self, element: E, output: ReaderOutput[T], split_state: StateT) -> None:
        """Emit one element (as a batch of one)."""
        self.emit_batch([element], output, split_state)

    def emit_batch(
        self, elements: Sequence[E], output: ReaderOutput[T], split_state: StateT
    ) -> None:
        """Decode the elements, collect them with their timestamps, then advance the split."""
        chosen = self.prepare(elements, split_state)
        if chosen:
            if self._record_deserializer is not None:
                values = self._deserialize_records(chosen, self._record_deserializer, split_state)
                output.collect_batch(values, self.timestamps(chosen))
            else:
                self._decode(chosen, output, split_state)
        self.advance(elements, split_state)

    def _deserialize_records(
        self, elements: Sequence[E], deserialize: Callable[[R], T], split_state: StateT
    ) -> list[T]:
        values: list[T] = []
        to_record = self.to_record
        for element in elements:
            try:
                values.append(deserialize(to_record(element, split_state)))
            except Exception as exc:
                self._errors.inc()
                raise SerializationError(
                    f"{self.name}: cannot deserialize the record at "
                    f"{self.position(element, split_state)}: {type(exc).__name__}: {exc}"
                ) from exc
        return values

    def _decode(self, elements: Sequence[E], output: ReaderOutput[T], split_state: StateT) -> None:
        payloads = self.payloads(elements)
        timestamps = self.timestamps(elements)
        if None in payloads:
            keep = [i for i, p in enumerate(payloads) if p is not None]
            elements = [elements[i] for i in keep]
            payloads = [payloads[i] for i in keep]
            timestamps = [timestamps[i] for i in keep]
            if not elements:
                return
        present = cast("list[bytes]", payloads)
        if self._deserializer is None:  # T is bytes: the payloads as they are
            output.collect_batch(cast("list[T]", present), timestamps)
            return
        values, kept = self._deserializer.deserialize_timestamped(
            present, timestamps, position=lambda i: self.position(elements[i], split_state)
        )
        output.collect_batch(values, kept)
