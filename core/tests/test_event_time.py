"""Event time: windows of every type with out-of-order and late records, exact outputs."""

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pytest
from headwater.core import (
    AggregateFunction,
    CollectionSource,
    CollectSink,
    CountTrigger,
    EventTimeSessionWindows,
    KeyedContext,
    KeyedProcessFunction,
    KeyedRuntimeContext,
    OutputTag,
    ProcessWindowFunction,
    SlidingEventTimeWindows,
    StreamEnvironment,
    TimeWindow,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
    ValueStateDescriptor,
    WatermarkStrategy,
)
from headwater.core.testing import EmitWatermark as WM
from headwater.core.testing import ScriptedSource
from headwater.core.testing import Timestamped as T

SECOND = timedelta(seconds=1)


def run(job: Any, *sinks: CollectSink[Any]) -> list[list[Any]]:
    job.execute("event-time")
    return [s.results() for s in sinks]


def sum_values(a: tuple[str, int], b: tuple[str, int]) -> tuple[str, int]:
    return (a[0], a[1] + b[1])


def test_tumbling_windows_with_allowed_lateness_and_late_side_output() -> None:
    steps = [
        T(("a", 1), 1000),
        T(("a", 2), 1500),
        T(("b", 5), 1999),
        WM(1999),  # [1000, 2000) fires: a=3, b=5
        T(("a", 10), 1200),  # late, within 500 ms lateness: a fires again with 13
        WM(2600),  # lateness over: the window is purged
        T(("a", 100), 1300),  # too late: side output
        T(("a", 7), 2100),
        T(("a", 4), 2999),
    ]  # end of input: [2000, 3000) fires a=11
    env = StreamEnvironment()
    late = OutputTag[tuple[str, int]]("late")
    windowed = (
        env.from_source(ScriptedSource(steps))
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(SECOND))
        .allowed_lateness(timedelta(milliseconds=500))
        .side_output_late_data(late)
        .reduce(sum_values)
    )
    main, side = CollectSink[Any](), CollectSink[Any]()
    windowed.sink_to(main)
    windowed.get_side_output(late).sink_to(side)
    assert run(env, main, side) == [
        [("a", 3), ("b", 5), ("a", 13), ("a", 11)],
        [("a", 100)],
    ]


class Describe(ProcessWindowFunction[str, tuple[str, int], tuple[str, int, int, list[int]]]):
    def process(
        self, key: str, window: TimeWindow, elements: list[tuple[str, int]]
    ) -> Iterable[tuple[str, int, int, list[int]]]:
        yield (key, window.start, window.end, sorted(v for _, v in elements))


def test_sliding_windows_put_records_in_every_overlapping_window() -> None:
    steps = [T(("k", 1), 500), T(("k", 4), 2500), T(("k", 2), 1500)]  # out of order
    env = StreamEnvironment()
    sink = CollectSink[Any]()
    (
        env.from_source(ScriptedSource(steps))
        .key_by(lambda e: e[0])
        .window(SlidingEventTimeWindows.of(2 * SECOND, SECOND))
        .process(Describe())
        .sink_to(sink)
    )
    assert run(env, sink) == [
        [
            ("k", -1000, 1000, [1]),
            ("k", 0, 2000, [1, 2]),
            ("k", 1000, 3000, [2, 4]),
            ("k", 2000, 4000, [4]),
        ]
    ]


def test_session_windows_merge_when_a_record_bridges_them() -> None:
    steps = [
        T(("u", 1), 0),
        T(("u", 2), 2000),  # two sessions [0,1000) and [2000,3000)
        T(("u", 3), 1500),  # [1500,2500) merges with [2000,3000)
        T(("v", 9), 100),
        WM(1200),  # v's [100,1100) and u's [0,1000) fire
        T(("u", 4), 5000),
    ]
    env = StreamEnvironment()
    sink = CollectSink[Any]()
    (
        env.from_source(ScriptedSource(steps))
        .key_by(lambda e: e[0])
        .window(EventTimeSessionWindows.with_gap(SECOND))
        .process(Describe())
        .sink_to(sink)
    )
    assert run(env, sink) == [
        [
            ("u", 0, 1000, [1]),
            ("v", 100, 1100, [9]),
            ("u", 1500, 3000, [2, 3]),
            ("u", 5000, 6000, [4]),
        ]
    ]


def test_session_merge_of_three_sessions_into_one() -> None:
    steps = [T(("u", 1), 0), T(("u", 2), 2000), T(("u", 3), 1500), T(("u", 4), 800)]
    env = StreamEnvironment()
    sink = CollectSink[Any]()
    (
        env.from_source(ScriptedSource(steps))
        .key_by(lambda e: e[0])
        .window(EventTimeSessionWindows.with_gap(SECOND))
        .process(Describe())
        .sink_to(sink)
    )
    assert run(env, sink) == [[("u", 0, 3000, [1, 2, 3, 4])]]


class CountAndSum(AggregateFunction[tuple[str, int], list[int], tuple[int, int]]):
    def create_accumulator(self) -> list[int]:
        return [0, 0]

    def add(self, value: tuple[str, int], accumulator: list[int]) -> list[int]:
        accumulator[0] += 1
        accumulator[1] += value[1]
        return accumulator

    def get_result(self, accumulator: list[int]) -> tuple[int, int]:
        return (accumulator[0], accumulator[1])


def test_count_trigger_gives_early_results() -> None:
    steps = [T(("k", i), 100 * i) for i in range(1, 6)]
    env = StreamEnvironment()
    sink = CollectSink[Any]()
    (
        env.from_source(ScriptedSource(steps))
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(SECOND))
        .trigger(CountTrigger.of(2))
        .aggregate(CountAndSum())
        .sink_to(sink)
    )
    assert run(env, sink) == [[(2, 3), (4, 10), (5, 15)]]


def test_processing_time_windows_count_everything_by_the_end() -> None:
    env = StreamEnvironment(parallelism=2)
    sink = CollectSink[Any]()
    (
        env.from_collection([("k", 1)] * 3000 + [("j", 1)] * 500)
        .key_by(lambda e: e[0])
        .window(TumblingProcessingTimeWindows.of(timedelta(hours=1)))
        .reduce(sum_values)
        .sink_to(sink)
    )
    assert sorted(run(env, sink)[0]) == [("j", 500), ("k", 3000)]


def test_windows_need_timestamps() -> None:
    env = StreamEnvironment()
    env.from_collection([("k", 1)]).key_by(lambda e: e[0]).window(
        TumblingEventTimeWindows.of(SECOND)
    ).reduce(sum_values).print()
    with pytest.raises(Exception, match="no event timestamps"):
        env.execute("no-timestamps")


def test_watermark_strategy_assigns_timestamps_and_bounds_disorder() -> None:
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(SECOND).with_timestamp_assigner(
        lambda e, _ts: e[1]
    )
    env2 = StreamEnvironment()
    sink2 = CollectSink[Any]()
    records = [("k", 100), ("k", 1100), ("k", 900), ("k", 2500)]
    (
        env2.from_source(CollectionSource(records), strategy)
        .map(lambda e: e)  # timestamps travel with the records through chained operators
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(SECOND))
        .process(Describe())
        .sink_to(sink2)
    )
    assert run(env2, sink2) == [
        [
            ("k", 0, 1000, [100, 900]),
            ("k", 1000, 2000, [1100]),
            ("k", 2000, 3000, [2500]),
        ]
    ]


class CountWithTimeout(KeyedProcessFunction[tuple[str, int], tuple[str, int, int]]):
    """Counts records per key and reports the count 1 s (event time) after the key's first record."""

    def open(self, context: KeyedRuntimeContext) -> None:
        self.count = context.get_state(ValueStateDescriptor("count", default=0))

    def process_element(self, value: tuple[str, int], ctx: KeyedContext) -> Iterable[Any]:
        if self.count.value() == 0:
            assert ctx.timestamp is not None
            ctx.timer_service.register_event_time_timer(ctx.timestamp + 1000)
        self.count.update(self.count.value() + 1)
        return ()

    def on_timer(self, timestamp: int, ctx: KeyedContext) -> Iterable[Any]:
        yield (ctx.current_key, timestamp, self.count.value())
        self.count.clear()


def test_keyed_process_function_with_state_and_event_time_timers() -> None:
    steps = [
        T(("a", 0), 0),
        T(("b", 0), 300),
        T(("a", 0), 500),
        WM(1000),  # a's timer at 1000 fires with 2
        T(("a", 0), 1200),
        T(("b", 0), 1250),
        WM(1400),  # b's timer at 1300 fires with 2
    ]  # end: a's second timer at 2200 fires with 1
    env = StreamEnvironment()
    sink = CollectSink[Any]()
    env.from_source(ScriptedSource(steps)).key_by(lambda e: e[0]).process(
        CountWithTimeout()
    ).sink_to(sink)
    assert run(env, sink) == [[("a", 1000, 2), ("b", 1300, 2), ("a", 2200, 1)]]
