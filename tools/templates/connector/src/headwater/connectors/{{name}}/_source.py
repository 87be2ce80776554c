"""The {{title}} source: split reader, record emitter, enumerator and reader on connector-base.

- :class:`_SplitReader` fetches batches of records from the splits a reader owns (the client calls
  to replace are here);
- :class:`_RecordEmitter` says where a record's payload, timestamp and position are; the base
  decodes it with the format and its error policy;
- :class:`_Enumerator` discovers the partitions and pushes each to its reader;
- :class:`{{class_prefix}}Source` ties them together. The base owns fetching, hand-over,
  per-split outputs (watermarks per split), metrics and checkpointing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any, Generic, TypeVar

from headwater.connectors.base import (
    DecodingRecordEmitter,
    Format,
    PushSplitEnumerator,
    RecordsBySplit,
    SourceReaderBase,
    SplitFetcherManager,
    SplitReader,
)
from headwater.connectors.{{name}}._client import ExampleClient, ExampleRecord
from headwater.connectors.{{name}}._options import {{class_prefix}}SourceOptions
from headwater.connectors.{{name}}._split import (
    ENUMERATOR_STATE_SERIALIZER,
    SPLIT_SERIALIZER,
    {{class_prefix}}EnumeratorState,
    {{class_prefix}}Split,
    {{class_prefix}}SplitState,
)
from headwater.core import (
    Boundedness,
    Source,
    SourceReaderContext,
    SplitEnumeratorContext,
    VersionedSerializer,
)

__all__ = ["{{class_prefix}}Source"]

T = TypeVar("T")
"""The record type: the format's, or ``bytes`` without one."""

_Split = {{class_prefix}}Split
_State = {{class_prefix}}SplitState


class _SplitReader(SplitReader[ExampleRecord, _Split]):
    """Reads every split of one reader (one fetcher multiplexes them)."""

    def __init__(self, options: {{class_prefix}}SourceOptions) -> None:
        self._options = options
        self._client = ExampleClient(options.address)
        self._splits: dict[str, _Split] = {}
        """The splits being read, each with the position of its next record."""
        self._paused: set[str] = set()
        self._woken = asyncio.Event()

    def handle_splits_changes(self, added: Sequence[_Split]) -> None:
        """Start reading ``added`` from their positions."""
        for split in added:
            self._splits[split.split_id] = split

    def pause_or_resume_splits(self, to_pause: Collection[str], to_resume: Collection[str]) -> None:
        """Leave paused splits out of the fetches (watermark alignment)."""
        self._paused.update(to_pause)
        self._paused.difference_update(to_resume)

    def wake_up(self) -> None:
        """End a wait for new records."""
        self._woken.set()

    async def fetch(self) -> RecordsBySplit[ExampleRecord]:
        """One batch per split with new records; splits that reached their stop are finished."""
        records: dict[str, list[ExampleRecord]] = {}
        finished = []
        size = 0
        for split_id in list(self._splits):
            if split_id in self._paused:
                continue
            split = self._splits[split_id]
            batch = await self._client.read(
                split.log, split.partition, split.position, self._options.fetch_size, split.stop
            )
            if batch:
                records[split_id] = batch
                size += sum(len(r.payload) for r in batch)
                split = self._splits[split_id] = replace(split, position=batch[-1].next_position)
            if split.stop is not None and split.position >= split.stop:
                finished.append(split_id)
                del self._splits[split_id]
        if not records and not finished:  # nothing new: wait a little (or until woken)
            self._woken.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._woken.wait(), self._options.poll_interval.total_seconds()
                )
        return RecordsBySplit(records, finished, size_in_bytes=size)

    async def aclose(self) -> None:
        """Release the client (after the last fetch)."""
        await self._client.close()


class _RecordEmitter(DecodingRecordEmitter[ExampleRecord, ExampleRecord, T, _State]):
    """Where a record's payload, timestamp and position are; the base decodes and emits."""

    def payloads(self, elements: Sequence[ExampleRecord]) -> list[bytes | None]:
        """The records' payloads."""
        return [r.payload for r in elements]

    def timestamps(self, elements: Sequence[ExampleRecord]) -> list[int | None]:
        """The records' timestamps (epoch ms)."""
        return [r.timestamp for r in elements]

    def position(self, element: ExampleRecord, split_state: _State) -> str:
        """``log-partition@position``, for errors and dead letters."""
        return f"{split_state.split.split_id}@{element.position}"

    def advance(self, elements: Sequence[ExampleRecord], split_state: _State) -> None:
        """The split continues after the last record."""
        split_state.position = elements[-1].next_position


class _Reader(SourceReaderBase[ExampleRecord, T, _Split, _State]):
    """One subtask's reader: the base does the work; the state is the position per split."""

    def __init__(self, context: SourceReaderContext, source: {{class_prefix}}Source[T]) -> None:
        fmt = source.format
        emitter: _RecordEmitter[T] = _RecordEmitter(
            "{{name}} source",
            deserializer=None if fmt is None else fmt.deserializer(context.metric_group),
            record_deserializer=None,
            errors=context.metric_group.counter("numRecordsInErrors"),
        )
        manager: SplitFetcherManager[ExampleRecord, _Split] = SplitFetcherManager(
            lambda: _SplitReader(source.options)
        )
        super().__init__(context, manager, emitter)

    def initialized_state(self, split: _Split) -> _State:
        """A split starts at its position."""
        return _State(split, split.position)

    def to_split(self, split_id: str, state: _State) -> _Split:
        """The split with the position after the last record emitted (for checkpoints)."""
        return replace(state.split, position=state.position)


class _Enumerator(PushSplitEnumerator[_Split, {{class_prefix}}EnumeratorState]):
    """Discovers the partitions of the log and gives partition ``p`` to reader ``p % parallelism``."""

    def __init__(
        self,
        context: SplitEnumeratorContext[_Split],
        source: {{class_prefix}}Source[Any],
        state: {{class_prefix}}EnumeratorState,
    ) -> None:
        bounded = source.boundedness is Boundedness.BOUNDED
        super().__init__(
            context,
            name="{{name}} source",
            what="partition",
            bounded=bounded,
            discovery_interval=source.options.discovery_interval,
            pending=state.pending,
            discovered=state.discovered,
        )
        self._options = source.options
        self._assigned = set(state.assigned)
        self._client = ExampleClient(source.options.address)

    async def discover(self) -> None:
        """Add the partitions not seen yet (a bounded source stops at their current end)."""
        log = self._options.log
        known = self._assigned | {s.partition for s in self.pending.values()}
        new = []
        for partition in range(await self._client.partitions(log)):
            if partition not in known:
                stop = await self._client.end(log, partition) if self.bounded else None
                new.append(_Split(log, partition, stop=stop))
        self.add_pending(new)

    def owner(self, split: _Split, counts: Mapping[int, int]) -> int | None:
        """Partition ``p`` goes to reader ``p % parallelism``."""
        return split.partition % self.context.parallelism

    def assigned(self, split: _Split, reader: int) -> None:
        """Remember the partition: it is not discovered again."""
        self._assigned.add(split.partition)

    def snapshot_state(self, checkpoint_id: int) -> {{class_prefix}}EnumeratorState:
        """The pending splits, the assigned partitions and whether discovery ran."""
        return {{class_prefix}}EnumeratorState(
            tuple(self.pending.values()), tuple(sorted(self._assigned)), self.discovered
        )

    async def release(self) -> None:
        """Release the client."""
        await self._client.close()


class {{class_prefix}}Source(Source[T, _Split, {{class_prefix}}EnumeratorState], Generic[T]):
    """Reads a {{title}} log: one split per partition, records decoded with ``format``.

    Args:
        options: what to read.
        format: a connector-base format (``JsonFormat()``...) with its error policy; ``None``
            emits the payloads as ``bytes``.
        bounded: stop at the end the partitions have when the job starts.
    """

    def __init__(
        self,
        options: {{class_prefix}}SourceOptions,
        *,
        format: Format[T] | None = None,
        bounded: bool = False,
    ) -> None:
        self.options = options
        self.format = format
        self._bounded = bounded

    @property
    def boundedness(self) -> Boundedness:
        """Bounded, or continuous."""
        return Boundedness.BOUNDED if self._bounded else Boundedness.CONTINUOUS_UNBOUNDED

    def create_enumerator(
        self, context: SplitEnumeratorContext[_Split]
    ) -> _Enumerator:
        """An enumerator for a fresh job."""
        return _Enumerator(context, self, {{class_prefix}}EnumeratorState())

    def restore_enumerator(
        self, context: SplitEnumeratorContext[_Split], state: {{class_prefix}}EnumeratorState
    ) -> _Enumerator:
        """An enumerator from its checkpoint."""
        return _Enumerator(context, self, state)

    def create_reader(self, context: SourceReaderContext) -> _Reader[T]:
        """A reader for one subtask."""
        return _Reader(context, self)

    def split_serializer(self) -> VersionedSerializer[_Split]:
        """Splits in checkpoints."""
        return SPLIT_SERIALIZER

    def enumerator_state_serializer(self) -> VersionedSerializer[{{class_prefix}}EnumeratorState]:
        """Enumerator states in checkpoints."""
        return ENUMERATOR_STATE_SERIALIZER
