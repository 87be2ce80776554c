"""Async I/O: a lookup with 10 ms latency, capacity 100, 20,000 records.

Two limits: the theoretical ceiling capacity / latency = 10,000 records/s, and the reachable one,
measured in the same run: a bare asyncio.Semaphore loop doing the same lookups (how close the
event loop's timers let anything get on this machine). Then 1% of the lookups take 500 ms, in
ordered and in unordered mode, to show what head-of-line blocking costs. Every run checks its
output: each input exactly once (count and sum), in input order for ordered mode.
Prints {"unordered_rps", "raw_asyncio_rps", "raw_ratio", "ceiling_rps", "ratio",
"ordered_slow_rps", "unordered_slow_rps"} (raw_ratio: headwater / raw loop; ratio: / ceiling).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from headwater.core import AsyncDataStream, CollectSink, StreamEnvironment

N = 20_000
CAPACITY = 100
LATENCY = 0.010


async def lookup(x: int) -> int:
    await asyncio.sleep(LATENCY)
    return x


async def sometimes_slow(x: int) -> int:
    await asyncio.sleep(0.5 if x % 100 == 0 else LATENCY)
    return x


def measure(fn: object, ordered: bool) -> float:
    env = StreamEnvironment()
    stream = env.from_collection(range(N))
    wait = AsyncDataStream.ordered_wait if ordered else AsyncDataStream.unordered_wait
    sink: CollectSink[int] = CollectSink()
    wait(stream, fn, timedelta(seconds=5), capacity=CAPACITY).sink_to(sink)  # type: ignore[arg-type]
    start = time.perf_counter()
    result = env.execute("async-io")
    elapsed = time.perf_counter() - start
    assert result.metrics["AsyncIO"]["numRecordsOut"] == N
    got = sink.results()
    assert sorted(got) == list(range(N)), "each input exactly once"
    if ordered:
        assert got == list(range(N)), "ordered mode keeps the input order"
    return N / elapsed


def raw_asyncio() -> float:
    async def main() -> float:
        semaphore = asyncio.Semaphore(CAPACITY)

        async def one(x: int) -> int:
            async with semaphore:
                return await lookup(x)

        start = time.perf_counter()
        got = await asyncio.gather(*(one(i) for i in range(N)))
        elapsed = time.perf_counter() - start
        assert got == list(range(N))
        return N / elapsed

    return asyncio.run(main())


def run() -> dict[str, float]:
    ceiling = CAPACITY / LATENCY
    raw = raw_asyncio()
    unordered = measure(lookup, ordered=False)
    return {
        "unordered_rps": round(unordered),
        "raw_asyncio_rps": round(raw),
        "raw_ratio": round(unordered / raw, 3),
        "ceiling_rps": round(ceiling),
        "ratio": round(unordered / ceiling, 3),
        "ordered_slow_rps": round(measure(sometimes_slow, ordered=True)),
        "unordered_slow_rps": round(measure(sometimes_slow, ordered=False)),
    }
