"""The readers of the shard sources: split readers (polling, and the base of fan-out), emitter, reader.

Shared by :class:`KinesisStreamsSource` and :class:`DynamoDbStreamsSource`. One fetcher thread per
subtask reads its shards. The polling split reader polls them in turn, one GetRecords call per
fetch; a shard that returned nothing is polled again only after ``idle_poll_interval`` (no tight
loop on idle shards). The fan-out split reader (``_fan_out``) shares :class:`ShardSplitReader`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from headwater.connectors.aws._enumerator import FinishedAcknowledged, ShardsFinished
from headwater.connectors.aws._shards import ShardSplit, StartingPosition
from headwater.connectors.aws._stream_api import ExpiredIteratorError, StreamApi
from headwater.connectors.base import (
    Backoff,
    BlockingSplitReader,
    RecordEmitter,
    RecordsBySplit,
    SourceReaderBase,
    SplitFetcherManager,
)
from headwater.core import ReaderOutput, RetryableError, SourceReaderContext
from typing_extensions import override

__all__ = [
    "PollingShardSplitReader",
    "ShardCursor",
    "ShardRecordEmitter",
    "ShardSourceReader",
    "ShardSplitReader",
    "ShardState",
]

T = TypeVar("T")
"""The type of the records the source emits."""

Record = dict[str, Any]
"""A record as boto3 returns it."""

log = logging.getLogger(__name__)

_MAX_WAIT = 1.0
"""The longest a fetch waits for a shard to become due (so split changes are seen soon)."""


@dataclass(slots=True)
class ShardState:
    """The mutable position of one split: the sequence number of the last record emitted."""

    split: ShardSplit
    last_sequence_number: str | None = None

    def to_split(self) -> ShardSplit:
        """The split positioned right after the last record emitted."""
        if self.last_sequence_number is None:
            return self.split
        return self.split.resumed_after(self.last_sequence_number)


@dataclass(slots=True)
class ShardCursor:
    """Where a split reader is in one shard: the next position to read and when to try again.

    Attributes:
        split: the split as assigned.
        position: where the next read (iterator, subscription) starts.
        due: the monotonic time before which the shard is not read (backoff, idle wait).
        failures: retryable failures in a row (for the backoff).
    """

    split: ShardSplit
    position: StartingPosition
    due: float = 0.0
    failures: int = 0


C = TypeVar("C", bound=ShardCursor)
"""The cursor type of a split reader."""
A = TypeVar("A", bound=StreamApi)
"""The service API type of a split reader."""


class ShardSplitReader(BlockingSplitReader[Record, ShardSplit], Generic[A, C]):
    """What the polling and the fan-out split readers share, on the fetcher thread.

    It keeps a cursor per assigned shard and the paused shards, builds the service API on the
    fetcher thread at the first fetch, backs off shards that failed with a retryable error, and
    turns what a shard delivered into a :class:`RecordsBySplit` with the same end rules for both
    readers: a shard ends when the service says it is closed and read, or, in a bounded read, when
    it is caught up (no records, ``MillisBehindLatest`` 0 or unknown).

    A subclass implements :meth:`new_cursor`, :meth:`fetch` and :meth:`wake_up`.

    Args:
        api_factory: builds the service API (called on the fetcher thread).
        bounded: end shards when they are caught up.
        millis_behind: where the reader publishes ``MillisBehindLatest`` per shard.
    """

    def __init__(
        self,
        api_factory: Callable[[], A],
        *,
        bounded: bool,
        millis_behind: dict[str, int | None],
    ) -> None:
        self._api_factory = api_factory
        self._api: A | None = None
        self._bounded = bounded
        self._millis_behind = millis_behind
        self._shards: dict[str, C] = {}
        self._paused: set[str] = set()
        self._backoff = Backoff()

    @abstractmethod
    def new_cursor(self, split: ShardSplit) -> C:
        """The cursor of a newly assigned split, at its starting position."""

    @override
    def handle_splits_changes(self, added: Sequence[ShardSplit]) -> None:
        for split in added:
            self._shards[split.shard_id] = self.new_cursor(split)

    @override
    def pause_or_resume_splits(self, to_pause: Collection[str], to_resume: Collection[str]) -> None:
        self._paused = (self._paused | set(to_pause)) - set(to_resume)

    def api(self) -> A:
        """The service API, built at the first call (blocking)."""
        if self._api is None:
            self._api = self._api_factory()
        return self._api

    def active_cursors(self) -> list[C]:
        """The cursors of the shards that are not paused."""
        return [c for sid, c in self._shards.items() if sid not in self._paused]

    def retry_later(self, cursor: C, exc: RetryableError) -> RecordsBySplit[Record]:
        """Back the shard off after ``exc`` (jittered, exponential); an empty fetch."""
        cursor.failures += 1
        delay = self._backoff.delay(cursor.failures - 1).total_seconds()
        cursor.due = time.monotonic() + delay
        log.warning(
            "%s: reading shard %s failed, retrying in %.2f s: %s",
            self.api().connector,
            cursor.split.shard_id,
            delay,
            exc,
        )
        return RecordsBySplit()

    def delivered(
        self,
        cursor: C,
        records: list[Record],
        millis_behind_latest: int | None,
        *,
        closed: bool,
    ) -> RecordsBySplit[Record]:
        """The fetch of ``records`` from ``cursor``'s shard; the shard ends if ``closed`` or caught up.

        Moves the cursor after the last record, publishes ``MillisBehindLatest`` and drops the
        cursor of a shard that ended (the subclass releases what it holds for it first, see
        :meth:`is_finished`).
        """
        api = self.api()
        split = cursor.split
        cursor.failures = 0
        self._millis_behind[split.shard_id] = millis_behind_latest
        if records:
            cursor.position = StartingPosition.after(api.sequence_number(records[-1]))
        finished = self.is_finished(records, millis_behind_latest, closed=closed)
        if finished:
            del self._shards[split.shard_id]
        return RecordsBySplit(
            records={split.shard_id: records} if records else {},
            finished_splits=(split.shard_id,) if finished else (),
            size_in_bytes=sum(map(api.size, records)),
            # Arrival times grow along a shard: the last record is the newest (for the lag metric).
            max_event_time=api.event_time(records[-1]) if records else None,
        )

    def is_finished(
        self, records: list[Record], millis_behind_latest: int | None, *, closed: bool
    ) -> bool:
        """Whether a shard ends after this delivery: closed and read, or caught up when bounded."""
        caught_up = not records and millis_behind_latest in (0, None)
        return closed or (self._bounded and caught_up)

    @override
    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None


@dataclass(slots=True)
class _Polled(ShardCursor):
    iterator: str | None = None


class PollingShardSplitReader(ShardSplitReader[StreamApi, _Polled]):
    """Reads shards with GetRecords on the fetcher thread.

    Each fetch polls the shard that is due first: one GetRecords call of up to ``limit`` records.
    A shard whose answer was empty is due again after ``idle_interval``; one that failed with a
    retryable error after a jittered exponential backoff; an expired iterator is replaced from
    the last record fetched. A shard ends when the service says it is closed and read
    (``NextShardIterator`` is ``None``), or, in a bounded read, when it is caught up.

    Args:
        api_factory: builds the service API (called on the fetcher thread).
        limit: records per GetRecords call.
        idle_interval: seconds before polling a shard that returned nothing again.
        bounded: end shards when they are caught up.
        millis_behind: where the reader publishes ``MillisBehindLatest`` per shard.
    """

    def __init__(
        self,
        api_factory: Callable[[], StreamApi],
        *,
        limit: int,
        idle_interval: float,
        bounded: bool,
        millis_behind: dict[str, int | None],
    ) -> None:
        super().__init__(api_factory, bounded=bounded, millis_behind=millis_behind)
        self._limit = limit
        self._idle = idle_interval
        self._wake = threading.Event()

    @override
    def new_cursor(self, split: ShardSplit) -> _Polled:
        return _Polled(split, split.starting_position)

    @override
    def wake_up(self) -> None:
        self._wake.set()

    @override
    def fetch(self) -> RecordsBySplit[Record]:
        api = self.api()
        candidates = self.active_cursors()
        if not candidates:
            return RecordsBySplit()
        shard = min(candidates, key=lambda s: s.due)
        now = time.monotonic()
        if shard.due > now:
            self._wake.wait(min(shard.due - now, _MAX_WAIT))
            self._wake.clear()
            return RecordsBySplit()
        split = shard.split
        try:
            if shard.iterator is None:
                shard.iterator = api.shard_iterator(
                    split.stream_arn, split.shard_id, shard.position
                )
            fetched = api.get_records(split.stream_arn, shard.iterator, self._limit)
        except ExpiredIteratorError:
            shard.iterator = None
            return RecordsBySplit()
        except RetryableError as exc:
            return self.retry_later(shard, exc)
        shard.iterator = fetched.next_iterator
        shard.due = time.monotonic() + (0.0 if fetched.records else self._idle)
        return self.delivered(
            shard,
            fetched.records,
            fetched.millis_behind_latest,
            closed=fetched.next_iterator is None,
        )


class ShardRecordEmitter(RecordEmitter[Record, T, ShardState], Generic[T]):
    """Emits records with their arrival time as the timestamp and advances the shard's position.

    A connector implements :meth:`emit_records`: decode one shard's records and collect them.
    """

    def __init__(self, api: type[StreamApi]) -> None:
        self._api = api

    @abstractmethod
    def emit_records(
        self, records: Sequence[Record], output: ReaderOutput[T], shard_id: str
    ) -> None:
        """Decode ``records`` of shard ``shard_id`` and collect them with their timestamps."""

    @override
    def emit_record(
        self, element: Record, output: ReaderOutput[T], split_state: ShardState
    ) -> None:
        self.emit_batch([element], output, split_state)

    @override
    def emit_batch(
        self, elements: Sequence[Record], output: ReaderOutput[T], split_state: ShardState
    ) -> None:
        self.emit_records(elements, output, split_state.split.shard_id)
        split_state.last_sequence_number = self._api.sequence_number(elements[-1])


class ShardSourceReader(SourceReaderBase[Record, T, ShardSplit, ShardState], Generic[T]):
    """The reader of a shard source: reports finished shards, keeps finished markers until safe.

    A shard read to its end is reported to the enumerator (:class:`ShardsFinished`) and kept as a
    finished marker in this reader's checkpoints until a checkpoint completes whose enumerator
    state knows it. Restored markers are reported again and never read.

    Metrics: those of :class:`SourceReaderBase` plus ``millisBehindLatest`` per shard (group
    ``shardId``) and the maximum over the reader's shards.
    """

    def __init__(
        self,
        context: SourceReaderContext,
        fetcher_manager: SplitFetcherManager[Record, ShardSplit],
        record_emitter: ShardRecordEmitter[T],
        millis_behind: dict[str, int | None],
    ) -> None:
        super().__init__(context, fetcher_manager, record_emitter)
        self._millis_behind = millis_behind
        self._markers: dict[str, ShardSplit] = {}
        self._safe_after: dict[str, int] = {}
        context.metric_group.gauge("millisBehindLatest", self._max_millis_behind)

    def _max_millis_behind(self) -> int | None:
        values = [v for v in self._millis_behind.values() if v is not None]
        return max(values) if values else None

    @override
    def initialized_state(self, split: ShardSplit) -> ShardState:
        return ShardState(split)

    @override
    def to_split(self, split_id: str, state: ShardState) -> ShardSplit:
        return state.to_split()

    @override
    def add_splits(self, splits: Sequence[ShardSplit]) -> None:
        markers = [s for s in splits if s.finished]
        if markers:
            self._report_finished(markers)
        group = self.context.metric_group
        for split in splits:
            if not split.finished:
                group.add_group("shardId", split.shard_id).gauge(
                    "millisBehindLatest", functools.partial(self._millis_behind.get, split.shard_id)
                )
        super().add_splits([s for s in splits if not s.finished])

    @override
    def on_split_finished(self, finished: Mapping[str, ShardState]) -> None:
        for shard_id in finished:
            self._millis_behind.pop(shard_id, None)
        self._report_finished(
            [dataclasses.replace(s.to_split(), finished=True) for s in finished.values()]
        )

    def _report_finished(self, markers: Sequence[ShardSplit]) -> None:
        for marker in markers:
            self._markers[marker.shard_id] = marker
        self.context.send_source_event(ShardsFinished(tuple(m.shard_id for m in markers)))

    @override
    def handle_source_event(self, event: Any) -> None:
        if isinstance(event, FinishedAcknowledged):
            for shard_id in event.shard_ids:
                if shard_id in self._markers:
                    self._safe_after[shard_id] = event.after_checkpoint

    @override
    def snapshot_state(self, checkpoint_id: int) -> list[ShardSplit]:
        return super().snapshot_state(checkpoint_id) + list(self._markers.values())

    @override
    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        for shard_id, after in list(self._safe_after.items()):
            if checkpoint_id > after:
                del self._safe_after[shard_id]
                del self._markers[shard_id]
