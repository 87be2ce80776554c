"""Window aggregations (count, sum, min, max, avg, reduce/aggregate with the window): exact results.

Every test computes the same windows directly from the input (Decimals, datetimes, out-of-order
timestamps) and compares them with the job's output, record by record.
"""

import asyncio
import random
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from headwater.core import (
    AggregateFunction,
    CheckpointConfig,
    CollectSink,
    ConfigurationError,
    DataGenSource,
    EventTimeSessionWindows,
    SlidingEventTimeWindows,
    StreamEnvironment,
    TumblingEventTimeWindows,
    WatermarkStrategy,
    WindowResult,
)
from headwater.core._aggregations import Avg, Count, Max, Min, Sum
from headwater.core.testing import ScriptedSource
from headwater.core.testing import Timestamped as T

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BASE = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
BASE_MS = int((BASE - EPOCH).total_seconds() * 1000)
USERS = ("ann", "bob", "cy")
COUNT = 3000


def order(index: int, rng: random.Random) -> dict[str, Any]:
    """An order whose timestamp is up to 400 ms earlier than its position (out of order)."""
    at = BASE + timedelta(milliseconds=index * 10 - rng.randrange(400))
    return {
        "user": USERS[index % 3 if index % 7 else 0],
        "amount": Decimal(rng.randrange(1, 10_000)) / 100,
        "at": at,
        "id": index,
    }


def inputs() -> list[dict[str, Any]]:
    """The orders the job reads, generated the same way (DataGenSource's per-index seeding)."""
    env = StreamEnvironment()
    return sorted(
        env.from_source(DataGenSource(order, count=COUNT)).execute_and_collect(),
        key=lambda o: o["id"],
    )


def millis(at: datetime) -> int:
    return int((at - EPOCH) / timedelta(milliseconds=1))


STRATEGY = WatermarkStrategy.for_bounded_out_of_orderness(
    timedelta(milliseconds=500)
).with_timestamp_assigner(lambda o, _: millis(o["at"]))


def expected_tumbling(
    records: list[dict[str, Any]], size: timedelta, fold: Callable[[list[dict[str, Any]]], Any]
) -> dict[tuple[str, datetime, datetime], Any]:
    """The windows computed directly: group by (user, window start), then fold each group."""
    groups: dict[tuple[str, datetime, datetime], list[dict[str, Any]]] = defaultdict(list)
    for o in records:
        start = EPOCH + (o["at"] - EPOCH) // size * size
        groups[(o["user"], start, start + size)].append(o)
    return {k: fold(v) for k, v in groups.items()}


def as_map(results: list[WindowResult[str, Any]]) -> dict[tuple[str, datetime, datetime], Any]:
    keyed = {(r.key, r.start, r.end): r.value for r in results}
    assert len(keyed) == len(results), "a window fired twice"
    return keyed


AGGREGATIONS: dict[str, tuple[Callable[..., Any], Callable[[list[dict[str, Any]]], Any]]] = {
    "count": (lambda w: w.count(), len),
    "sum": (lambda w: w.sum("amount"), lambda os: sum(o["amount"] for o in os)),
    "min": (lambda w: w.min("at"), lambda os: min(o["at"] for o in os)),
    "max": (lambda w: w.max("amount"), lambda os: max(o["amount"] for o in os)),
    "avg": (
        lambda w: w.avg("amount"),
        lambda os: sum((o["amount"] for o in os), Decimal(0)) / len(os),
    ),
}


@pytest.mark.parametrize("name", sorted(AGGREGATIONS))
def test_builtin_aggregations_on_out_of_order_input_match_a_direct_computation(name: str) -> None:
    build, fold = AGGREGATIONS[name]
    env = StreamEnvironment(parallelism=2)
    windowed = (
        env.from_source(DataGenSource(order, count=COUNT), STRATEGY)
        .key_by(lambda o: o["user"])
        .window(TumblingEventTimeWindows.of(timedelta(seconds=2)))
    )
    results = build(windowed).execute_and_collect()
    assert all(isinstance(r, WindowResult) for r in results)
    expected = expected_tumbling(inputs(), timedelta(seconds=2), fold)
    got = as_map(results)
    assert got == expected
    for key, value in got.items():  # the values keep their types
        assert type(value) is type(expected[key])


def test_sliding_sum_of_decimals_sees_every_window_of_every_record() -> None:
    env = StreamEnvironment()
    size, slide = timedelta(seconds=3), timedelta(seconds=1)
    results = (
        env.from_source(DataGenSource(order, count=COUNT), STRATEGY)
        .key_by(lambda o: o["user"])
        .window(SlidingEventTimeWindows.of(size, slide))
        .sum("amount")
        .execute_and_collect()
    )
    expected: dict[tuple[str, datetime, datetime], Decimal] = defaultdict(Decimal)
    for o in inputs():
        last = EPOCH + (o["at"] - EPOCH) // slide * slide
        for back in range(3):
            start = last - back * slide
            expected[(o["user"], start, start + size)] += o["amount"]
    assert as_map(results) == expected


def test_session_windows_count_and_bounds_after_merging() -> None:
    steps = [
        T(("a", 1), 1000),
        T(("a", 2), 3000),  # gap 2 s: a separate session ...
        T(("a", 3), 2000),  # ... until this record bridges [1000, 3000) and [3000, 5000)
        T(("b", 4), 1500),
        T(("a", 5), 9000),
    ]
    env = StreamEnvironment()
    results = (
        env.from_source(ScriptedSource(steps))
        .key_by(lambda r: r[0])
        .window(EventTimeSessionWindows.with_gap(timedelta(seconds=2)))
        .sum(1)
        .execute_and_collect()
    )

    def at(seconds: float) -> datetime:
        return EPOCH + timedelta(seconds=seconds)

    assert sorted(results, key=lambda r: (r.key, r.start)) == [
        WindowResult("a", at(1), at(5), 6),
        WindowResult("a", at(9), at(11), 5),
        WindowResult("b", at(1.5), at(3.5), 4),
    ]


class Spread(AggregateFunction[dict[str, Any], tuple[Decimal, Decimal], Decimal]):
    """max - min of the amounts, with a two-value accumulator."""

    def create_accumulator(self) -> tuple[Decimal, Decimal]:
        return (Decimal("Infinity"), Decimal("-Infinity"))

    def add(self, value: dict[str, Any], acc: tuple[Decimal, Decimal]) -> tuple[Decimal, Decimal]:
        return (min(acc[0], value["amount"]), max(acc[1], value["amount"]))

    def get_result(self, acc: tuple[Decimal, Decimal]) -> Decimal:
        return acc[1] - acc[0]


def test_aggregate_and_reduce_with_the_window_see_key_and_bounds() -> None:
    env = StreamEnvironment()
    windowed = (
        env.from_source(DataGenSource(order, count=COUNT), STRATEGY)
        .key_by(lambda o: o["user"])
        .window(TumblingEventTimeWindows.of(timedelta(seconds=5)))
    )
    spread = windowed.aggregate(Spread(), with_window=True)
    latest = windowed.reduce(lambda a, b: b if b["at"] > a["at"] else a, with_window=True)
    spread_sink: CollectSink[WindowResult[str, Decimal]] = CollectSink()
    latest_sink: CollectSink[WindowResult[str, dict[str, Any]]] = CollectSink()
    spread.sink_to(spread_sink)
    latest.sink_to(latest_sink)
    env.execute("with window")
    records = inputs()
    size = timedelta(seconds=5)
    assert as_map(spread_sink.results()) == expected_tumbling(
        records, size, lambda os: max(o["amount"] for o in os) - min(o["amount"] for o in os)
    )
    assert as_map(latest_sink.results()) == expected_tumbling(
        records, size, lambda os: max(os, key=lambda o: (o["at"], -o["id"]))
    )


def test_without_the_window_aggregate_emits_the_bare_result() -> None:
    env = StreamEnvironment()
    results = (
        env.from_source(ScriptedSource([T(("a", 1), 10), T(("a", 2), 20)]))
        .key_by(lambda r: r[0])
        .window(TumblingEventTimeWindows.of(timedelta(seconds=1)))
        .aggregate(Count())
        .execute_and_collect()
    )
    assert results == [2]


def test_accumulators_hold_one_value_not_the_records() -> None:
    """Incremental: after many records a window's accumulator is still one small value."""
    rows = [{"x": Decimal(i)} for i in range(1000)]
    cases: list[tuple[AggregateFunction[Any, Any, Any], Any]] = [
        (Count(), 1000),
        (Sum("x"), Decimal(499500)),
        (Min("x"), Decimal(0)),
        (Max("x"), Decimal(999)),
        (Avg("x"), Decimal("499.5")),
    ]
    for function, expected in cases:
        acc = function.create_accumulator()
        for row in rows:
            acc = function.add(row, acc)
        assert not isinstance(acc, list) and (not isinstance(acc, tuple) or len(acc) == 2)
        assert function.get_result(acc) == expected
        half = function.create_accumulator()
        for row in rows[:400]:
            half = function.add(row, half)
        rest = function.create_accumulator()
        for row in rows[400:]:
            rest = function.add(row, rest)
        assert function.get_result(function.merge(half, rest)) == expected


def test_a_field_of_the_wrong_kind_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="field must be"):
        Sum(1.5)  # type: ignore[arg-type]


def test_window_aggregations_survive_a_savepoint_in_the_middle(tmp_path: Path) -> None:
    def job(restore: str | None, sink: CollectSink[Any]) -> StreamEnvironment:
        env = StreamEnvironment(
            parallelism=2,
            checkpointing=CheckpointConfig(
                interval=timedelta(milliseconds=50), storage=tmp_path / "c", restore_from=restore
            ),
        )
        (
            env.from_source(
                DataGenSource(order, count=COUNT, rows_per_second=4000), STRATEGY, name="orders"
            )
            .uid("orders")
            .key_by(lambda o: o["user"])
            .window(TumblingEventTimeWindows.of(timedelta(seconds=2)))
            .avg("amount")
            .uid("avg")
            .sink_to(sink)
            .uid("sink")
        )
        return env

    before: CollectSink[WindowResult[str, Decimal]] = CollectSink()

    async def first() -> Path:
        client = await job(None, before).execute_async("first")
        await asyncio.sleep(0.4)
        return await client.stop_with_savepoint(tmp_path / "sp")

    savepoint = asyncio.run(first())
    after: CollectSink[WindowResult[str, Decimal]] = CollectSink()
    job(str(savepoint), after).execute("second")
    assert before.results() and after.results(), "the savepoint fell in the middle"
    expected = expected_tumbling(
        inputs(),
        timedelta(seconds=2),
        lambda os: sum((o["amount"] for o in os), Decimal(0)) / len(os),
    )
    assert as_map(before.results() + after.results()) == expected
