from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from headwater.connectors.base import HybridSource, HybridSplit, SourceSwitch
from headwater.core import (
    Boundedness,
    CheckpointConfig,
    CollectionSource,
    CollectSink,
    ConfigurationError,
    DataGenSource,
    NumberSequenceSource,
    RangeSplit,
    StreamEnvironment,
)


def test_only_last_source_may_be_unbounded() -> None:
    unbounded = DataGenSource(lambda i, _r: i)
    with pytest.raises(ConfigurationError, match=r"source 0 .* is unbounded"):
        HybridSource(unbounded, CollectionSource([1]))
    assert (
        HybridSource(CollectionSource([1]), unbounded).boundedness
        is Boundedness.CONTINUOUS_UNBOUNDED
    )
    assert (
        HybridSource(CollectionSource([1]), CollectionSource([2])).boundedness
        is Boundedness.BOUNDED
    )


@pytest.mark.parametrize("parallelism", [1, 3])
def test_fixed_then_derived_start_position(parallelism: int) -> None:
    history = list(range(50))
    seen_positions: list[Any] = []

    def create(start: int) -> NumberSequenceSource:
        seen_positions.append(start)
        return NumberSequenceSource(start, start + 30)

    source: HybridSource[int] = HybridSource(
        CollectionSource(history, batch_size=7),
        SourceSwitch(end_position=lambda _enumerator: len(history), create=create),
        NumberSequenceSource(1000, 1010),
    )
    env = StreamEnvironment(parallelism=parallelism)
    got = env.from_source(source).execute_and_collect()
    assert sorted(got) == list(range(80)) + list(range(1000, 1010))
    assert seen_positions[0] == 50


def test_serializers_round_trip() -> None:
    source: HybridSource[int] = HybridSource(
        CollectionSource([1, 2]),
        SourceSwitch(end_position=lambda _e: 5, create=lambda s: NumberSequenceSource(s, s + 5)),
    )
    serializer = source.split_serializer()
    split = HybridSplit(1, RangeSplit("0", 6, 10), 5)
    assert serializer.deserialize(serializer.version, serializer.serialize(split)) == split
    assert split.split_id == "1:0"


async def _until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until ``condition()`` holds (results grow as checkpoints complete)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting for results"
        await asyncio.sleep(0.02)


async def test_restore_in_the_second_source(tmp_path: Path) -> None:
    """A checkpoint taken while reading the second source restores into the second source."""
    history = list(range(20))

    def build() -> StreamEnvironment:
        env = StreamEnvironment(
            parallelism=2,
            checkpointing=CheckpointConfig(
                interval=timedelta(milliseconds=50),
                storage=tmp_path / "ckpt",
                restore_from="latest",
            ),
        )
        return env

    live = DataGenSource(lambda i, _r: i, rows_per_second=400, batch_size=10, num_splits=2)
    source: HybridSource[int] = HybridSource(CollectionSource(history), live)
    env = build()
    sink: CollectSink[int] = CollectSink()
    env.from_source(source).sink_to(sink)
    client = await env.execute_async("hybrid")
    await _until(lambda: len(sink.results()) > len(history) + 20)  # into the live source
    savepoint = await client.stop_with_savepoint(tmp_path / "sp")
    first = sink.results()
    assert set(history) <= set(first)
    assert len(first) > len(history)  # read into the live source

    env2 = StreamEnvironment(
        parallelism=2,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=50), restore_from=str(savepoint)
        ),
    )
    sink2: CollectSink[int] = CollectSink()
    env2.from_source(HybridSource(CollectionSource(history), live)).sink_to(sink2)
    client2 = await env2.execute_async("hybrid-restored")
    await _until(lambda: len(sink2.results()) > 20)
    await client2.cancel()
    second = sink2.results()
    assert second, "the restored job read on"
    assert not set(second) & set(history), "the history is not read again"
    assert not set(second) & set(first), "no duplicates across the savepoint"


class DiscoveringSource(CollectionSource[int]):
    """A bounded source whose enumerator runs periodic discovery, counting the calls."""

    def __init__(self, records: list[int], calls: list[float]) -> None:
        super().__init__(records, batch_size=5)
        self.calls = calls

    def create_enumerator(self, context: Any) -> Any:
        calls = self.calls

        async def discover() -> None:
            calls.append(asyncio.get_running_loop().time())

        context.call_periodically(discover, timedelta(milliseconds=10))
        return super().create_enumerator(context)


async def test_discovery_of_a_finished_source_stops_at_the_switch() -> None:
    calls: list[float] = []
    live = DataGenSource(lambda i, _r: 1000 + i, rows_per_second=200, batch_size=10, num_splits=1)
    source: HybridSource[int] = HybridSource(DiscoveringSource(list(range(20)), calls), live)
    env = StreamEnvironment(
        parallelism=2, checkpointing=CheckpointConfig(interval=timedelta(milliseconds=50))
    )
    sink: CollectSink[int] = CollectSink()
    env.from_source(source).sink_to(sink)
    client = await env.execute_async("hybrid-discovery")
    for _ in range(200):
        if any(r >= 1000 for r in sink.results()):
            break
        await asyncio.sleep(0.02)
    assert any(r >= 1000 for r in sink.results()), "switched to the live source"
    after_switch = len(calls)
    await asyncio.sleep(0.2)
    await client.cancel()
    assert len(calls) == after_switch, "the first source's discovery still runs"
