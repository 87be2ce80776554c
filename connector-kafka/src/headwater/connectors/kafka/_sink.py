"""KafkaSink: writes records to Kafka with NONE, AT_LEAST_ONCE or EXACTLY_ONCE delivery."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Sequence
from typing import Any, Generic, TypeVar, cast

from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    InvalidProducerEpoch,
    InvalidTxnState,
    KafkaError,
    MessageSizeTooLargeError,
    NoError,
    ProducerFenced,
)
from aiokafka.partitioner import murmur2
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from headwater.connectors.base import (
    DeadLetter,
    ErrorPolicy,
    RecordTooLargeError,
    refuse_record,
)
from headwater.connectors.kafka._errors import translate
from headwater.connectors.kafka._options import KafkaSinkOptions
from headwater.connectors.kafka._records import KafkaRecordSerializer
from headwater.connectors.kafka._transactions import (
    COMMITTABLE_SERIALIZER,
    REGISTRY,
    KafkaCommittable,
    producer_identity,
    resume_commit,
    transactional_id,
)
from headwater.core import (
    CheckpointConfig,
    CommitRequest,
    Committer,
    CommittingSinkWriter,
    ConfigurationError,
    DeliveryGuarantee,
    FatalError,
    JsonSerializer,
    TwoPhaseCommittingSink,
    VersionedSerializer,
    WriterInitContext,
)
from typing_extensions import override

__all__ = ["KafkaSink"]

T = TypeVar("T")
"""The type of the records the sink consumes."""

log = logging.getLogger(__name__)

_NO_HEADERS: list[tuple[str, bytes]] = []
_MAX_REQUEST_SIZE = 1024 * 1024
"""aiokafka's default ``max_request_size``: the largest record the producer sends."""
_RECORD_OVERHEAD = 128
"""More than a record's framing adds to its key and value (the exact size is checked above it)."""
"""The headers of records without any (aiokafka only reads them)."""

_WRITER_STATE_SERIALIZER: VersionedSerializer[int] = JsonSerializer(
    version=1, to_json=lambda n: n, from_json=lambda _v, d: int(d)
)
"""Exactly-once writer state, format 1: the first transaction number not pre-committed."""


class _ProducerWriter(CommittingSinkWriter[T, KafkaCommittable]):
    """Sends records in per-partition batches (``send_batch``), never one ``send`` per record.

    NONE: records are handed to the producer; only the end of input waits for acks.
    AT_LEAST_ONCE: ``flush`` waits until every record sent so far is acknowledged (``acks=all``,
    idempotent producer), so a completed checkpoint implies everything before it is in Kafka.
    """

    def __init__(
        self,
        options: KafkaSinkOptions,
        serializer: KafkaRecordSerializer[T],
        context: WriterInitContext,
        on_record_too_large: ErrorPolicy | None,
    ) -> None:
        self._options = options
        self._serializer = serializer
        self._on_too_large = on_record_too_large
        self._max_request_size = int(options.properties.get("max_request_size", _MAX_REQUEST_SIZE))
        self._values_only = all(
            hook is None
            for hook in (
                serializer.key,
                serializer.headers,
                serializer.timestamp,
                serializer.partitioner,
            )
        )
        self._subtask = context.subtask_index
        self._rotation = context.subtask_index
        self._inflight: list[tuple[asyncio.Future[Any], int, str, int]] = []
        self._producer: AIOKafkaProducer | None = None
        metrics = context.metric_group
        self._records_out = metrics.counter("numRecordsOut")
        self._bytes_out = metrics.counter("numBytesOut")
        self._send_errors = metrics.counter("numRecordsSendErrors")
        self._refused = metrics.counter("numRecordsOutErrors")

    async def _start_producer(self, **extra: Any) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(**self._options.producer_kwargs(), **extra)
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise translate(exc, "starting a producer") from exc
        return producer

    async def _writing_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            self._producer = await self._start_producer()
        return self._producer

    @override
    async def write_batch(self, records: Sequence[T]) -> None:
        self._raise_failures()
        producer = await self._writing_producer()
        try:
            await self._send(producer, records)
        except KafkaError as exc:
            raise translate(exc, "sending records") from exc

    async def _send(self, producer: AIOKafkaProducer, records: Sequence[T]) -> None:
        ser = self._serializer
        if ser.skip is not None:
            skip = ser.skip
            records = [r for r in records if not skip(r)]
        if isinstance(ser.topic, str) and self._values_only:
            await self._send_values(producer, ser.topic, records)
            return
        topic_of = ser.topic
        key_of, value_of, headers_of, ts_of = ser.key, ser.value, ser.headers, ser.timestamp
        partitioner = ser.partitioner
        partitions: dict[str, list[int]] = {}
        sticky: dict[str, int] = {}
        builders: dict[tuple[str, int], Any] = {}
        refused = 0
        for record in records:
            topic = topic_of if isinstance(topic_of, str) else topic_of(record)
            key = key_of(record) if key_of is not None else None
            value = value_of(record) if value_of is not None else cast("bytes", record)
            headers = list(headers_of(record)) if headers_of is not None else []
            timestamp = ts_of(record) if ts_of is not None else None
            known = partitions.get(topic)
            if known is None:
                known = partitions[topic] = sorted(await producer.partitions_for(topic))
            if partitioner is not None:
                partition = partitioner(record, key, len(known))
            elif key is not None:
                partition = known[(murmur2(key) & 0x7FFFFFFF) % len(known)]
            else:  # sticky: one partition per topic until its batch is full (see _send_values)
                partition = sticky.get(topic, -1)
                if partition < 0:
                    partition = sticky[topic] = known[self._rotation % len(known)]
            size = len(value or b"") + len(key or b"")
            if size + _RECORD_OVERHEAD > self._max_request_size and self._too_large(
                key, value, headers, f"topic '{topic}' partition {partition}"
            ):
                refused += 1
                continue
            builder = builders.get((topic, partition))
            if builder is None:
                builder = builders[(topic, partition)] = producer.create_batch()
            while (
                builder.append(key=key, value=value, timestamp=timestamp, headers=headers) is None
            ):
                if not builder.record_count():  # never: an empty batch takes any record
                    raise RecordTooLargeError(
                        f"kafka sink: a record of {size} bytes does not fit in an empty batch"
                    )
                await self._submit(producer, builder, topic, partition)
                del builders[(topic, partition)]
                if partitioner is None and key is None:
                    self._rotation += 1
                    partition = sticky[topic] = known[self._rotation % len(known)]
                builder = builders.get((topic, partition))
                if builder is None:
                    builder = builders[(topic, partition)] = producer.create_batch()
        self._rotation += 1
        for (topic, partition), builder in builders.items():
            await self._submit(producer, builder, topic, partition)
        self._records_out.inc(len(records) - refused)

    async def _send_values(
        self, producer: AIOKafkaProducer, topic: str, records: Sequence[T]
    ) -> None:
        """The common case: one topic, values only, sticky partitioning.

        As Kafka's sticky partitioner does, the records go to one partition until its batch is
        full, then to the next: a full batch handed to the producer is never followed by another
        for the same partition, which would wait until the first one is on its way.
        """
        known = sorted(await producer.partitions_for(topic))
        value_of = self._serializer.value
        values = cast(
            "Sequence[bytes | None]", records if value_of is None else list(map(value_of, records))
        )
        if max(map(len, filter(None, values)), default=0) + _RECORD_OVERHEAD > (
            self._max_request_size
        ):  # one C-level pass per batch; the exact check only when a record may be too large
            where = f"topic '{topic}'"
            values = [v for v in values if not self._too_large(None, v, [], where)]
        partition = known[self._rotation % len(known)]
        builder = producer.create_batch()
        append = builder.append
        for value in values:
            if append(key=None, value=value, timestamp=None, headers=_NO_HEADERS) is None:
                await self._submit(producer, builder, topic, partition)
                self._rotation += 1
                partition = known[self._rotation % len(known)]
                builder = producer.create_batch()
                append = builder.append
                if append(key=None, value=value, timestamp=None, headers=_NO_HEADERS) is None:
                    raise RecordTooLargeError(  # never: an empty batch takes any record
                        f"kafka sink: a record of {len(value or b'')} bytes does not fit in an "
                        "empty batch"
                    )
        await self._submit(producer, builder, topic, partition)
        self._rotation += 1
        self._records_out.inc(len(values))

    def _too_large(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
        where: str,
    ) -> bool:
        """Whether a record is over ``max_request_size``; such a one goes to the error policy.

        The policy (default: fail) raises, or drops the record (counted, maybe dead-lettered).
        """
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers))
        if size <= self._max_request_size:
            return False
        error = RecordTooLargeError(
            f"kafka sink: a record of {size} bytes for {where} exceeds the producer's "
            f"max_request_size of {self._max_request_size} bytes; raise option "
            "properties['max_request_size'] (the broker's 'message.max.bytes' and the topic's "
            "'max.message.bytes' must allow it too) or set on_record_too_large to skip or "
            "dead-letter such records"
        )
        letter = DeadLetter(
            payload=value or b"",
            error=f"RecordTooLargeError: {error}",
            format="kafka sink",
            position=where,
        )
        refuse_record(self._on_too_large, letter, error)
        self._refused.inc()
        return True

    async def _submit(
        self, producer: AIOKafkaProducer, builder: Any, topic: str, partition: int
    ) -> None:
        count = builder.record_count()
        if count:
            self._bytes_out.inc(builder.size())  # the batch as sent: no per-record counting
            future = await producer.send_batch(builder, topic, partition=partition)
            self._inflight.append((future, count, topic, partition))

    def _raise_failures(self) -> None:
        """Drop acknowledged batches; raise the first failed one."""
        pending = []
        for future, count, topic, partition in self._inflight:
            if not future.done():
                pending.append((future, count, topic, partition))
            elif not future.cancelled() and future.exception() is not None:
                self._send_errors.inc(count)
                exc = future.exception()
                assert exc is not None
                if isinstance(exc, MessageSizeTooLargeError):
                    raise RecordTooLargeError(
                        f"kafka sink: the broker refused a batch of {count} records for topic "
                        f"'{topic}' partition {partition} as too large; lower option "
                        f"'max_batch_size' ({self._options.max_batch_size} bytes) below the "
                        "topic's 'max.message.bytes' or raise that"
                    ) from exc
                raise translate(exc, f"delivering records to {topic}-{partition}") from exc
        self._inflight = pending

    async def _wait_acknowledged(self) -> None:
        if self._inflight:
            await asyncio.wait([f for f, *_ in self._inflight])
        self._raise_failures()

    @override
    async def flush(self, end_of_input: bool) -> None:
        if end_of_input or self._options.delivery_guarantee is not DeliveryGuarantee.NONE:
            await self._wait_acknowledged()
        else:
            self._raise_failures()

    @override
    async def prepare_commit(self) -> list[KafkaCommittable]:
        """Nothing to pre-commit without transactions."""
        return []

    @override
    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


class _Transaction:
    """A producer with its own transactional id, and when its transaction got its first record."""

    __slots__ = ("number", "producer", "started")

    def __init__(self, number: int, producer: AIOKafkaProducer) -> None:
        self.number = number
        self.producer = producer
        self.started: float | None = None


class _TransactionalWriter(_ProducerWriter[T]):
    """EXACTLY_ONCE: each checkpoint's records go into one transaction of their own id.

    ``prepare_commit`` flushes and hands over ``(transactional id, producer id, epoch)``; the
    producer stays in :data:`REGISTRY` with its transaction open until the committer commits it.
    The next transaction's producer is started in the background meanwhile. On first use the
    writer aborts transactions that a failed attempt left open (see :mod:`._transactions`).
    """

    def __init__(
        self,
        options: KafkaSinkOptions,
        serializer: KafkaRecordSerializer[T],
        context: WriterInitContext,
        floor: int,
        on_record_too_large: ErrorPolicy | None,
    ) -> None:
        super().__init__(options, serializer, context, on_record_too_large)
        assert options.transactional_id_prefix is not None
        self._prefix = options.transactional_id_prefix
        self._floor = floor
        self._next_number = floor
        self._current: _Transaction | None = None
        self._standby: asyncio.Task[_Transaction] | None = None
        self._lingering_aborted = False
        self._timeout_ms = int(options.transaction_timeout.total_seconds() * 1000)

    def _id(self, number: int) -> str:
        return transactional_id(self._prefix, self._subtask, number)

    async def _open(self, number: int) -> _Transaction:
        stale = REGISTRY.pop(self._id(number), None)  # an earlier attempt's, now fenced
        if stale is not None:
            await stale.stop()
        producer = await self._start_producer(
            transactional_id=self._id(number), transaction_timeout_ms=self._timeout_ms
        )
        return _Transaction(number, producer)

    async def _abort_lingering(self) -> _Transaction:
        """Initialize ids from the floor up, aborting open transactions, until one is unused."""
        while True:
            number = self._next_number
            self._next_number += 1
            txn = await self._open(number)
            if producer_identity(txn.producer)[1] == 0:
                return txn
            log.info("kafka sink: aborted lingering transaction %s", self._id(number))
            await txn.producer.stop()

    async def _take(self) -> _Transaction:
        if not self._lingering_aborted:
            txn = await self._abort_lingering()
            self._lingering_aborted = True
        elif self._standby is not None:
            txn = await self._standby
        else:
            txn = await self._open(self._next_number)
            self._next_number += 1
        self._standby = asyncio.get_running_loop().create_task(self._open(self._next_number))
        self._next_number += 1
        await txn.producer.begin_transaction()
        return txn

    @override
    async def _writing_producer(self) -> AIOKafkaProducer:
        if self._current is None:
            self._current = await self._take()
        if self._current.started is None:
            self._current.started = time.monotonic()
        return self._current.producer

    @override
    async def prepare_commit(self) -> list[KafkaCommittable]:
        txn = self._current
        if txn is None or txn.started is None:
            return []
        await self._wait_acknowledged()
        open_for = time.monotonic() - txn.started
        if open_for * 1000 >= self._timeout_ms:
            raise FatalError(
                f"kafka sink: transaction {self._id(txn.number)} was open for {open_for:.0f} s, "
                f"longer than option 'transaction_timeout' ({self._options.transaction_timeout}); "
                f"the broker has aborted it: raise transaction_timeout"
            )
        producer_id, epoch = producer_identity(txn.producer)
        committable = KafkaCommittable(self._id(txn.number), producer_id, epoch)
        REGISTRY[committable.transactional_id] = txn.producer
        self._current = None
        self._floor = txn.number + 1
        return [committable]

    @override
    def snapshot_state(self, checkpoint_id: int) -> list[Any]:
        return [self._floor]

    @override
    async def close(self) -> None:
        """Abort the open (not pre-committed) transaction; prepared ones stay for the committer."""
        standby, self._standby = self._standby, None
        if standby is not None:
            standby.cancel()
            with contextlib.suppress(BaseException):
                await (await standby).producer.stop()
        txn, self._current = self._current, None
        if txn is not None:
            with contextlib.suppress(KafkaError, OSError):
                if txn.started is not None:
                    await txn.producer.abort_transaction()
            await txn.producer.stop()


class _TransactionCommitter(Committer[KafkaCommittable]):
    """Commits pre-committed transactions, idempotently.

    Through their producer when it lives in this process, else by resuming them with their
    producer id and epoch.
    """

    def __init__(self, options: KafkaSinkOptions) -> None:
        self._options = options
        self._client: AIOKafkaClient | None = None

    @override
    async def commit(self, requests: Sequence[CommitRequest[KafkaCommittable]]) -> None:
        await asyncio.gather(*(self._commit(request) for request in requests))

    async def _commit(self, request: CommitRequest[KafkaCommittable]) -> None:
        committable = request.committable
        producer = REGISTRY.pop(committable.transactional_id, None)
        try:
            if producer is not None and producer_identity(producer) == (
                committable.producer_id,
                committable.epoch,
            ):
                await producer.commit_transaction()
                await producer.stop()
                return
            outcome = await resume_commit(await self._resume_client(), committable)
        except (ProducerFenced, InvalidProducerEpoch, InvalidTxnState) as exc:
            request.signal_failed_with_known_reason(self._lost(committable, exc))
            return
        except (KafkaError, OSError) as exc:
            if producer is not None:
                REGISTRY[committable.transactional_id] = producer
            if isinstance(exc, KafkaError) and not exc.retriable:
                request.signal_failed_with_unknown_reason(translate(exc, "committing"))
            else:
                request.retry_later()
            return
        if outcome is NoError:
            return
        if outcome in (ProducerFenced, InvalidProducerEpoch, InvalidTxnState):
            request.signal_failed_with_known_reason(self._lost(committable, outcome()))
        elif outcome.retriable:
            request.retry_later()
        else:
            request.signal_failed_with_unknown_reason(translate(outcome(), "committing"))

    def _lost(self, committable: KafkaCommittable, exc: BaseException) -> FatalError:
        return FatalError(
            f"kafka sink: transaction {committable.transactional_id} of a completed checkpoint "
            f"can no longer be committed ({type(exc).__name__}): it was aborted, because it was "
            f"open longer than option 'transaction_timeout' ({self._options.transaction_timeout}) "
            f"(raise it above the longest recovery) or because another producer uses its "
            f"transactional id (use a transactional_id_prefix unique per job). Its records are lost."
        )

    async def _resume_client(self) -> AIOKafkaClient:
        if self._client is None:
            accepted = inspect.signature(AIOKafkaClient).parameters
            kwargs = {k: v for k, v in self._options.client_kwargs().items() if k in accepted}
            client = AIOKafkaClient(**kwargs)
            await client.bootstrap()
            self._client = client
        return self._client

    @override
    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


class _NoopCommitter(Committer[KafkaCommittable]):
    """The committer of the modes without transactions: there is never anything to commit."""

    @override
    async def commit(self, requests: Sequence[CommitRequest[KafkaCommittable]]) -> None:
        """Nothing to do."""


class KafkaSink(TwoPhaseCommittingSink[T, KafkaCommittable], Generic[T]):
    """Writes records to Kafka topics.

    Example::

        from headwater.connectors.kafka import KafkaRecordSerializer, KafkaSink, KafkaSinkOptions

        sink = KafkaSink(
            KafkaSinkOptions(bootstrap_servers="localhost:9092",
                             delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE,
                             transactional_id_prefix="orders-enricher"),
            KafkaRecordSerializer(topic="orders-enriched", key=lambda o: o.id.encode(),
                                  value=lambda o: o.to_json()),
        )
        stream.sink_to(sink)

    Guarantees per ``delivery_guarantee``:

    - ``NONE``: records are sent without waiting at checkpoints; they may be lost or duplicated
      when the job fails.
    - ``AT_LEAST_ONCE``: each checkpoint waits until Kafka acknowledged every record sent so far
      (``acks=all``, idempotent producer). After a failure the records since the last checkpoint
      are written again: duplicates, never loss.
    - ``EXACTLY_ONCE``: records go into Kafka transactions committed when their checkpoint
      completes; ``read_committed`` consumers see each record once. Needs checkpointing, a
      ``transactional_id_prefix`` unique per job, and a ``transaction_timeout`` above the checkpoint
      interval plus checkpoint timeout *and* the longest recovery: a transaction that the broker
      times out before the restarted job commits it is lost (the job then fails, naming it).
      Records become visible one checkpoint late; a ``read_uncommitted`` consumer sees aborted ones.

    A record that does not fit in a producer batch (``max_batch_size``) goes to
    ``on_record_too_large``: by default the job fails with :class:`RecordTooLargeError` naming
    the record's size, the limit, the topic and partition and the option to raise;
    :class:`SkipOnError` drops it and :class:`DeadLetterOnError` hands it over as a
    :class:`DeadLetter` (position ``"topic-partition"``), both counted in ``numRecordsOutErrors``.

    Args:
        options: where and how to write (:class:`KafkaSinkOptions`).
        serializer: topic, key, value, headers, timestamp and partition of each record.
        on_record_too_large: the error policy for records over the batch limit (default: fail).
    """

    def __init__(
        self,
        options: KafkaSinkOptions,
        serializer: KafkaRecordSerializer[T],
        *,
        on_record_too_large: ErrorPolicy | None = None,
    ) -> None:
        if not isinstance(options, KafkaSinkOptions):
            raise ConfigurationError(
                f"kafka sink: expected KafkaSinkOptions, got {type(options).__name__}"
            )
        if not isinstance(serializer, KafkaRecordSerializer):
            raise ConfigurationError(
                f"kafka sink: expected a KafkaRecordSerializer, got {type(serializer).__name__}"
            )
        self.options = options
        self._serializer = serializer
        self.on_record_too_large = on_record_too_large

    def __repr__(self) -> str:
        return f"KafkaSink({self.options!r})"

    @property
    @override
    def delivery_guarantee(self) -> DeliveryGuarantee:
        return self.options.delivery_guarantee

    def check_checkpointing(self, checkpointing: CheckpointConfig) -> None:
        """Refuse checkpoint settings that the transaction timeout cannot cover.

        Raises:
            ConfigurationError: naming ``transaction_timeout`` and the value to exceed.
        """
        self.options.check_checkpointing(checkpointing.interval, checkpointing.timeout)

    @override
    def create_writer(
        self, context: WriterInitContext
    ) -> CommittingSinkWriter[T, KafkaCommittable]:
        return self._writer(context, 0)

    @override
    def restore_writer(
        self, context: WriterInitContext, states: list[Any]
    ) -> CommittingSinkWriter[T, KafkaCommittable]:
        return self._writer(context, max((int(s) for s in states), default=0))

    def _writer(
        self, context: WriterInitContext, floor: int
    ) -> CommittingSinkWriter[T, KafkaCommittable]:
        if self.options.delivery_guarantee is DeliveryGuarantee.EXACTLY_ONCE:
            return _TransactionalWriter(
                self.options, self._serializer, context, floor, self.on_record_too_large
            )
        return _ProducerWriter(self.options, self._serializer, context, self.on_record_too_large)

    @override
    def writer_state_serializer(self) -> VersionedSerializer[Any] | None:
        return _WRITER_STATE_SERIALIZER

    @override
    def create_committer(self, context: WriterInitContext) -> Committer[KafkaCommittable]:
        if self.options.delivery_guarantee is DeliveryGuarantee.EXACTLY_ONCE:
            return _TransactionCommitter(self.options)
        return _NoopCommitter()

    @override
    def committable_serializer(self) -> VersionedSerializer[KafkaCommittable]:
        return COMMITTABLE_SERIALIZER
