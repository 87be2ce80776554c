"""Retries with exponential backoff and full jitter, and the classification of errors.

One implementation for every connector: :class:`Backoff` computes delays, :class:`RetryPolicy`
adds the limits (attempts, elapsed time) and the classifier, :func:`retry` runs a coroutine
function under a policy and :func:`retry_blocking` a blocking function (on a worker thread).
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from headwater.connectors.base._options import OptionsModel
from headwater.core import FatalError, RetryableError
from pydantic import Field, model_validator
from pydantic.json_schema import SkipJsonSchema

__all__ = [
    "Backoff",
    "ErrorClass",
    "OnRetry",
    "RetryPolicy",
    "classify_error",
    "retry",
    "retry_blocking",
]

R = TypeVar("R")

OnRetry = Callable[[BaseException, int, timedelta], None]
"""Called before each retry with the error, the failed attempts so far and the delay (to log, count)."""


class ErrorClass(enum.Enum):
    """What to do about an error from an external system."""

    RETRYABLE = "retryable"
    """It may succeed when tried again (a timeout, throttling, a lost connection)."""
    FATAL = "fatal"
    """It will not succeed when tried again (a missing resource, access denied, a bad request)."""


def classify_error(error: BaseException) -> ErrorClass:
    """The default classifier.

    :class:`RetryableError`, :class:`TimeoutError` and :class:`ConnectionError` are retryable;
    :class:`FatalError` and everything else is fatal (an unknown error is not retried blindly).
    """
    if isinstance(error, FatalError):
        return ErrorClass.FATAL
    if isinstance(error, RetryableError | TimeoutError | ConnectionError):
        return ErrorClass.RETRYABLE
    return ErrorClass.FATAL


class Backoff(OptionsModel):
    """Exponential backoff with full jitter: attempt ``n`` waits ``uniform(0, min(maximum, initial * multiplier**n))``.

    Args:
        initial: the ceiling of the first delay.
        maximum: the largest ceiling.
        multiplier: how much the ceiling grows per attempt (>= 1).
    """

    initial: timedelta = timedelta(milliseconds=100)
    maximum: timedelta = timedelta(seconds=10)
    multiplier: float = Field(default=2.0, ge=1.0)

    @model_validator(mode="after")
    def _check(self) -> Backoff:
        if self.initial <= timedelta(0):
            raise ValueError(f"initial must be positive, got {self.initial}")
        if self.maximum < self.initial:
            raise ValueError(f"maximum ({self.maximum}) must be >= initial ({self.initial})")
        return self

    def ceiling(self, attempt: int) -> float:
        """The largest delay in seconds before retry number ``attempt`` (from 0)."""
        initial = self.initial.total_seconds()
        maximum = self.maximum.total_seconds()
        if attempt >= 64:
            return maximum
        return min(maximum, initial * self.multiplier**attempt)

    def delay(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        """A jittered delay before retry number ``attempt`` (from 0)."""
        uniform = (rng or random).uniform
        return timedelta(seconds=uniform(0.0, self.ceiling(attempt)))


class RetryPolicy(OptionsModel):
    """When and how often to try an operation again.

    Args:
        backoff: the delays between attempts.
        max_attempts: the most attempts in all (the first included); ``None`` for no limit.
        max_elapsed: give up when this much time has passed since the first attempt; ``None`` for
            no limit.
        classifier: decides whether an error is retryable (default :func:`classify_error`). It
            is code, so it is left out of the JSON Schema (the docs' options tables) and of
            ``model_dump``.
    """

    backoff: Backoff = Backoff()
    max_attempts: int | None = Field(default=10, ge=1)
    max_elapsed: timedelta | None = None
    classifier: SkipJsonSchema[Callable[[BaseException], ErrorClass]] = Field(
        default=classify_error, exclude=True
    )

    @model_validator(mode="after")
    def _check(self) -> RetryPolicy:
        if self.max_elapsed is not None and self.max_elapsed <= timedelta(0):
            raise ValueError(f"max_elapsed must be positive, got {self.max_elapsed}")
        return self

    def next_delay(self, error: BaseException, attempt: int, elapsed: float) -> timedelta | None:
        """The delay before trying again after ``attempt`` failed attempts, or ``None`` to give up.

        Args:
            error: the error of the last attempt.
            attempt: how many attempts failed so far (>= 1).
            elapsed: seconds since the first attempt started.
        """
        if self.classifier(error) is ErrorClass.FATAL:
            return None
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return None
        delay = self.backoff.delay(attempt - 1)
        if (
            self.max_elapsed is not None
            and elapsed + delay.total_seconds() > self.max_elapsed.total_seconds()
        ):
            return None
        return delay

    def give_up_note(self, error: BaseException, attempt: int, elapsed: float) -> str:
        """Why the policy gave up, to attach to the error with ``add_note``."""
        if self.classifier(error) is ErrorClass.FATAL:
            return f"not retried: classified as {ErrorClass.FATAL.value}"
        return f"gave up after {attempt} attempt(s) in {elapsed:.2f} s"


async def retry(
    operation: Callable[[], Awaitable[R]],
    policy: RetryPolicy | None = None,
    *,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> R:
    """Await ``operation()`` until it succeeds or ``policy`` gives up; then raise its last error.

    The error raised carries a note saying why no further attempt was made. ``on_retry`` is
    called before each retry. Example::

        record = await retry(lambda: client.get(key), RetryPolicy(max_attempts=5))
    """
    attempts = _Attempts(policy or RetryPolicy(), on_retry)
    while True:
        try:
            return await operation()
        except Exception as exc:
            delay = attempts.failed(exc)
        await sleep(delay)


def retry_blocking(
    operation: Callable[[], R],
    policy: RetryPolicy | None = None,
    *,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> R:
    """Call ``operation()`` until it succeeds or ``policy`` gives up (the blocking :func:`retry`).

    For worker threads (``context.run_blocking``) and synchronous clients; it sleeps the thread
    between attempts. Example::

        rows = retry_blocking(lambda: cursor.execute(sql), RetryPolicy(max_attempts=3))
    """
    attempts = _Attempts(policy or RetryPolicy(), on_retry)
    while True:
        try:
            return operation()
        except Exception as exc:
            delay = attempts.failed(exc)
        sleep(delay)


class _Attempts:
    """The failed attempts of one :func:`retry` or :func:`retry_blocking` call."""

    __slots__ = ("count", "on_retry", "policy", "started")

    def __init__(self, policy: RetryPolicy, on_retry: OnRetry | None) -> None:
        self.policy = policy
        self.on_retry = on_retry
        self.started = time.monotonic()
        self.count = 0

    def failed(self, error: Exception) -> float:
        """The seconds to wait before the next attempt; re-raises ``error`` (noted) to give up."""
        self.count += 1
        elapsed = time.monotonic() - self.started
        delay = self.policy.next_delay(error, self.count, elapsed)
        if delay is None:
            error.add_note(self.policy.give_up_note(error, self.count, elapsed))
            raise error
        if self.on_retry is not None:
            self.on_retry(error, self.count, delay)
        return delay.total_seconds()
