"""Async I/O: ordering, capacity, timeouts and retries."""

import asyncio
import time
from datetime import timedelta

import pytest
from headwater.core import (
    AsyncDataStream,
    AsyncRetryStrategy,
    JobFailedError,
    StreamEnvironment,
)


async def slow_for_zero(x: int) -> int:
    await asyncio.sleep(0.3 if x == 0 else 0.001)
    return x


def test_ordered_wait_keeps_input_order() -> None:
    env = StreamEnvironment()
    stream = env.from_collection(range(200))
    out = AsyncDataStream.ordered_wait(stream, slow_for_zero, timedelta(seconds=5), capacity=20)
    assert out.execute_and_collect() == list(range(200))


def test_unordered_wait_does_not_block_behind_a_slow_call() -> None:
    env = StreamEnvironment()
    stream = env.from_collection(range(200))
    out = AsyncDataStream.unordered_wait(stream, slow_for_zero, timedelta(seconds=5), capacity=20)
    results = out.execute_and_collect()
    assert sorted(results) == list(range(200))
    assert results[-1] == 0  # the slow call finished last and nothing waited for it
    assert results[:199] == list(range(1, 200))


def test_capacity_bounds_calls_in_flight() -> None:
    in_flight = 0
    peak = 0

    async def tracked(x: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.002)
        in_flight -= 1
        return x

    env = StreamEnvironment()
    out = AsyncDataStream.unordered_wait(
        env.from_collection(range(300)), tracked, timedelta(seconds=5), capacity=7
    )
    assert sorted(out.execute_and_collect()) == list(range(300))
    assert peak == 7


def test_timeout_handler_supplies_a_result() -> None:
    async def hang_on_odd(x: int) -> int:
        await asyncio.sleep(10 if x % 2 else 0)
        return x

    env = StreamEnvironment()
    out = AsyncDataStream.ordered_wait(
        env.from_collection(range(6)),
        hang_on_odd,
        timedelta(milliseconds=50),
        on_timeout=lambda x: -x,
    )
    started = time.monotonic()
    assert out.execute_and_collect() == [0, -1, 2, -3, 4, -5]
    assert time.monotonic() - started < 5


def test_timeout_without_handler_fails_the_job_naming_the_record() -> None:
    async def hang(x: int) -> int:
        await asyncio.sleep(10)
        return x

    env = StreamEnvironment()
    out = AsyncDataStream.unordered_wait(
        env.from_collection([41]), hang, timedelta(milliseconds=20), name="Lookup"
    )
    with pytest.raises(JobFailedError) as info:
        out.execute_and_collect()
    assert "async I/O 'Lookup'" in str(info.value) and "41" in str(info.value)


def test_retries_on_exception_and_on_result() -> None:
    calls: dict[int, int] = {}

    async def flaky(x: int) -> str:
        calls[x] = calls.get(x, 0) + 1
        if calls[x] == 1:
            raise ConnectionError("transient")
        if calls[x] == 2:
            return "not-ready"
        return f"ok-{x}"

    retry = AsyncRetryStrategy.fixed(
        timedelta(milliseconds=1), max_attempts=3, retry_on_result=lambda r: r == "not-ready"
    )
    env = StreamEnvironment()
    out = AsyncDataStream.ordered_wait(
        env.from_collection(range(5)), flaky, timedelta(seconds=1), retry=retry
    )
    assert out.execute_and_collect() == [f"ok-{i}" for i in range(5)]
    assert calls == {i: 3 for i in range(5)}


def test_exhausted_retries_fail_the_job() -> None:
    async def broken(x: int) -> int:
        raise ConnectionError("down")

    retry = AsyncRetryStrategy.exponential(
        timedelta(milliseconds=1), timedelta(milliseconds=4), max_attempts=3
    )
    env = StreamEnvironment()
    out = AsyncDataStream.unordered_wait(
        env.from_collection([1]), broken, timedelta(seconds=1), retry=retry
    )
    with pytest.raises(JobFailedError, match="ConnectionError"):
        out.execute_and_collect()
    assert [retry.delay(n) for n in (1, 2, 3)] == [0.001, 0.002, 0.004]
