"""HybridSource: read bounded sources one after another, then a last (possibly unbounded) one.

Typical use: history from files or a table, then the live tail from a message queue, with the
live source's start position derived from where the history ended. The switch is coordinated:
the enumerator switches to the next source only after every reader has finished the current one,
then tells each reader to switch. The checkpointed state carries the index of the current source
and the start position it was built from, so a restored job resumes in the same source.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import orjson
from headwater.core import (
    Boundedness,
    ConfigurationError,
    InputStatus,
    JsonSerializer,
    ReaderOutput,
    Source,
    SourceReader,
    SourceReaderContext,
    SplitEnumerator,
    SplitEnumeratorContext,
    VersionedSerializer,
)

__all__ = ["HybridSource", "HybridSplit", "SourceSwitch"]

T = TypeVar("T")
"""The record type of every source of the chain."""
R = TypeVar("R")

AnySource = Source[Any, Any, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceSwitch:
    """A source of the chain built at switch time from where the previous source ended.

    Attributes:
        end_position: reads the end position from the previous source's enumerator when it has
            finished; the value must be JSON-compatible (it is checkpointed).
        create: builds the source starting at that position; it is called again with the same
            position after a restore, so it must be deterministic.
        boundedness: the boundedness of the sources ``create`` builds (every source but the last
            must be bounded).
    """

    end_position: Callable[[SplitEnumerator[Any, Any]], Any]
    create: Callable[[Any], AnySource]
    boundedness: Boundedness = Boundedness.BOUNDED


@dataclass(frozen=True, slots=True)
class HybridSplit:
    """A split of one source of the chain."""

    source_index: int
    split: Any
    start_position: Any = None
    """The position the source at ``source_index`` was built from (``None`` for a fixed source)."""

    @property
    def split_id(self) -> str:
        """Unique across the chain: ``"<source index>:<split id>"``."""
        return f"{self.source_index}:{self.split.split_id}"


@dataclass(frozen=True, slots=True)
class HybridEnumeratorState:
    """The current source, the position it was built from, and its enumerator's state."""

    source_index: int
    start_position: Any
    state: Any


@dataclass(frozen=True, slots=True)
class _SwitchSource:
    index: int
    source: AnySource
    start_position: Any
    is_last: bool


@dataclass(frozen=True, slots=True)
class _NoMoreSplits:
    index: int


@dataclass(frozen=True, slots=True)
class _SourceFinished:
    index: int


@dataclass(frozen=True, slots=True)
class _SubEvent:
    index: int
    event: Any


def _encode(serializer: VersionedSerializer[Any], obj: Any) -> list[Any]:
    return [serializer.version, base64.b64encode(serializer.serialize(obj)).decode()]


def _decode(serializer: VersionedSerializer[Any], blob: list[Any]) -> Any:
    return serializer.deserialize(blob[0], base64.b64decode(blob[1]))


class HybridSource(Source[T, HybridSplit, HybridEnumeratorState]):
    """A chain of sources read one after another; all but the last must be bounded.

    Example::

        history = CollectionSource(past_events)
        live = SourceSwitch(
            end_position=lambda enumerator: len(past_events),
            create=lambda start: NumberSequenceSource(start, start + 1000),
        )
        env.from_source(HybridSource(history, live))

    Args:
        first: the first source (fixed).
        then: the following sources, each a fixed source or a :class:`SourceSwitch`.
    """

    def __init__(self, first: AnySource, *then: AnySource | SourceSwitch) -> None:
        chain: list[AnySource | SourceSwitch] = [first, *then]
        if not isinstance(first, Source):
            raise ConfigurationError(
                "HybridSource: the first source must be a Source, not a SourceSwitch"
            )
        for index, entry in enumerate(chain[:-1]):
            if _boundedness(entry) is not Boundedness.BOUNDED:
                raise ConfigurationError(
                    f"HybridSource: source {index} ({_describe(entry)}) is unbounded; only the last "
                    f"source may be unbounded"
                )
        self._chain = chain
        self._built: dict[tuple[int, bytes], AnySource] = {}

    @property
    def boundedness(self) -> Boundedness:
        """The boundedness of the last source."""
        return _boundedness(self._chain[-1])

    def source_at(self, index: int, start_position: Any) -> AnySource:
        """The source at ``index`` of the chain (built from ``start_position`` for a switch)."""
        entry = self._chain[index]
        if isinstance(entry, Source):
            return entry
        key = (index, orjson.dumps(start_position))
        source = self._built.get(key)
        if source is None:
            source = self._built[key] = entry.create(start_position)
        return source

    def next_position(self, index: int, previous: SplitEnumerator[Any, Any]) -> Any:
        """The start position of source ``index``, read from the previous enumerator."""
        entry = self._chain[index]
        return entry.end_position(previous) if isinstance(entry, SourceSwitch) else None

    @property
    def last_index(self) -> int:
        """The index of the last source."""
        return len(self._chain) - 1

    def create_enumerator(
        self, context: SplitEnumeratorContext[HybridSplit]
    ) -> SplitEnumerator[HybridSplit, HybridEnumeratorState]:
        """An enumerator starting with the first source."""
        return _HybridEnumerator(self, context, 0, None, None)

    def restore_enumerator(
        self, context: SplitEnumeratorContext[HybridSplit], state: HybridEnumeratorState
    ) -> SplitEnumerator[HybridSplit, HybridEnumeratorState]:
        """An enumerator resuming in the checkpointed source."""
        return _HybridEnumerator(self, context, state.source_index, state.start_position, state)

    def create_reader(self, context: SourceReaderContext) -> SourceReader[T, HybridSplit]:
        """A reader that switches its underlying reader when the enumerator says so."""
        return _HybridReader(self, context)

    def split_serializer(self) -> VersionedSerializer[HybridSplit]:
        """``[index, start position, wrapped split]`` (version 1)."""

        def to_json(split: HybridSplit) -> Any:
            source = self.source_at(split.source_index, split.start_position)
            return [
                split.source_index,
                split.start_position,
                _encode(source.split_serializer(), split.split),
            ]

        def from_json(_version: int, data: Any) -> HybridSplit:
            source = self.source_at(data[0], data[1])
            return HybridSplit(data[0], _decode(source.split_serializer(), data[2]), data[1])

        return JsonSerializer(version=1, to_json=to_json, from_json=from_json)

    def enumerator_state_serializer(self) -> VersionedSerializer[HybridEnumeratorState]:
        """``[index, start position, wrapped enumerator state]`` (version 1)."""

        def to_json(state: HybridEnumeratorState) -> Any:
            source = self.source_at(state.source_index, state.start_position)
            encoded = _encode(source.enumerator_state_serializer(), state.state)
            return [state.source_index, state.start_position, encoded]

        def from_json(_version: int, data: Any) -> HybridEnumeratorState:
            source = self.source_at(data[0], data[1])
            return HybridEnumeratorState(
                data[0], data[1], _decode(source.enumerator_state_serializer(), data[2])
            )

        return JsonSerializer(version=1, to_json=to_json, from_json=from_json)


def _boundedness(entry: AnySource | SourceSwitch) -> Boundedness:
    return entry.boundedness


def _describe(entry: AnySource | SourceSwitch) -> str:
    return type(entry).__name__


class _SubContext:
    """The context of the current source's enumerator: wraps splits, intercepts the end.

    Retired at the switch to the next source: periodic calls registered through it (split
    discovery) stop doing anything from then on.
    """

    def __init__(self, owner: _HybridEnumerator, index: int, start_position: Any) -> None:
        self._owner = owner
        self._parent = owner.context
        self._index = index
        self._position = start_position
        self.retired = False

    @property
    def parallelism(self) -> int:
        return self._parent.parallelism

    def registered_readers(self) -> frozenset[int]:
        return self._parent.registered_readers()

    def assign_splits(self, assignment: Mapping[int, Sequence[Any]], /) -> None:
        index, position = self._index, self._position
        self._parent.assign_splits(
            {
                sub: [HybridSplit(index, s, position) for s in splits]
                for sub, splits in assignment.items()
            }
        )

    def signal_no_more_splits(self, subtask_index: int, /) -> None:
        if self._index == self._owner.hybrid.last_index:
            self._parent.signal_no_more_splits(subtask_index)
        else:
            self._parent.send_event_to_reader(subtask_index, _NoMoreSplits(self._index))

    def send_event_to_reader(self, subtask_index: int, event: Any, /) -> None:
        self._parent.send_event_to_reader(subtask_index, _SubEvent(self._index, event))

    def call_periodically(self, fn: Callable[[], Awaitable[None]], interval: timedelta, /) -> None:
        # Core's call_periodically cannot be cancelled: after the switch the timer still fires,
        # but the previous source's discovery (its client closed by then) no longer runs.
        async def until_retired() -> None:
            if not self.retired:
                await fn()

        self._parent.call_periodically(until_retired, interval)

    def run_blocking(self, fn: Callable[..., R], /, *args: Any) -> Awaitable[R]:
        return self._parent.run_blocking(fn, *args)


class _HybridEnumerator(SplitEnumerator[HybridSplit, HybridEnumeratorState]):
    def __init__(
        self,
        hybrid: HybridSource[Any],
        context: SplitEnumeratorContext[HybridSplit],
        index: int,
        start_position: Any,
        restored: HybridEnumeratorState | None,
    ) -> None:
        self.hybrid = hybrid
        self.context = context
        self._finished: set[int] = set()
        self._switching: asyncio.Task[None] | None = None
        self._deferred_requests: list[int] = []
        self._error: BaseException | None = None
        self._use(index, start_position, restored)

    def _use(self, index: int, start_position: Any, restored: HybridEnumeratorState | None) -> None:
        self.index = index
        self.start_position = start_position
        self.source = self.hybrid.source_at(index, start_position)
        self._sub_context = _SubContext(self, index, start_position)
        sub_context: Any = self._sub_context
        self.enumerator: SplitEnumerator[Any, Any] = (
            self.source.restore_enumerator(sub_context, restored.state)
            if restored is not None
            else self.source.create_enumerator(sub_context)
        )
        self._finished = set()

    def _switch_event(self) -> _SwitchSource:
        return _SwitchSource(
            self.index, self.source, self.start_position, self.index == self.hybrid.last_index
        )

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    async def start(self) -> None:
        await self.enumerator.start()

    def add_reader(self, subtask_index: int) -> None:
        self._check()
        if self._switching is not None:
            return  # the switch tells every registered reader when it is done
        self.context.send_event_to_reader(subtask_index, self._switch_event())
        self.enumerator.add_reader(subtask_index)

    def handle_split_request(self, subtask_index: int) -> None:
        self._check()
        if self._switching is not None:
            self._deferred_requests.append(subtask_index)
        else:
            self.enumerator.handle_split_request(subtask_index)

    def add_splits_back(self, splits: Sequence[HybridSplit], subtask_index: int) -> None:
        mine = [s.split for s in splits if s.source_index == self.index]
        if mine:
            self.enumerator.add_splits_back(mine, subtask_index)

    def handle_source_event(self, subtask_index: int, event: Any) -> None:
        if isinstance(event, _SourceFinished):
            if event.index != self.index:
                return
            self._finished.add(subtask_index)
            if (
                len(self._finished) == self.context.parallelism
                and self.index < self.hybrid.last_index
            ):
                self._switch()
        elif isinstance(event, _SubEvent) and event.index == self.index:
            self.enumerator.handle_source_event(subtask_index, event.event)

    def _switch(self) -> None:
        previous = self.enumerator
        self._sub_context.retired = True
        index = self.index + 1
        self._use(index, self.hybrid.next_position(index, previous), None)
        self._switching = asyncio.get_running_loop().create_task(self._start_switched(previous))

    async def _start_switched(self, previous: SplitEnumerator[Any, Any]) -> None:
        try:
            await previous.close()
            await self.enumerator.start()
        except Exception as exc:
            self._error = exc
            raise
        finally:
            self._switching = None
        event = self._switch_event()
        for subtask in sorted(self.context.registered_readers()):
            self.context.send_event_to_reader(subtask, event)
            self.enumerator.add_reader(subtask)
        deferred, self._deferred_requests = self._deferred_requests, []
        for subtask in deferred:
            self.enumerator.handle_split_request(subtask)

    def snapshot_state(self, checkpoint_id: int) -> HybridEnumeratorState:
        self._check()
        return HybridEnumeratorState(
            self.index, self.start_position, self.enumerator.snapshot_state(checkpoint_id)
        )

    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        await self.enumerator.notify_checkpoint_complete(checkpoint_id)

    async def close(self) -> None:
        if self._switching is not None:
            self._switching.cancel()
        await self.enumerator.close()


class _PrefixedOutput(ReaderOutput[T]):
    """The output a sub-reader sees: its split outputs carry the hybrid split ids (``index:id``).

    So the task's per-split watermarks and alignment pauses name the same splits as the hybrid
    reader's checkpoints and :meth:`_HybridReader.pause_or_resume_splits`.
    """

    def __init__(self, output: ReaderOutput[T], index: int) -> None:
        self._output = output
        self._prefix = f"{index}:"

    def collect(self, record: T, timestamp: int | None = None, /) -> None:
        self._output.collect(record, timestamp)

    def collect_batch(
        self, records: Sequence[T], timestamps: Sequence[int | None] | None = None, /
    ) -> None:
        self._output.collect_batch(records, timestamps)

    def emit_watermark(self, timestamp: int, /) -> None:
        self._output.emit_watermark(timestamp)

    def mark_idle(self) -> None:
        self._output.mark_idle()

    def split_output(self, split_id: str, /) -> ReaderOutput[T]:
        return self._output.split_output(self._prefix + split_id)

    def release_split_output(self, split_id: str, /) -> None:
        self._output.release_split_output(self._prefix + split_id)


class _HybridReader(SourceReader[T, HybridSplit]):
    def __init__(self, hybrid: HybridSource[T], context: SourceReaderContext) -> None:
        self._hybrid = hybrid
        self._context = context
        self._index = -1
        self._position: Any = None
        self._is_last = False
        self._reader: SourceReader[T, Any] | None = None
        self._ready = False
        self._starting: asyncio.Task[None] | None = None
        self._reported = False
        self._no_more = False
        self._pending: list[HybridSplit] = []
        self._available: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._output: _PrefixedOutput[T] | None = None

    def _signal(self) -> None:
        if not self._available.done():
            self._available.set_result(None)

    def add_splits(self, splits: Sequence[HybridSplit]) -> None:
        mine = [s.split for s in splits if s.source_index == self._index]
        self._pending.extend(s for s in splits if s.source_index != self._index)
        if mine and self._reader is not None:
            self._reader.add_splits(mine)

    def notify_no_more_splits(self) -> None:
        self._no_more = True
        if self._reader is not None and self._is_last:
            self._reader.notify_no_more_splits()

    def handle_source_event(self, event: Any) -> None:
        if isinstance(event, _SwitchSource):
            if event.index > self._index:
                self._switch(event)
        elif isinstance(event, _NoMoreSplits):
            if event.index == self._index and self._reader is not None:
                self._reader.notify_no_more_splits()
        elif (
            isinstance(event, _SubEvent) and event.index == self._index and self._reader is not None
        ):
            self._reader.handle_source_event(event.event)

    def _switch(self, event: _SwitchSource) -> None:
        previous = self._reader
        self._index = event.index
        self._position = event.start_position
        self._is_last = event.is_last
        self._reported = False
        self._ready = False
        reader = self._reader = event.source.create_reader(self._context)
        self._output = None
        mine = [s.split for s in self._pending if s.source_index == event.index]
        self._pending = [s for s in self._pending if s.source_index > event.index]
        if mine:
            reader.add_splits(mine)
        if self._no_more and self._is_last:
            reader.notify_no_more_splits()
        self._starting = asyncio.get_running_loop().create_task(self._start(previous, reader))

    async def _start(
        self, previous: SourceReader[T, Any] | None, reader: SourceReader[T, Any]
    ) -> None:
        try:
            if previous is not None:
                await previous.close()
            await reader.start()
            self._ready = True
        finally:
            self._signal()

    def poll_next(self, output: ReaderOutput[T]) -> InputStatus:
        starting = self._starting
        if starting is not None and starting.done():
            self._starting = None
            starting.result()  # re-raise a failed switch
        reader = self._reader
        if reader is None or not self._ready or self._reported:
            return InputStatus.NOTHING_AVAILABLE
        if self._output is None:  # one per sub-reader (the task's output never changes)
            self._output = _PrefixedOutput(output, self._index)
        status = reader.poll_next(self._output)
        if status is not InputStatus.END_OF_INPUT or self._is_last:
            return status
        self._reported = True
        self._context.send_source_event(_SourceFinished(self._index))
        return InputStatus.NOTHING_AVAILABLE

    def is_available(self) -> asyncio.Future[None]:
        if self._reader is not None and self._ready and not self._reported:
            return self._reader.is_available()
        if self._available.done():
            self._available = asyncio.get_running_loop().create_future()
        if self._starting is not None and self._starting.done():
            self._signal()
        return self._available

    def snapshot_state(self, checkpoint_id: int) -> list[HybridSplit]:
        current: list[HybridSplit] = []
        if self._reader is not None:
            index, position = self._index, self._position
            current = [
                HybridSplit(index, s, position) for s in self._reader.snapshot_state(checkpoint_id)
            ]
        return current + self._pending

    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        if self._reader is not None and self._ready:
            await self._reader.notify_checkpoint_complete(checkpoint_id)

    def pause_or_resume_splits(self, to_pause: Sequence[str], to_resume: Sequence[str]) -> None:
        if self._reader is None:
            return
        prefix = f"{self._index}:"
        self._reader.pause_or_resume_splits(
            [s.removeprefix(prefix) for s in to_pause if s.startswith(prefix)],
            [s.removeprefix(prefix) for s in to_resume if s.startswith(prefix)],
        )

    async def close(self) -> None:
        if self._starting is not None:
            self._starting.cancel()
        if self._reader is not None:
            await self._reader.close()
