"""Keyed state: handles, TTL, and state surviving a restore with another parallelism."""

import asyncio
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from headwater.core import (
    AggregateFunction,
    AggregatingStateDescriptor,
    CheckpointConfig,
    CollectSink,
    DataGenSource,
    ListStateDescriptor,
    MapStateDescriptor,
    ReducingStateDescriptor,
    StateTtlConfig,
    StreamEnvironment,
    TumblingEventTimeWindows,
    ValueStateDescriptor,
    WatermarkStrategy,
    _state,
)
from headwater.core._state_files import write_chunks_to_bytes


class Avg(AggregateFunction[int, list[int], float]):
    def create_accumulator(self) -> list[int]:
        return [0, 0]

    def add(self, value: int, accumulator: list[int]) -> list[int]:
        return [accumulator[0] + value, accumulator[1] + 1]

    def get_result(self, accumulator: list[int]) -> float:
        return accumulator[0] / accumulator[1]


def test_state_handles_are_per_key_and_snapshot_by_key_group() -> None:
    backend = _state.KeyedStateBackend(max_parallelism=128)
    value = backend.get_state(ValueStateDescriptor("v", default=0))
    items = backend.get_state(ListStateDescriptor("l"))
    mapping = backend.get_state(MapStateDescriptor("m"))
    total = backend.get_state(ReducingStateDescriptor("r", reduce=lambda a, b: a + b))
    avg = backend.get_state(AggregatingStateDescriptor("a", aggregate=Avg()))
    for key, n in [("x", 1), ("y", 10), ("x", 3)]:
        backend.current_key = key
        value.update(value.value() + 1)
        items.add(n)
        mapping.put(str(n), n * 2)
        total.add(n)
        avg.add(n)
    backend.current_key = "x"
    assert (value.value(), items.get(), total.get(), avg.get()) == (2, [1, 3], 4, 2.0)
    assert mapping.items() == [("1", 2), ("3", 6)] and mapping.contains("3")
    backend.current_key = "y"
    assert (value.value(), items.get(), total.get()) == (1, [10], 10)
    snapshot = backend.snapshot()
    restored = _state.KeyedStateBackend(max_parallelism=128)
    restored.restore_files([[write_chunks_to_bytes(snapshot)]])
    again = restored.get_state(ListStateDescriptor("l"))
    restored.current_key = "x"
    assert again.get() == [1, 3]


def test_ttl_expires_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_000_000]
    monkeypatch.setattr(_state, "_now_ms", lambda: now[0])
    backend = _state.KeyedStateBackend(max_parallelism=8)
    ttl = StateTtlConfig(ttl=timedelta(seconds=1))
    value = backend.get_state(ValueStateDescriptor("v", ttl=ttl))
    read_refresh = backend.get_state(
        ValueStateDescriptor("w", ttl=StateTtlConfig(ttl=timedelta(seconds=1), update_on_read=True))
    )
    backend.current_key = "k"
    value.update(5)
    read_refresh.update(7)
    now[0] += 800
    assert value.value() == 5 and read_refresh.value() == 7  # the read refreshes w only
    now[0] += 400
    assert value.value() is None  # 1.2 s after the write
    assert read_refresh.value() == 7  # 0.4 s after the last read
    now[0] += 1001
    assert read_refresh.value() is None
    assert list(backend.snapshot()) == []  # expired entries are not checkpointed


def reading(index: int, rng: random.Random) -> dict[str, int]:
    return {"sensor": index % 4, "ts": index * 10}


def window_job(env: StreamEnvironment, sink: CollectSink[Any], count: int) -> None:
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda r, _t: r["ts"]
    )
    (
        env.from_source(
            DataGenSource(reading, count=count, rows_per_second=6_000, num_splits=1), strategy
        )
        .uid("readings")
        .key_by(lambda r: r["sensor"])
        .window(TumblingEventTimeWindows.of(timedelta(seconds=1)))
        .reduce(
            lambda a, b: {
                "sensor": a["sensor"],
                "ts": max(a["ts"], b["ts"]),
                "n": a.get("n", 1) + 1,
            }
        )
        .uid("windows")
        .sink_to(sink)
        .uid("sink")
    )


def test_window_state_survives_a_savepoint_and_a_parallelism_change(tmp_path: Path) -> None:
    count = 4000  # 40 one-second windows x 4 sensors, 25 readings each

    def env(parallelism: int, restore: str | None = None) -> StreamEnvironment:
        return StreamEnvironment(
            parallelism=parallelism,
            checkpointing=CheckpointConfig(
                interval=timedelta(milliseconds=50), storage=tmp_path / "ckpt", restore_from=restore
            ),
        )

    first_sink: CollectSink[Any] = CollectSink()

    async def first() -> Path:
        e = env(2)
        window_job(e, first_sink, count)
        client = await e.execute_async("windows-1")
        await asyncio.sleep(0.3)
        for _ in range(300):  # a loaded machine may need longer for the first windows to fire
            if first_sink.results():
                break
            await asyncio.sleep(0.05)
        return await client.stop_with_savepoint(tmp_path / "sp")

    savepoint = asyncio.run(first())
    second_sink: CollectSink[Any] = CollectSink()
    e = env(3, str(savepoint))
    window_job(e, second_sink, count)
    e.execute("windows-2")
    results = first_sink.results() + second_sink.results()
    assert 0 < len(first_sink.results()) < 160
    per_window = {(r["sensor"], r["ts"] // 1000): r.get("n", 1) for r in results}
    assert len(results) == len(per_window) == 160  # every window fired exactly once
    assert set(per_window.values()) == {25}
