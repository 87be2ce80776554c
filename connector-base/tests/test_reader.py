from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from headwater.connectors.base import (
    BlockingSplitReader,
    FetcherMode,
    RecordEmitter,
    RecordsBySplit,
    SourceReaderBase,
    SplitFetcherManager,
    SplitReader,
)
from headwater.core import InputStatus, ReaderOutput


@dataclass(frozen=True)
class Split:
    split_id: str
    position: int
    end: int


@dataclass
class State:
    position: int
    end: int


def _fetch_from(splits: dict[str, list[int]], paused: set[str], chunk: int) -> RecordsBySplit[int]:
    records: dict[str, list[int]] = {}
    finished = []
    for sid, (pos, end) in list(splits.items()):
        if sid in paused:
            continue
        stop = min(end, pos + chunk)
        records[sid] = list(range(pos, stop))
        splits[sid] = [stop, end]
        if stop >= end:
            finished.append(sid)
            del splits[sid]
    return RecordsBySplit(
        records, finished, size_in_bytes=8 * sum(map(len, records.values())), max_event_time=0
    )


class AsyncNumbers(SplitReader[int, Split]):
    def __init__(self, fail_after: int | None = None) -> None:
        self.splits: dict[str, list[int]] = {}
        self.paused: set[str] = set()
        self.fetches = 0
        self.fail_after = fail_after

    def handle_splits_changes(self, added: Sequence[Split]) -> None:
        for s in added:
            self.splits[s.split_id] = [s.position, s.end]

    def pause_or_resume_splits(self, to_pause: Collection[str], to_resume: Collection[str]) -> None:
        self.paused = (self.paused | set(to_pause)) - set(to_resume)

    async def fetch(self) -> RecordsBySplit[int]:
        self.fetches += 1
        if self.fail_after is not None and self.fetches > self.fail_after:
            raise ConnectionError("broker gone")
        await asyncio.sleep(0)
        return _fetch_from(self.splits, self.paused, 3)


class BlockingNumbers(BlockingSplitReader[int, Split]):
    def __init__(self) -> None:
        self.splits: dict[str, list[int]] = {}
        self.thread: str | None = None

    def handle_splits_changes(self, added: Sequence[Split]) -> None:
        for s in added:
            self.splits[s.split_id] = [s.position, s.end]

    def fetch(self) -> RecordsBySplit[int]:
        self.thread = threading.current_thread().name
        return _fetch_from(self.splits, set(), 4)


class Emitter(RecordEmitter[int, int, State]):
    def emit_record(self, element: int, output: ReaderOutput[int], split_state: State) -> None:
        output.collect(element)
        split_state.position = element + 1


class Reader(SourceReaderBase[int, int, Split, State]):
    finished: list[str]

    def initialized_state(self, split: Split) -> State:
        return State(split.position, split.end)

    def to_split(self, split_id: str, state: State) -> Split:
        return Split(split_id, state.position, state.end)

    def on_split_finished(self, finished: Any) -> None:
        self.__dict__.setdefault("finished", []).extend(finished)


class Output:
    """Collects records in order; split outputs add to the same list and record their split."""

    def __init__(self, parent: Output | None = None, split_id: str | None = None) -> None:
        self.values: list[int] = [] if parent is None else parent.values
        self.by_split: dict[str | None, list[int]] = {} if parent is None else parent.by_split
        self.opened: list[str] = [] if parent is None else parent.opened
        self.released: list[str] = [] if parent is None else parent.released
        self.split_id = split_id

    def collect(self, record: int, timestamp: int | None = None, /) -> None:
        self.values.append(record)
        self.by_split.setdefault(self.split_id, []).append(record)

    def collect_batch(self, records: Sequence[int], /) -> None:
        for record in records:
            self.collect(record)

    def emit_watermark(self, timestamp: int, /) -> None:
        pass

    def mark_idle(self) -> None:
        pass

    def split_output(self, split_id: str, /) -> Output:
        self.opened.append(split_id)
        return Output(self, split_id)

    def release_split_output(self, split_id: str, /) -> None:
        self.released.append(split_id)


async def drain(reader: Reader, output: Output, stop_after: int | None = None) -> InputStatus:
    while True:
        status = reader.poll_next(output)
        if status is InputStatus.END_OF_INPUT:
            return status
        if stop_after is not None and len(output.values) >= stop_after:
            return status
        if status is InputStatus.NOTHING_AVAILABLE:
            await asyncio.wait_for(reader.is_available(), 2)


@pytest.mark.parametrize("mode", list(FetcherMode))
@pytest.mark.parametrize("kind", [AsyncNumbers, BlockingNumbers])
async def test_reads_every_split_to_the_end(
    make_context: Any, mode: FetcherMode, kind: type
) -> None:
    context = make_context()
    reader = Reader(context, SplitFetcherManager(kind, mode=mode), Emitter())
    await reader.start()
    assert context.split_requests == 1
    reader.add_splits([Split("a", 0, 10), Split("b", 100, 107)])
    reader.notify_no_more_splits()
    out = Output()
    assert await drain(reader, out) is InputStatus.END_OF_INPUT
    assert sorted(out.values) == list(range(10)) + list(range(100, 107))
    assert [v for v in out.values if v < 100] == list(range(10))  # per-split order kept
    assert sorted(reader.finished) == ["a", "b"]
    assert reader.snapshot_state(1) == []
    metrics = context.metrics()
    assert metrics["numRecordsIn"] == 17
    assert metrics["numBytesIn"] == 17 * 8
    assert metrics["currentFetchEventTimeLag"] > 0
    await reader.close()


async def test_snapshot_points_at_first_record_not_emitted(make_context: Any) -> None:
    reader = Reader(make_context(), SplitFetcherManager(AsyncNumbers), Emitter())
    reader.add_splits([Split("a", 0, 100)])
    out = Output()
    await drain(reader, out, stop_after=7)
    (split,) = reader.snapshot_state(1)
    assert split == Split("a", len(out.values), 100)
    await reader.close()
    # Restore from the snapshot: continues exactly where it stopped.
    restored = Reader(make_context(), SplitFetcherManager(AsyncNumbers), Emitter())
    restored.add_splits([split])
    restored.notify_no_more_splits()
    rest = Output()
    await drain(restored, rest)
    assert out.values + rest.values == list(range(100))
    await restored.close()


async def test_requests_next_split_when_its_splits_finish(make_context: Any) -> None:
    context = make_context()
    reader = Reader(context, SplitFetcherManager(AsyncNumbers), Emitter())
    reader.add_splits([Split("a", 0, 3)])
    await reader.start()
    assert context.split_requests == 0  # it has a split
    out = Output()
    while reader.poll_next(out) is not InputStatus.NOTHING_AVAILABLE or context.split_requests == 0:
        await asyncio.sleep(0.001)
    assert out.values == [0, 1, 2]
    assert context.split_requests == 1
    await reader.close()


async def test_fetcher_error_reraised_at_next_poll(make_context: Any) -> None:
    reader = Reader(
        make_context(), SplitFetcherManager(lambda: AsyncNumbers(fail_after=1)), Emitter()
    )
    reader.add_splits([Split("a", 0, 1000)])
    out = Output()
    with pytest.raises(ConnectionError, match="broker gone"):
        await drain(reader, out)
    assert out.values in ([], [0, 1, 2])  # the error surfaces at the next poll
    await reader.close()


async def test_pause_and_resume_splits(make_context: Any) -> None:
    readers: list[AsyncNumbers] = []

    def factory() -> AsyncNumbers:
        readers.append(AsyncNumbers())
        return readers[-1]

    reader = Reader(
        make_context(), SplitFetcherManager(factory, mode=FetcherMode.PER_SPLIT), Emitter()
    )
    reader.add_splits([Split("a", 0, 10**6), Split("b", 0, 10**6)])
    reader.pause_or_resume_splits(["b"], [])
    out = Output()
    await drain(reader, out, stop_after=300)
    await asyncio.sleep(0.01)
    fetched_b = readers[1].fetches
    await drain(reader, out, stop_after=600)
    assert readers[1].fetches == fetched_b  # paused: never fetched
    reader.pause_or_resume_splits([], ["b"])
    await drain(reader, out, stop_after=1500)
    assert readers[1].fetches > fetched_b
    await reader.close()


@pytest.mark.parametrize("mode", list(FetcherMode))
async def test_each_split_emits_through_its_own_output(
    make_context: Any, mode: FetcherMode
) -> None:
    """Per-split watermarks need it: no record goes through the reader-wide output."""
    reader = Reader(make_context(), SplitFetcherManager(AsyncNumbers, mode=mode), Emitter())
    reader.add_splits([Split("a", 0, 10), Split("b", 100, 107)])
    out = Output()
    reader.poll_next(out)
    assert sorted(out.opened) == ["a", "b"]  # opened when added, before any record
    reader.add_splits([Split("c", 200, 205)])
    reader.notify_no_more_splits()
    assert await drain(reader, out) is InputStatus.END_OF_INPUT
    assert None not in out.by_split
    assert out.by_split == {
        "a": list(range(10)),
        "b": list(range(100, 107)),
        "c": list(range(200, 205)),
    }
    assert sorted(out.opened) == sorted(out.released) == ["a", "b", "c"]
    await reader.close()
