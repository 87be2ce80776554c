"""Built-in sources and sinks: collection, iterable, number sequence, DataGen; print, collect, discard."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from headwater.core._errors import ConfigurationError
from headwater.core._serialization import JsonSerializer, VersionedSerializer
from headwater.core._settings import check_int, check_number
from headwater.core._sink import (
    CommitRequest,
    Committer,
    CommittingSinkWriter,
    DeliveryGuarantee,
    Sink,
    SinkWriter,
    TwoPhaseCommittingSink,
    WriterInitContext,
)
from headwater.core._source import (
    Boundedness,
    InputStatus,
    ReaderOutput,
    Source,
    SourceReader,
    SourceReaderContext,
    SplitEnumerator,
    SplitEnumeratorContext,
)

__all__ = [
    "CollectSink",
    "CollectionSource",
    "DataGenSource",
    "DiscardingSink",
    "IterableSource",
    "NumberSequenceSource",
    "PrintSink",
    "RangeSplit",
]

T = TypeVar("T")

UNBOUNDED_SPLIT_SPAN = 2**40
"""Indices per split of an unbounded DataGen source: split ``k`` generates ``k * 2**40`` onwards."""
_BLOCK = 1024
"""DataGen seeds its random generator per block of this many indices, so replays are identical."""


# -- splits and their enumerator --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RangeSplit:
    """A contiguous range of record indices ``[position, end)``; ``position`` is the next to emit."""

    split_id: str
    position: int
    end: int


RANGE_SPLIT_SERIALIZER: VersionedSerializer[RangeSplit] = JsonSerializer(
    version=1,
    to_json=lambda s: [s.split_id, s.position, s.end],
    from_json=lambda _v, d: RangeSplit(d[0], d[1], d[2]),
)
RANGE_ENUMERATOR_SERIALIZER: VersionedSerializer[list[RangeSplit]] = JsonSerializer(
    version=1,
    to_json=lambda splits: [[s.split_id, s.position, s.end] for s in splits],
    from_json=lambda _v, d: [RangeSplit(a, b, c) for a, b, c in d],
)


class _RangeEnumerator(SplitEnumerator[RangeSplit, list[RangeSplit]]):
    """Hands out a fixed list of splits, one per request (readers pull, so load balances)."""

    def __init__(
        self, context: SplitEnumeratorContext[RangeSplit], splits: list[RangeSplit]
    ) -> None:
        self._context = context
        self._unassigned = deque(splits)

    def handle_split_request(self, subtask_index: int) -> None:
        if self._unassigned:
            self._context.assign_splits({subtask_index: [self._unassigned.popleft()]})
        else:
            self._context.signal_no_more_splits(subtask_index)

    def add_reader(self, subtask_index: int) -> None:
        """Readers ask for splits themselves."""

    def add_splits_back(self, splits: Sequence[RangeSplit], subtask_index: int) -> None:
        self._unassigned.extendleft(reversed(splits))

    def snapshot_state(self, checkpoint_id: int) -> list[RangeSplit]:
        return list(self._unassigned)


class _RangeReader(SourceReader[T, RangeSplit]):
    """Reads range splits one after another; subclasses turn ``[start, stop)`` into records.

    Each split's records go through its own split output (opened at the first poll after the
    split is added, released when it ends), so event time is tracked per split.
    """

    def __init__(
        self,
        context: SourceReaderContext,
        produce: Callable[[int, int], list[T]],
        batch_size: int,
        rate_per_second: float | None,
    ) -> None:
        self._context = context
        self._produce = produce
        self._batch = batch_size
        self._splits: deque[RangeSplit] = deque()
        self._current: RangeSplit | None = None
        self._unopened: list[str] = []
        self._no_more = False
        self._waiting = False
        self._available: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rate = rate_per_second
        self._started_at = 0.0
        self._emitted = 0

    async def start(self) -> None:
        self._started_at = time.monotonic()
        if not self._splits:
            self._request()

    def _request(self) -> None:
        self._waiting = True
        self._context.send_split_request()

    def _signal(self) -> None:
        if not self._available.done():
            self._available.set_result(None)

    def add_splits(self, splits: Sequence[RangeSplit]) -> None:
        self._splits.extend(splits)
        self._unopened.extend(s.split_id for s in splits)
        self._waiting = False
        self._signal()

    def notify_no_more_splits(self) -> None:
        self._no_more = True
        self._waiting = False
        self._signal()

    def is_available(self) -> asyncio.Future[None]:
        if self._available.done():
            self._available = asyncio.get_running_loop().create_future()
        if self._rate is not None and (self._current or self._splits):
            delay = max(0.001, self._batch_tokens_wait())
            asyncio.get_running_loop().call_later(delay, self._signal)
        return self._available

    def _batch_tokens_wait(self) -> float:
        assert self._rate is not None
        wanted = max(1.0, min(self._batch, self._rate * 0.01))
        allowed = (time.monotonic() - self._started_at) * self._rate - self._emitted
        return (wanted - allowed) / self._rate

    def poll_next(self, output: ReaderOutput[T]) -> InputStatus:
        for split_id in self._unopened:  # each added split holds back the watermark from now on
            output.split_output(split_id)
        self._unopened = []
        split = self._current
        if split is None:
            if not self._splits:
                if self._no_more:
                    return InputStatus.END_OF_INPUT
                if not self._waiting:
                    self._request()
                return InputStatus.NOTHING_AVAILABLE
            split = self._current = self._splits.popleft()
        count = min(self._batch, split.end - split.position)
        if self._rate is not None:
            allowed = int((time.monotonic() - self._started_at) * self._rate) - self._emitted
            if allowed <= 0:
                return InputStatus.NOTHING_AVAILABLE
            count = min(count, allowed)
        stop = split.position + count
        records = self._produce(split.position, stop)
        output.split_output(split.split_id).collect_batch(records)
        self._emitted += len(records)
        if len(records) < count or stop >= split.end:  # a short batch ends an iterable's split
            output.release_split_output(split.split_id)
            self._current = None
            if not self._splits and not self._no_more:
                self._request()
        else:
            self._current = dataclasses.replace(split, position=stop)
        return InputStatus.MORE_AVAILABLE

    def snapshot_state(self, checkpoint_id: int) -> list[RangeSplit]:
        current = [self._current] if self._current is not None else []
        return current + list(self._splits)


class _RangeSource(Source[T, RangeSplit, list[RangeSplit]]):
    """Shared machinery of the index-range sources."""

    def __init__(self, batch_size: int, rows_per_second: float | None) -> None:
        owner = type(self).__name__
        check_int(owner, "batch_size", batch_size, minimum=1)
        check_number(owner, "rows_per_second", rows_per_second, positive=True, optional=True)
        self._batch_size = batch_size
        self._rows_per_second = rows_per_second

    @property
    def boundedness(self) -> Boundedness:
        return Boundedness.BOUNDED

    def _splits(self, parallelism: int) -> list[RangeSplit]:
        raise NotImplementedError

    def _producer(self) -> Callable[[int, int], list[T]]:
        raise NotImplementedError

    def create_enumerator(
        self, context: SplitEnumeratorContext[RangeSplit]
    ) -> SplitEnumerator[RangeSplit, list[RangeSplit]]:
        return _RangeEnumerator(context, self._splits(context.parallelism))

    def restore_enumerator(
        self, context: SplitEnumeratorContext[RangeSplit], state: list[RangeSplit]
    ) -> SplitEnumerator[RangeSplit, list[RangeSplit]]:
        return _RangeEnumerator(context, state)

    def create_reader(self, context: SourceReaderContext) -> SourceReader[T, RangeSplit]:
        rate = (
            None if self._rows_per_second is None else self._rows_per_second / context.parallelism
        )
        return _RangeReader(context, self._producer(), self._batch_size, rate)

    def split_serializer(self) -> VersionedSerializer[RangeSplit]:
        return RANGE_SPLIT_SERIALIZER

    def enumerator_state_serializer(self) -> VersionedSerializer[list[RangeSplit]]:
        return RANGE_ENUMERATOR_SERIALIZER


def _even_ranges(start: int, end: int, parts: int) -> list[RangeSplit]:
    size = end - start
    bounds = [start + size * i // parts for i in range(parts + 1)]
    return [
        RangeSplit(str(i), bounds[i], bounds[i + 1])
        for i in range(parts)
        if bounds[i] < bounds[i + 1]
    ]


class CollectionSource(_RangeSource[T]):
    """A bounded source over an in-memory list; the checkpointed position is an index."""

    def __init__(self, records: Sequence[T], *, batch_size: int = 1000) -> None:
        super().__init__(batch_size, None)
        self._records = records

    @property
    def expected_records(self) -> int:
        """The collection's length."""
        return len(self._records)

    def _splits(self, parallelism: int) -> list[RangeSplit]:
        return _even_ranges(0, len(self._records), 1)

    def _producer(self) -> Callable[[int, int], list[T]]:
        records = self._records
        return lambda start, stop: list(records[start:stop])


class IterableSource(_RangeSource[T]):
    """A bounded source over a re-iterable; after a restore the part already read is skipped."""

    def __init__(self, iterable: Iterable[T], *, batch_size: int = 1000) -> None:
        super().__init__(batch_size, None)
        if iter(iterable) is iterable:
            raise ConfigurationError(
                "from_iterable(): got a one-shot iterator; pass a re-iterable (a list, a range, "
                "an object with __iter__) so the source can be restored"
            )
        self._iterable = iterable

    def _splits(self, parallelism: int) -> list[RangeSplit]:
        return [RangeSplit("0", 0, UNBOUNDED_SPLIT_SPAN)]

    def _producer(self) -> Callable[[int, int], list[T]]:
        iterable = self._iterable
        state: dict[str, Any] = {"it": None, "at": 0}

        def produce(start: int, stop: int) -> list[T]:
            if state["it"] is None or state["at"] != start:
                state["it"] = iter(iterable)
                state["at"] = 0
                next(itertools.islice(state["it"], start, start), None)
                state["at"] = start
            chunk = list(itertools.islice(state["it"], stop - start))
            state["at"] += len(chunk)
            return chunk

        return produce


class NumberSequenceSource(_RangeSource[int]):
    """The integers ``[start, end)``, split into ranges read in parallel."""

    def __init__(self, start: int, end: int, *, batch_size: int = 1000) -> None:
        super().__init__(batch_size, None)
        if end < start:
            raise ConfigurationError(f"NumberSequenceSource: end ({end}) is below start ({start})")
        self._start = start
        self._end = end

    @property
    def expected_records(self) -> int:
        """``end - start``."""
        return self._end - self._start

    def _splits(self, parallelism: int) -> list[RangeSplit]:
        return _even_ranges(self._start, self._end, max(1, parallelism))

    def _producer(self) -> Callable[[int, int], list[int]]:
        return lambda start, stop: list(range(start, stop))


class DataGenSource(_RangeSource[T]):
    """Generated records: ``generator(index, rng)`` for each index, seeded and replayable.

    Args:
        generator: builds the record at ``index``; draw randomness only from ``rng``, which is
            seeded from ``seed`` and the index's block, so a restored job regenerates the same records.
        count: how many records (bounded); ``None`` for an unbounded source.
        rows_per_second: a rate limit for the whole source (shared evenly by its readers).
        seed: the seed of every generated record.
        num_splits: parallel splits (default: the source's parallelism).
        batch_size: records generated per poll.
    """

    def __init__(
        self,
        generator: Callable[[int, random.Random], T],
        *,
        count: int | None = None,
        rows_per_second: float | None = None,
        seed: int = 0,
        num_splits: int | None = None,
        batch_size: int = 1000,
    ) -> None:
        super().__init__(batch_size, rows_per_second)
        if not callable(generator):
            raise ConfigurationError(
                f"DataGenSource: generator must be a function (index, rng) -> record, "
                f"got {type(generator).__name__}"
            )
        check_int("DataGenSource", "count", count, minimum=0, optional=True)
        check_int("DataGenSource", "seed", seed)
        check_int("DataGenSource", "num_splits", num_splits, minimum=1, optional=True)
        self._generator = generator
        self._count = count
        self._seed = seed
        self._num_splits = num_splits

    @property
    def boundedness(self) -> Boundedness:
        return Boundedness.BOUNDED if self._count is not None else Boundedness.CONTINUOUS_UNBOUNDED

    @property
    def expected_records(self) -> int | None:
        """``count`` (``None``: unbounded)."""
        return self._count

    def _splits(self, parallelism: int) -> list[RangeSplit]:
        parts = self._num_splits or parallelism
        if self._count is not None:
            return _even_ranges(0, self._count, parts)
        return [
            RangeSplit(str(k), k * UNBOUNDED_SPLIT_SPAN, (k + 1) * UNBOUNDED_SPLIT_SPAN)
            for k in range(parts)
        ]

    def _producer(self) -> Callable[[int, int], list[T]]:
        generator = self._generator
        seed = self._seed
        rng = random.Random()
        cursor = {"next": -1}

        def produce(start: int, stop: int) -> list[T]:
            out: list[T] = []
            index = start
            if cursor["next"] != start or start % _BLOCK == 0:
                # Re-seed at the block start and replay up to ``start`` (only after a restore).
                block_start = start - start % _BLOCK
                rng.seed(seed * 1_000_003 + block_start // _BLOCK)
                for skipped in range(block_start, start):
                    generator(skipped, rng)
            while index < stop:
                block_end = min(stop, index - index % _BLOCK + _BLOCK)
                out.extend([generator(i, rng) for i in range(index, block_end)])
                index = block_end
                if index % _BLOCK == 0 and index < stop:
                    rng.seed(seed * 1_000_003 + index // _BLOCK)
            cursor["next"] = stop
            return out

        return produce


# -- sinks -------------------------------------------------------------------------------------
class _PrintWriter(SinkWriter[Any]):
    def __init__(self, prefix: str, parallelism: int, subtask: int) -> None:
        label = f"{subtask + 1}> " if parallelism > 1 else ""
        self._prefix = f"{prefix}{label}"

    async def write_batch(self, records: Sequence[Any]) -> None:
        prefix = self._prefix
        sys.stdout.write("".join(f"{prefix}{r}\n" for r in records))

    async def flush(self, end_of_input: bool) -> None:
        sys.stdout.flush()


class PrintSink(Sink[Any]):
    """Prints every record to standard output (prefixed with the subtask when parallel)."""

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix

    @property
    def delivery_guarantee(self) -> DeliveryGuarantee:
        return DeliveryGuarantee.NONE

    def create_writer(self, context: WriterInitContext) -> SinkWriter[Any]:
        return _PrintWriter(self._prefix, context.parallelism, context.subtask_index)


class _DiscardingWriter(SinkWriter[Any]):
    async def write_batch(self, records: Sequence[Any]) -> None:
        """Drop the records."""


class DiscardingSink(Sink[Any]):
    """Drops every record (for benchmarks and tests of sources)."""

    @property
    def delivery_guarantee(self) -> DeliveryGuarantee:
        return DeliveryGuarantee.NONE

    def create_writer(self, context: WriterInitContext) -> SinkWriter[Any]:
        return _DiscardingWriter()


class _CollectWriter(CommittingSinkWriter[T, str]):
    def __init__(self, sink: CollectSink[T], context: WriterInitContext) -> None:
        self._sink = sink
        # Unique per writer: a job restored into the same sink object starts at attempt 0 again.
        self._prefix = f"{next(sink._writers)}-{context.subtask_index}"
        self._buffer: list[T] = []
        self._sequence = 0

    async def write_batch(self, records: Sequence[T]) -> None:
        self._buffer.extend(records)

    async def prepare_commit(self) -> list[str]:
        if not self._buffer:
            return []
        self._sequence += 1
        token = f"{self._prefix}-{self._sequence}"
        self._sink._staged[token] = self._buffer
        self._buffer = []
        return [token]


class _CollectCommitter(Committer[str]):
    def __init__(self, sink: CollectSink[Any]) -> None:
        self._sink = sink

    async def commit(self, requests: Sequence[CommitRequest[str]]) -> None:
        for request in requests:
            staged = self._sink._staged.pop(request.committable, None)
            if staged is None:
                request.signal_already_committed()
            else:
                self._sink._results.extend(staged)


class CollectSink(TwoPhaseCommittingSink[T, str]):
    """Collects records in this process, exactly once: records become visible on checkpoint commit.

    Used by :meth:`DataStream.execute_and_collect`. Not for jobs that run in another process.
    """

    def __init__(self) -> None:
        self._staged: dict[str, list[T]] = {}
        self._results: list[T] = []
        self._writers = itertools.count()

    def results(self) -> list[T]:
        """The committed records, in commit order."""
        return list(self._results)

    def create_writer(self, context: WriterInitContext) -> CommittingSinkWriter[T, str]:
        return _CollectWriter(self, context)

    def create_committer(self, context: WriterInitContext) -> Committer[str]:
        return _CollectCommitter(self)

    def committable_serializer(self) -> VersionedSerializer[str]:
        return JsonSerializer(version=1, to_json=lambda t: t, from_json=lambda _v, d: str(d))
