from __future__ import annotations

import random
from datetime import timedelta

import pytest
from headwater.connectors.base import (
    Backoff,
    ErrorClass,
    RetryPolicy,
    classify_error,
    retry,
    retry_blocking,
)
from headwater.core import ConfigurationError, FatalError, RetryableError


def test_backoff_full_jitter_within_exponential_ceiling() -> None:
    backoff = Backoff(
        initial=timedelta(milliseconds=100), maximum=timedelta(seconds=1), multiplier=2
    )
    assert [backoff.ceiling(n) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    rng = random.Random(7)
    delays = [backoff.delay(3, rng).total_seconds() for _ in range(200)]
    assert all(0.0 <= d <= 0.8 for d in delays)
    assert max(delays) > 0.6 and min(delays) < 0.2  # spread over the whole range


def test_options_validated_with_option_names() -> None:
    with pytest.raises(
        ConfigurationError, match=r"Backoff: maximum \(0:00:00.010000\) must be >= initial"
    ):
        Backoff(initial=timedelta(seconds=1), maximum=timedelta(milliseconds=10))
    with pytest.raises(ConfigurationError, match="RetryPolicy: option 'max_attempts'"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(
        ConfigurationError, match="option 'max_atempts': Extra inputs are not permitted"
    ):
        RetryPolicy(max_atempts=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Backoff(timedelta(seconds=1))  # type: ignore[misc]


def test_classifier() -> None:
    assert classify_error(RetryableError("x")) is ErrorClass.RETRYABLE
    assert classify_error(TimeoutError()) is ErrorClass.RETRYABLE
    assert classify_error(ConnectionResetError()) is ErrorClass.RETRYABLE
    assert classify_error(FatalError("x")) is ErrorClass.FATAL
    assert classify_error(ValueError("x")) is ErrorClass.FATAL


async def test_retry_until_success_sleeps_between_attempts() -> None:
    calls = 0
    sleeps: list[float] = []

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RetryableError("throttled")
        return "ok"

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    policy = RetryPolicy(
        backoff=Backoff(initial=timedelta(seconds=1), maximum=timedelta(seconds=4))
    )
    assert await retry(flaky, policy, sleep=sleep) == "ok"
    assert calls == 3
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 1.0 and 0 <= sleeps[1] <= 2.0


async def test_retry_gives_up_after_max_attempts_with_note() -> None:
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise RetryableError("down")

    async def sleep(seconds: float) -> None:
        pass

    with pytest.raises(RetryableError) as info:
        await retry(failing, RetryPolicy(max_attempts=4), sleep=sleep)
    assert calls == 4
    assert "gave up after 4 attempt(s)" in info.value.__notes__[0]


async def test_retry_does_not_retry_fatal_errors() -> None:
    calls = 0

    async def fatal() -> None:
        nonlocal calls
        calls += 1
        raise FatalError("no such table")

    with pytest.raises(FatalError) as info:
        await retry(fatal, RetryPolicy())
    assert calls == 1
    assert "not retried" in info.value.__notes__[0]


async def test_retry_max_elapsed() -> None:
    async def failing() -> None:
        raise RetryableError("down")

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    policy = RetryPolicy(
        max_attempts=None,
        max_elapsed=timedelta(milliseconds=1),
        backoff=Backoff(initial=timedelta(seconds=10), maximum=timedelta(seconds=10)),
    )
    with pytest.raises(RetryableError):
        await retry(failing, policy, sleep=sleep)
    # A jittered delay of up to 10 s almost surely exceeds the 1 ms budget.
    assert len(slept) <= 1


def test_retry_blocking_retries_then_gives_up_with_a_note() -> None:
    calls: list[int] = []
    retried: list[tuple[str, int]] = []
    slept: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("reset")
        return "ok"

    policy = RetryPolicy(max_attempts=3)
    result = retry_blocking(
        flaky,
        policy,
        on_retry=lambda exc, attempt, delay: retried.append((str(exc), attempt)),
        sleep=slept.append,
    )
    assert result == "ok" and len(calls) == 3
    assert retried == [("reset", 1), ("reset", 2)] and len(slept) == 2

    def always() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError) as caught:
        retry_blocking(always, policy, sleep=slept.append)
    assert caught.value.__notes__ == [caught.value.__notes__[0]]
    assert "gave up after 3 attempt(s)" in caught.value.__notes__[0]

    def fatal() -> None:
        raise ValueError("bad request")

    with pytest.raises(ValueError, match="bad request") as refused:
        retry_blocking(fatal, policy, sleep=slept.append)
    assert "not retried" in refused.value.__notes__[0]
