"""Broadcast state: every subtask sees every broadcast record; the state survives a rescale."""

import asyncio
import random
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from headwater.core import (
    BroadcastContext,
    BroadcastProcessFunction,
    CheckpointConfig,
    CollectSink,
    DataGenSource,
    JobFailedError,
    NoRestart,
    ReadOnlyBroadcastContext,
    RuntimeContext,
    StreamEnvironment,
)


class Thresholds(BroadcastProcessFunction[int, tuple[str, int], tuple[Any, ...]]):
    """Rules ``(name, limit)`` are broadcast; main records report which rules they exceed."""

    def open(self, context: RuntimeContext) -> None:
        self.subtask = context.subtask_index

    def process_element(
        self, value: int, ctx: ReadOnlyBroadcastContext
    ) -> Iterable[tuple[Any, ...]]:
        rules = ctx.broadcast_state("rules")
        yield ("event", value, sorted(name for name, limit in rules.items() if value > limit))

    def process_broadcast_element(
        self, value: tuple[str, int], ctx: BroadcastContext
    ) -> Iterable[tuple[Any, ...]]:
        ctx.broadcast_state("rules")[value[0]] = value[1]
        yield ("rule", self.subtask, value[0])


def test_every_subtask_gets_every_broadcast_record() -> None:
    env = StreamEnvironment(parallelism=3)
    rules = env.from_collection([("low", 10), ("mid", 50), ("high", 90)])
    events = env.from_collection([5, 60, 95])
    out = events.rebalance().connect(rules).process(Thresholds()).execute_and_collect()
    acks = {(subtask, name) for kind, subtask, name in out if kind == "rule"}
    assert acks == {(s, n) for s in range(3) for n in ("low", "mid", "high")}
    assert sorted(v for kind, v, _ in out if kind == "event") == [5, 60, 95]


def number(index: int, rng: random.Random) -> int:
    return index % 100


def test_broadcast_state_survives_a_savepoint_and_a_rescale(tmp_path: Path) -> None:
    def job(parallelism: int, restore: str | None, sink: CollectSink[Any]) -> StreamEnvironment:
        env = StreamEnvironment(
            parallelism=parallelism,
            checkpointing=CheckpointConfig(
                interval=timedelta(milliseconds=50), storage=tmp_path / "c", restore_from=restore
            ),
        )
        rules = env.from_collection([("low", 10), ("high", 90)]).uid("rules")
        events = env.from_source(
            DataGenSource(number, count=3000, rows_per_second=3000), name="events"
        ).uid("events")
        events.connect(rules).process(Thresholds()).uid("thresholds").sink_to(sink).uid("sink")
        return env

    async def first() -> Path:
        client = await job(2, None, CollectSink()).execute_async("first")
        await asyncio.sleep(0.4)
        return await client.stop_with_savepoint(tmp_path / "sp")

    savepoint = asyncio.run(first())
    sink: CollectSink[Any] = CollectSink()
    job(3, str(savepoint), sink).execute("second")
    events = [(v, exceeded) for kind, v, exceeded in sink.results() if kind == "event"]
    assert events, "the restored job processed events"
    assert not [r for r in sink.results() if r[0] == "rule"]  # the rules were not read again
    for value, exceeded in events:  # yet every subtask of the rescaled job knows both rules
        assert exceeded == sorted(n for n, limit in (("low", 10), ("high", 90)) if value > limit)


class TypedRules(BroadcastProcessFunction[int, tuple[str, int], tuple[Any, ...]]):
    """Broadcast state under tuple keys holding Decimals and datetimes with a time zone."""

    def process_element(
        self, value: int, ctx: ReadOnlyBroadcastContext
    ) -> Iterable[tuple[Any, ...]]:
        yield ("event", value, sorted(ctx.broadcast_state("rules").items()))

    def process_broadcast_element(
        self, value: tuple[str, int], ctx: BroadcastContext
    ) -> Iterable[tuple[Any, ...]]:
        ctx.broadcast_state("rules")[(value[0], value[1])] = (Decimal(value[1]) / 4, SINCE)
        yield ("rule", value[0])


SINCE = datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=-5)))


def test_broadcast_state_keeps_its_types_across_a_savepoint(tmp_path: Path) -> None:
    def job(restore: str | None, sink: CollectSink[Any]) -> StreamEnvironment:
        env = StreamEnvironment(parallelism=2, checkpointing=CheckpointConfig(restore_from=restore))
        rules = env.from_collection([("low", 10), ("high", 90)]).uid("rules")
        events = env.from_source(
            DataGenSource(number, count=3000, rows_per_second=3000), name="events"
        ).uid("events")
        events.connect(rules).process(TypedRules()).uid("typed").sink_to(sink).uid("sink")
        return env

    async def first() -> Path:
        client = await job(None, CollectSink()).execute_async("first")
        await asyncio.sleep(0.4)
        return await client.stop_with_savepoint(tmp_path / "sp")

    savepoint = asyncio.run(first())
    sink: CollectSink[Any] = CollectSink()
    job(str(savepoint), sink).execute("second")
    states = [rules for kind, _, rules in sink.results() if kind == "event"]
    assert states, "the restored job processed events"
    expected = [(("high", 90), (Decimal("22.5"), SINCE)), (("low", 10), (Decimal("2.5"), SINCE))]
    for rules in states:
        assert rules == expected
        for key, (limit, since) in rules:
            assert type(key) is tuple and type(limit) is Decimal
            assert since.utcoffset() == timedelta(hours=-5)


class Opaque:
    """Not a type the state codec writes (no serializer registered)."""


class StoresOpaque(BroadcastProcessFunction[int, int, int]):
    def process_element(self, value: int, ctx: ReadOnlyBroadcastContext) -> Iterable[int]:
        yield value

    def process_broadcast_element(self, value: int, ctx: BroadcastContext) -> Iterable[int]:
        ctx.broadcast_state("handles")[value] = Opaque()
        return ()


def test_broadcast_state_refuses_an_unsupported_value_when_it_is_written() -> None:
    """No checkpoint is configured: only the write itself can fail the job."""
    env = StreamEnvironment(parallelism=1, restart_strategy=NoRestart())
    main = env.from_collection([1, 2, 3])
    main.connect(env.from_collection([7])).process(StoresOpaque()).uid("op").sink_to(CollectSink())
    with pytest.raises(JobFailedError) as failure:
        env.execute("opaque-broadcast")
    message = str(failure.value)
    assert "broadcast state 'handles'" in message and "Opaque" in message
    assert "register_state_serializer" in message
