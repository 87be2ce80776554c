"""Event-time windows: 1,000,000 events over 10,000 keys into 1 s tumbling windows (count and sum).

Compared with a plain-Python dict aggregation of the same events in the same run, calling the same
user code per event (the key selector, the timestamp extractor and ``AggregateFunction.add``), so
the ratio measures what the runtime adds: batching, routing, watermarks, timers and firing. Both
sides check their results: headwater's windows (count, sum) equal the plain aggregation's.
Prints {"headwater_rps", "plain_python_rps", "ratio"}.
"""

from __future__ import annotations

import time
from datetime import timedelta

from headwater.core import (
    AggregateFunction,
    CollectionSource,
    CollectSink,
    StreamEnvironment,
    TumblingEventTimeWindows,
    WatermarkStrategy,
)

N = 1_000_000
KEYS = 10_000
ROUNDS = 2


def events() -> list[tuple[str, int, int]]:
    keys = [f"user-{k}" for k in range(KEYS)]
    # 100,000 events per second of event time: 10 seconds, 10 events per key and window.
    return [(keys[(i * 7919) % KEYS], i // 100, i % 100) for i in range(N)]


class CountSum(AggregateFunction[tuple[str, int, int], list[int], tuple[int, int]]):
    def create_accumulator(self) -> list[int]:
        return [0, 0]

    def add(self, value: tuple[str, int, int], accumulator: list[int]) -> list[int]:
        accumulator[0] += 1
        accumulator[1] += value[2]
        return accumulator

    def get_result(self, accumulator: list[int]) -> tuple[int, int]:
        return (accumulator[0], accumulator[1])


def key_of(e: tuple[str, int, int]) -> str:
    return e[0]


def timestamp_of(e: tuple[str, int, int], _previous: int | None) -> int:
    return e[1]


def plain_python(data: list[tuple[str, int, int]]) -> tuple[float, list[tuple[int, int]]]:
    agg = CountSum()
    start = time.perf_counter()
    windows: dict[tuple[str, int], list[int]] = {}
    for e in data:
        ts = timestamp_of(e, None)
        wk = (key_of(e), ts - ts % 1000)
        acc = windows.get(wk)
        windows[wk] = agg.add(e, agg.create_accumulator() if acc is None else acc)
    results = [agg.get_result(acc) for acc in windows.values()]
    elapsed = time.perf_counter() - start
    assert sum(r[0] for r in results) == N
    assert sum(r[1] for r in results) == sum(e[2] for e in data)
    return N / elapsed, sorted(results)


def headwater(data: list[tuple[str, int, int]], expected: list[tuple[int, int]]) -> float:
    env = StreamEnvironment()
    sink: CollectSink[tuple[int, int]] = CollectSink()
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(timestamp_of)
    (
        env.from_source(CollectionSource(data), strategy)
        .key_by(key_of)
        .window(TumblingEventTimeWindows.of(timedelta(seconds=1)))
        .aggregate(CountSum())
        .sink_to(sink)
    )
    start = time.perf_counter()
    env.execute("windows")
    elapsed = time.perf_counter() - start
    assert sorted(sink.results()) == expected, "the windows differ from the plain aggregation"
    return N / elapsed


def run() -> dict[str, float]:
    data = events()
    runs = [plain_python(data) for _ in range(ROUNDS)]
    plain, expected = max(r for r, _ in runs), runs[0][1]
    hw = max(headwater(data, expected) for _ in range(ROUNDS))
    return {
        "headwater_rps": round(hw),
        "plain_python_rps": round(plain),
        "ratio": round(hw / plain, 3),
    }
