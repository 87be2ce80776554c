"""Property: a job's output with a stop-with-savepoint and restore in the middle equals its output
without one, for generated values of every type the state codec supports, through reduce, keyed
process with value/list/map state and timers, and windows (reduce, aggregate, process)."""

import asyncio
import dataclasses
import datetime as dt
import enum
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from headwater.core import (
    AggregateFunction,
    CheckpointConfig,
    CollectSink,
    DataGenSource,
    KeyedProcessFunction,
    ListStateDescriptor,
    MapStateDescriptor,
    ProcessWindowFunction,
    StateBackend,
    StreamEnvironment,
    TumblingEventTimeWindows,
    ValueStateDescriptor,
    WatermarkStrategy,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


class Side(enum.Enum):
    BUY = "buy"
    SELL = 2


@dataclasses.dataclass(frozen=True)
class Trade:
    price: Decimal
    at: dt.datetime


class Span(NamedTuple):
    start: Any
    end: Any


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.dates(),
    st.times(timezones=st.none() | st.just(dt.UTC)),
    st.timedeltas(),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.uuids(),
    st.sampled_from(Side),
)
hashables = st.one_of(
    st.integers(), st.text(max_size=4), st.tuples(st.integers(), st.text(max_size=3))
)
values = st.recursive(
    scalars
    | st.builds(
        Trade, st.decimals(allow_nan=False, allow_infinity=False, places=2), st.datetimes()
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(hashables, inner, max_size=3),
        st.frozensets(hashables, max_size=3),
        st.sets(hashables, max_size=3),
        st.builds(Span, inner, inner),
    ),
    max_leaves=6,
)

KEYS = 3
STEP_MS = 100


def canon(value: Any) -> Any:
    """A comparable, order-independent form keeping every type (sets sorted by their form)."""
    if isinstance(value, set | frozenset):
        return (type(value).__name__, sorted(repr(canon(v)) for v in value))
    if isinstance(value, dict):
        return ("dict", [(repr(canon(k)), canon(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value).__name__, [canon(v) for v in value])
    return (type(value).__name__, repr(value))


class Remember(KeyedProcessFunction[Any, Any]):
    def open(self, context: Any) -> None:
        self.last = context.get_state(ValueStateDescriptor("last"))
        self.seen = context.get_state(ListStateDescriptor("seen"))
        self.by_index = context.get_state(MapStateDescriptor("by_index"))

    def process_element(self, value: Any, ctx: Any) -> Iterator[Any]:
        key, index, payload = value
        previous = self.last.value()
        self.last.update(payload)
        self.seen.add(payload)
        self.by_index.put((index, key), payload)
        ctx.timer_service.register_event_time_timer(index * STEP_MS + 250)
        yield (
            "process",
            key,
            index,
            previous,
            self.seen.get()[-2:],
            self.by_index.get((index - KEYS, key)),
        )

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        yield ("timer", ctx.current_key, timestamp, self.last.value(), len(self.by_index.items()))


class Collect(AggregateFunction[Any, list[Any], tuple[Any, ...]]):
    def create_accumulator(self) -> list[Any]:
        return []

    def add(self, value: Any, accumulator: list[Any]) -> list[Any]:
        return [*accumulator, value[2]]

    def get_result(self, accumulator: list[Any]) -> tuple[Any, ...]:
        return ("aggregate", tuple(accumulator))


class Describe(ProcessWindowFunction[Any, Any, Any]):
    def process(self, key: Any, window: Any, elements: list[Any]) -> Iterator[Any]:
        yield ("window-process", key, window.start, [e[2] for e in elements])


def build(env: StreamEnvironment, records: list[Any], sink: CollectSink[Any], rate: int) -> None:
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda r, _t: r[1] * STEP_MS
    )
    keyed = (
        env.from_source(
            DataGenSource(
                lambda i, _rng: records[i], count=len(records), rows_per_second=rate, num_splits=1
            ),
            strategy,
            name="gen",
        )
        .uid("gen")
        .key_by(lambda r: r[0])
    )
    keyed.reduce(lambda a, b: (a[0], a[1] + b[1], (a[2], b[2]))).uid("reduce").sink_to(sink).uid(
        "s1"
    )
    keyed.process(Remember()).uid("process").sink_to(sink).uid("s2")
    windows = TumblingEventTimeWindows.of(timedelta_ms(500))
    (
        keyed.window(windows)
        .reduce(lambda a, b: (a[0], a[1] + b[1], [a[2], b[2]]))
        .uid("window-reduce")
        .sink_to(sink)
        .uid("s3")
    )
    keyed.window(windows).aggregate(Collect()).uid("window-aggregate").sink_to(sink).uid("s4")
    keyed.window(windows).process(Describe()).uid("window-process").sink_to(sink).uid("s5")


def timedelta_ms(ms: int) -> dt.timedelta:
    return dt.timedelta(milliseconds=ms)


def run_through(records: list[Any], savepoint: Path, backend: StateBackend) -> list[Any]:
    before: CollectSink[Any] = CollectSink()

    async def stop_midway() -> None:
        env = StreamEnvironment(parallelism=2, state_backend=backend)
        build(env, records, before, rate=len(records) * 4)  # about 0.25 s of input
        client = await env.execute_async("property-1")
        await asyncio.sleep(0.12)
        await client.stop_with_savepoint(savepoint)

    asyncio.run(stop_midway())
    after: CollectSink[Any] = CollectSink()
    env = StreamEnvironment(
        parallelism=3,
        state_backend=backend,
        checkpointing=CheckpointConfig(restore_from=str(savepoint)),
    )
    build(env, records, after, rate=10**6)
    env.execute("property-2")
    return before.results() + after.results()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payloads=st.lists(values, min_size=8, max_size=40), rocksdb=st.booleans())
def test_output_with_a_restore_in_the_middle_equals_output_without(
    payloads: list[Any], rocksdb: bool, tmp_path_factory: Any
) -> None:
    records = [(i % KEYS, i, payload) for i, payload in enumerate(payloads)]
    reference: CollectSink[Any] = CollectSink()
    env = StreamEnvironment(parallelism=2)
    build(env, records, reference, rate=10**6)
    env.execute("property-reference")
    tmp = tmp_path_factory.mktemp("property")
    backend = StateBackend.rocksdb(tmp / "rocks") if rocksdb else StateBackend.memory()
    restored = run_through(records, tmp / "savepoint", backend)
    expected = sorted(repr(canon(r)) for r in reference.results())
    assert sorted(repr(canon(r)) for r in restored) == expected
