"""The source reader of the Kafka source, on connector-base's reader base.

Three roles, as in Flink's Kafka source:

- :class:`KafkaPartitionSplitReader` (a ``SplitReader``): one consumer with ``assign()`` for every
  partition of the subtask; a ``fetch`` is one ``getmany``. It drops records at or past a split's
  stopping offset and reports a bounded split finished once the consumer's position reaches its
  stopping offset (so transaction markers after the last record cannot keep a split open).
- :class:`KafkaRecordEmitter` (a ``RecordEmitter``): decodes the records of one partition and
  advances the split's position to the offset after the last one, together.
- :class:`KafkaSourceReader` (a ``SourceReaderBase``): split state, offsets committed to the
  consumer group when a checkpoint completes, and the Kafka metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Generic, TypeAlias, TypeVar, cast

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from headwater.connectors.base import (
    Deserializer,
    RecordEmitter,
    RecordsBySplit,
    SourceReaderBase,
    SplitFetcherManager,
    SplitReader,
)
from headwater.connectors.kafka._errors import translate
from headwater.connectors.kafka._options import KafkaSourceOptions
from headwater.connectors.kafka._records import KafkaRecord
from headwater.connectors.kafka._split import KafkaPartitionSplit
from headwater.core import (
    Counter,
    MetricGroup,
    ReaderOutput,
    SerializationError,
    SourceReaderContext,
)
from typing_extensions import override

__all__ = ["KafkaPartitionSplitReader", "KafkaRecordEmitter", "KafkaSourceReader"]

T = TypeVar("T")
"""The type of the records the source emits."""

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"
"""What the split reader fetches: aiokafka's records."""

log = logging.getLogger(__name__)


def to_kafka_record(r: Record) -> KafkaRecord:
    """The :class:`KafkaRecord` of an aiokafka record."""
    return KafkaRecord(
        topic=r.topic,
        partition=r.partition,
        offset=r.offset,
        timestamp=r.timestamp,
        key=r.key,
        value=r.value,
        headers=tuple(r.headers),
    )


@dataclasses.dataclass(slots=True)
class KafkaSplitState:
    """The mutable position of one split: ``next_offset`` is the first offset not yet emitted."""

    split: KafkaPartitionSplit
    next_offset: int

    def snapshot(self) -> KafkaPartitionSplit:
        """The split at its current position (for checkpoints)."""
        return dataclasses.replace(self.split, starting_offset=self.next_offset)


class KafkaPartitionSplitReader(SplitReader[Record, KafkaPartitionSplit]):
    """Fetches the partitions of one subtask with one consumer (``assign()``, no auto-commit).

    The consumer starts at the first ``fetch``; ``fetch`` returns at once when records are
    buffered, else waits up to ``fetch_timeout`` or until ``wake_up``. Errors are translated into
    headwater's tree (retryable or fatal) and fail the task at the reader's next poll.
    """

    def __init__(self, options: KafkaSourceOptions) -> None:
        self._options = options
        self._timeout_ms = int(options.fetch_timeout.total_seconds() * 1000)
        self.consumer: AIOKafkaConsumer | None = None
        """The consumer, once started (the reader commits offsets and reads high watermarks)."""
        self._added: list[KafkaPartitionSplit] = []
        self._done: set[str] = set()
        self._stopping: dict[TopicPartition, int] = {}
        self._ids: dict[TopicPartition, str] = {}
        self._paused: set[str] = set()
        self._pause_changed = False
        self._wake: asyncio.Future[None] | None = None

    @override
    def handle_splits_changes(self, added: Sequence[KafkaPartitionSplit]) -> None:
        self._added.extend(added)

    @override
    def pause_or_resume_splits(self, to_pause: Collection[str], to_resume: Collection[str]) -> None:
        self._paused = (self._paused | set(to_pause)) - set(to_resume)
        self._pause_changed = True

    @override
    def wake_up(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    @override
    def close(self) -> None:
        """Nothing here: the consumer is stopped by :meth:`aclose` (it needs the loop)."""

    async def aclose(self) -> None:
        """Stop the consumer."""
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            await consumer.stop()

    async def _started(self) -> AIOKafkaConsumer:
        if self.consumer is None:
            consumer = AIOKafkaConsumer(
                group_id=self._options.group_id,
                enable_auto_commit=False,
                isolation_level=self._options.isolation_level,
                auto_offset_reset="earliest",
                **self._options.client_kwargs(),
            )
            try:
                await consumer.start()
            except (KafkaError, OSError) as exc:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                raise translate(exc, "connecting the source reader") from exc
            self.consumer = consumer
        return self.consumer

    async def _assign(self, consumer: AIOKafkaConsumer, finished: list[str]) -> None:
        """Assign added splits (partitions kept keep their fetch position); drop finished ones.

        Added splits that are empty (starting at their stopping offset) go to ``finished``.
        """
        added, self._added = self._added, []
        gone = {tp for tp, split_id in self._ids.items() if split_id in self._done}
        self._done.clear()
        for tp in gone:
            del self._ids[tp], self._stopping[tp]
        kept = {tp: await consumer.position(tp) for tp in consumer.assignment() - gone}
        seeks = dict(kept)
        for split in added:
            tp = TopicPartition(split.topic, split.partition)
            if split.bounded and split.starting_offset >= split.stopping_offset:
                finished.append(split.split_id)
                continue
            self._ids[tp] = split.split_id
            if split.bounded:
                self._stopping[tp] = split.stopping_offset
            seeks[tp] = split.starting_offset
        consumer.assign(list(seeks))
        for tp, offset in seeks.items():
            consumer.seek(tp, offset)
        self._pause_changed = True

    def _apply_pauses(self, consumer: AIOKafkaConsumer) -> None:
        self._pause_changed = False
        paused = {tp for tp, split_id in self._ids.items() if split_id in self._paused}
        consumer.pause(*(paused - consumer.paused()))
        consumer.resume(*(consumer.paused() - paused))

    async def _getmany(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, list[Record]]:
        """Buffered records at once, else wait up to ``fetch_timeout`` or until woken up."""
        limit = self._options.max_records_per_fetch
        fetched: dict[TopicPartition, list[Record]]
        fetched = await consumer.getmany(timeout_ms=0, max_records=limit)
        if fetched:
            return fetched
        loop = asyncio.get_running_loop()
        if self._wake is None or self._wake.done():
            self._wake = loop.create_future()
        getter = loop.create_task(consumer.getmany(timeout_ms=self._timeout_ms, max_records=limit))
        await asyncio.wait([getter, self._wake], return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            fetched = getter.result()
            return fetched
        getter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await getter
        return {}

    @override
    async def fetch(self) -> RecordsBySplit[Record]:
        consumer = await self._started()
        finished: list[str] = []
        try:
            if self._added or self._done:
                await self._assign(consumer, finished)
            if self._pause_changed:
                self._apply_pauses(consumer)
            fetched = await self._getmany(consumer) if self._ids else {}
            for tp, stop in self._stopping.items():
                batch = fetched.get(tp)
                if batch and batch[-1].offset >= stop:
                    fetched[tp] = [r for r in batch if r.offset < stop]
                if await consumer.position(tp) >= stop:
                    finished.append(self._ids[tp])
        except KafkaError as exc:
            raise translate(exc, "fetching records") from exc
        self._done.update(finished)  # unassigned at the next fetch
        size = 0
        for batch in fetched.values():
            for r in batch:
                size += r.serialized_value_size + r.serialized_key_size
        return RecordsBySplit(
            records={self._ids[tp]: batch for tp, batch in fetched.items()},
            finished_splits=finished,
            size_in_bytes=size,
            # each partition's last record stands for its newest (for currentFetchEventTimeLag)
            max_event_time=max((b[-1].timestamp for b in fetched.values() if b), default=None),
        )


class KafkaRecordEmitter(RecordEmitter[Record, T, KafkaSplitState], Generic[T]):
    """Decodes the records of one partition and advances its split state past them.

    At most one of ``deserializer`` (a connector-base format bound to the reader's metrics:
    values only, tombstones are skipped) and ``record_deserializer`` (sees a whole
    :class:`KafkaRecord`); with neither, the values (``bytes``) are emitted. Each record's Kafka
    timestamp is its event timestamp. A batch goes out in one ``collect_batch`` call with the
    records' timestamps. A value the format refuses goes to the format's error policy (counted in
    ``numRecordsInErrors`` by the deserializer); a record deserializer that raises fails the job
    with :class:`SerializationError` naming the topic, partition and offset (and is counted too).
    """

    def __init__(
        self,
        deserializer: Deserializer[T] | None,
        record_deserializer: Callable[[KafkaRecord], T] | None,
        errors: Counter,
    ) -> None:
        self._deserializer = deserializer
        self._record_deserializer = record_deserializer
        self._errors = errors

    @override
    def emit_record(
        self, element: Record, output: ReaderOutput[T], split_state: KafkaSplitState
    ) -> None:
        self.emit_batch([element], output, split_state)

    @override
    def emit_batch(
        self, elements: Sequence[Record], output: ReaderOutput[T], split_state: KafkaSplitState
    ) -> None:
        if self._record_deserializer is not None:
            values = self._deserialize_records(elements, self._record_deserializer)
            output.collect_batch(values, [r.timestamp for r in elements])
        else:
            present = [r for r in elements if r.value is not None]
            if self._deserializer is None:  # T is bytes: the values as they are
                output.collect_batch(
                    cast("list[T]", [r.value for r in present]), [r.timestamp for r in present]
                )
            else:
                self._decode(present, self._deserializer, output)
        split_state.next_offset = elements[-1].offset + 1

    def _deserialize_records(
        self, elements: Sequence[Record], deserialize: Callable[[KafkaRecord], T]
    ) -> list[T]:
        """Every record through ``deserialize``; the first that raises fails the batch."""
        values: list[T] = []
        for r in elements:
            try:
                values.append(deserialize(to_kafka_record(r)))
            except Exception as exc:
                self._errors.inc()
                raise SerializationError(
                    f"kafka source: cannot deserialize the record at {r.topic}-{r.partition} "
                    f"offset {r.offset}: {type(exc).__name__}: {exc}"
                ) from exc
        return values

    @staticmethod
    def _decode(
        present: list[Record], deserializer: Deserializer[T], output: ReaderOutput[T]
    ) -> None:
        """Decode values (none is ``None``) in one loop; on a bad one, one by one."""
        values, timestamps = deserializer.deserialize_timestamped(
            cast("list[bytes]", [r.value for r in present]),
            [r.timestamp for r in present],
            position=lambda i: f"{present[i].topic}-{present[i].partition}@{present[i].offset}",
        )
        output.collect_batch(values, timestamps)


class KafkaSourceReader(SourceReaderBase[Record, T, KafkaPartitionSplit, KafkaSplitState]):
    """Reads the partitions assigned to one subtask (one consumer, one fetcher task).

    Contracts (from the base): ``poll_next`` never blocks and emits one partition of one fetch;
    ``snapshot_state`` returns each split with ``starting_offset`` at the first record not yet
    emitted. When a checkpoint completes, its offsets are committed to the consumer group (if
    ``group_id`` is set and ``commit_offsets_on_checkpoint``) for monitoring and ``Committed``
    starts. Commits run in the background, one at a time (a newer checkpoint's offsets replace
    those still waiting), so a slow broker never holds back the job's checkpoints; a failed
    commit is logged and counted (``commitsFailed``); the checkpoint, not the group, is the
    source of truth. Closing the reader waits for a commit in flight (up to the request timeout).
    """

    def __init__(
        self,
        context: SourceReaderContext,
        options: KafkaSourceOptions,
        make_emitter: Callable[[MetricGroup], KafkaRecordEmitter[T]],
    ) -> None:
        self._split_reader = KafkaPartitionSplitReader(options)
        metrics = context.metric_group
        super().__init__(
            context, SplitFetcherManager(lambda: self._split_reader), make_emitter(metrics)
        )
        self._commit = options.group_id is not None and options.commit_offsets_on_checkpoint
        self._commits_failed = metrics.counter("commitsFailed")
        self._commits_succeeded = metrics.counter("commitsSucceeded")
        metrics.gauge("pendingRecords", self._pending_records)
        self._positions: dict[str, KafkaSplitState] = {}
        self._to_commit: dict[int, dict[TopicPartition, int]] = {}
        self._finished_offsets: dict[TopicPartition, int] = {}
        self._commit_next: tuple[int, dict[TopicPartition, int]] | None = None
        self._committing: asyncio.Task[None] | None = None
        self._commit_timeout = options.request_timeout.total_seconds()

    # -- hooks of the base -----------------------------------------------------------------
    @override
    def initialized_state(self, split: KafkaPartitionSplit) -> KafkaSplitState:
        state = KafkaSplitState(split, split.starting_offset)
        self._positions[split.split_id] = state
        group = self.context.metric_group.add_group("topic", split.topic).add_group(
            "partition", str(split.partition)
        )
        group.gauge("currentOffset", functools.partial(getattr, state, "next_offset"))
        group.gauge("pendingRecords", functools.partial(self._lag, state))
        return state

    @override
    def to_split(self, split_id: str, state: KafkaSplitState) -> KafkaPartitionSplit:
        return state.snapshot()

    @override
    def on_split_finished(self, finished: Mapping[str, KafkaSplitState]) -> None:
        for split_id, state in finished.items():
            del self._positions[split_id]
            tp = TopicPartition(state.split.topic, state.split.partition)
            self._finished_offsets[tp] = state.next_offset

    # -- checkpoints -----------------------------------------------------------------------
    @override
    def snapshot_state(self, checkpoint_id: int) -> list[KafkaPartitionSplit]:
        splits = super().snapshot_state(checkpoint_id)
        if self._commit:
            self._to_commit[checkpoint_id] = {
                **self._finished_offsets,
                **{TopicPartition(s.topic, s.partition): s.starting_offset for s in splits},
            }
        return splits

    @override
    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        offsets = self._to_commit.pop(checkpoint_id, None)
        for older in [c for c in self._to_commit if c < checkpoint_id]:
            del self._to_commit[older]
        if not offsets or self._split_reader.consumer is None:
            return
        self._commit_next = (checkpoint_id, offsets)
        if self._committing is None or self._committing.done():
            self._committing = asyncio.get_running_loop().create_task(self._commit_waiting())

    async def _commit_waiting(self) -> None:
        """Commit the newest completed checkpoint's offsets until none is waiting."""
        while self._commit_next is not None:
            (checkpoint_id, offsets), self._commit_next = self._commit_next, None
            consumer = self._split_reader.consumer
            if consumer is None:
                return
            try:
                await consumer.commit(offsets)
                for tp in offsets.keys() & self._finished_offsets.keys():
                    del self._finished_offsets[tp]
            except (KafkaError, OSError) as exc:
                self._commits_failed.inc()
                log.warning(
                    "kafka source: committing offsets of checkpoint %d failed (the checkpoint "
                    "holds them; the group lags until the next commit): %s",
                    checkpoint_id,
                    translate(exc, "committing offsets"),
                )
            else:
                self._commits_succeeded.inc()

    @override
    async def close(self) -> None:
        try:
            committing = self._committing
            if committing is not None and not committing.done():
                await asyncio.wait([committing], timeout=self._commit_timeout)
                committing.cancel()
            await super().close()
        finally:
            await self._split_reader.aclose()

    # -- metrics ---------------------------------------------------------------------------
    def _lag(self, state: KafkaSplitState) -> int | None:
        consumer = self._split_reader.consumer
        if consumer is None:
            return None
        tp = TopicPartition(state.split.topic, state.split.partition)
        highwater = consumer.highwater(tp)
        return None if highwater is None else max(0, highwater - state.next_offset)

    def _pending_records(self) -> int | None:
        lags = [self._lag(state) for state in self._positions.values()]
        known = [lag for lag in lags if lag is not None]
        return sum(known) if known else None
