"""Async I/O: a lookup with 10 ms latency, capacity 100, 20,000 records.

The ceiling is capacity / latency = 10,000 records/s. Then 1% of the lookups take 500 ms, in
ordered and in unordered mode, to show what head-of-line blocking costs.
Prints {"unordered_rps", "ceiling_rps", "ratio", "ordered_slow_rps", "unordered_slow_rps",
"raw_asyncio_rps"}; the last is a bare asyncio.Semaphore loop doing the same lookups, which shows how
close to the ceiling the event loop's timers let anything get on this machine.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from headwater.core import AsyncDataStream, DiscardingSink, StreamEnvironment

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
    wait(stream, fn, timedelta(seconds=5), capacity=CAPACITY).sink_to(DiscardingSink())  # type: ignore[arg-type]
    start = time.perf_counter()
    result = env.execute("async-io")
    elapsed = time.perf_counter() - start
    assert result.metrics["AsyncIO"]["numRecordsOut"] == N
    return N / elapsed


def raw_asyncio() -> float:
    async def main() -> float:
        semaphore = asyncio.Semaphore(CAPACITY)

        async def one(x: int) -> int:
            async with semaphore:
                return await lookup(x)

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(N)))
        return N / (time.perf_counter() - start)

    return asyncio.run(main())


def run() -> dict[str, float]:
    ceiling = CAPACITY / LATENCY
    unordered = measure(lookup, ordered=False)
    return {
        "unordered_rps": round(unordered),
        "ceiling_rps": round(ceiling),
        "ratio": round(unordered / ceiling, 3),
        "ordered_slow_rps": round(measure(sometimes_slow, ordered=True)),
        "unordered_slow_rps": round(measure(sometimes_slow, ordered=False)),
        "raw_asyncio_rps": round(raw_asyncio()),
    }
