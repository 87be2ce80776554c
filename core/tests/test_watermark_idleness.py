"""Event time when readers run out of splits in a source that does not end.

A continuous source (files discovered over time, say) gives each reader a split, the reader
finishes it and waits for more. Its finished split's watermark must stand, and once every reader
is idle the windows their records filled must fire: downstream, all-idle inputs advance the
watermark to the highest of their last watermarks (Flink's StatusWatermarkValve).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from headwater.core import (
    Boundedness,
    CheckpointConfig,
    CollectSink,
    SplitEnumerator,
    SplitEnumeratorContext,
    StreamEnvironment,
    TumblingEventTimeWindows,
    WatermarkStrategy,
)
from headwater.core._builtins import RangeSplit, _RangeEnumerator, _RangeSource

WINDOW_MS = 100


class _KeepsWaiting(_RangeEnumerator):
    """Hands out its splits, then leaves readers waiting for more (as a file monitor does)."""

    def handle_split_request(self, subtask_index: int) -> None:
        if self._unassigned:
            super().handle_split_request(subtask_index)


class _ContinuousRanges(_RangeSource[int]):
    """Each record is its own event time (ms); one split per range; never ends."""

    def __init__(self, ranges: list[tuple[int, int]]) -> None:
        super().__init__(batch_size=100, rows_per_second=None)
        self._ranges = ranges

    @property
    def boundedness(self) -> Boundedness:
        return Boundedness.CONTINUOUS_UNBOUNDED

    def _splits(self, parallelism: int) -> list[RangeSplit]:
        return [RangeSplit(str(i), a, b) for i, (a, b) in enumerate(self._ranges)]

    def _producer(self) -> Callable[[int, int], list[int]]:
        return lambda start, stop: list(range(start, stop))

    def create_enumerator(
        self, context: SplitEnumeratorContext[RangeSplit]
    ) -> SplitEnumerator[RangeSplit, list[RangeSplit]]:
        return _KeepsWaiting(context, self._splits(context.parallelism))


def _window_counts(
    ranges: list[tuple[int, int]], parallelism: int, until: set[int], timeout: float = 60.0
) -> dict[int, int]:
    watermarks: WatermarkStrategy[int] = (
        WatermarkStrategy.for_monotonous_timestamps()
        .with_timestamp_assigner(lambda record, _ts: record)
        .with_idleness(timedelta(milliseconds=200))
    )
    sink: CollectSink[tuple[int, int]] = CollectSink()

    async def run() -> None:
        env = StreamEnvironment(
            parallelism=parallelism,
            checkpointing=CheckpointConfig(interval=timedelta(milliseconds=100)),
        )
        (
            env.from_source(_ContinuousRanges(ranges), watermarks)
            .map(lambda record: (record // WINDOW_MS, 1))
            .key_by(lambda pair: pair[0])
            .window(TumblingEventTimeWindows.of(timedelta(milliseconds=WINDOW_MS)))
            .reduce(lambda a, b: (a[0], a[1] + b[1]))
            .sink_to(sink)
        )
        client = await env.execute_async("idle readers")
        deadline = time.monotonic() + timeout
        while not until <= {bucket for bucket, _ in sink.results()}:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        await client.cancel()

    asyncio.run(run())
    return dict(sink.results())


def _expected(ranges: list[tuple[int, int]], closed: set[int]) -> dict[int, int]:
    counts = Counter(record // WINDOW_MS for a, b in ranges for record in range(a, b))
    return {bucket: counts[bucket] for bucket in closed}


@pytest.mark.parametrize("parallelism", [1, 2])
def test_readers_out_of_splits_let_every_filled_window_fire(parallelism: int) -> None:
    """Two splits at different event times, each finished and its reader idle: every window
    up to the later split's last full one fires, with every record counted."""
    ranges = [(0, 1_000), (1_000, 2_500)]
    closed = set(range(2_500 // WINDOW_MS - 1))  # the last window needs a later record
    counts = _window_counts(ranges, parallelism, until=closed)
    assert {bucket: counts.get(bucket) for bucket in closed} == _expected(ranges, closed)


def test_finished_split_watermark_stands_while_reader_waits() -> None:
    """One reader, one split: its final watermark fires the windows before the last."""
    ranges = [(0, 700)]
    closed = set(range(700 // WINDOW_MS - 1))
    counts = _window_counts(ranges, 1, until=closed)
    assert {bucket: counts.get(bucket) for bucket in closed} == _expected(ranges, closed)
