"""A small retry loop with exponential backoff and jitter for transient database errors.

Kept in this one module so it can be swapped for connector-base's retry utilities when they land.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from headwater.connectors.jdbc._errors import (
    ErrorKind,
    JdbcTimeoutError,
    JdbcTransientError,
    classify,
    database_message,
)

__all__ = ["Backoff", "retrying", "retrying_blocking", "within"]

R = TypeVar("R")
_log = logging.getLogger("headwater.connectors.jdbc")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry up to ``retries`` times, sleeping ``initial * 2**n`` (capped at ``maximum``) +-25%."""

    retries: int
    initial: timedelta
    maximum: timedelta

    def delay(self, attempt: int) -> float:
        """The sleep before retry number ``attempt`` (from 0), in seconds."""
        base: float = min(self.initial.total_seconds() * 2**attempt, self.maximum.total_seconds())
        return base * random.uniform(0.75, 1.25)


async def within(timeout: timedelta, call: Callable[[], Awaitable[R]]) -> R:
    """Await ``call()`` for at most ``timeout``; a hang becomes :class:`JdbcTimeoutError`."""
    try:
        async with asyncio.timeout(timeout.total_seconds()):
            return await call()
    except TimeoutError as exc:
        raise JdbcTimeoutError(
            f"a database call took longer than operation_timeout ({timeout}); the connection "
            f"is probably dead (network partition) and the attempt restarts"
        ) from exc


async def retrying(
    call: Callable[[], Awaitable[R]], backoff: Backoff, what: str, on_retry: Callable[[], None]
) -> R:
    """Await ``call()``, again after a backoff while it fails with a transient error.

    Errors that are not transient propagate at once; a transient error that outlasts the retries
    becomes :class:`JdbcTransientError`. ``on_retry`` is called before each retry (for a metric).
    """
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            delay = _next_delay(exc, attempt, backoff, what)
        on_retry()
        attempt += 1
        await asyncio.sleep(delay)


def retrying_blocking(call: Callable[[], R], backoff: Backoff, what: str) -> R:
    """The blocking twin of :func:`retrying` (for worker threads and synchronous callers)."""
    attempt = 0
    while True:
        try:
            return call()
        except Exception as exc:
            delay = _next_delay(exc, attempt, backoff, what)
        attempt += 1
        time.sleep(delay)


def _next_delay(exc: Exception, attempt: int, backoff: Backoff, what: str) -> float:
    """The backoff before retrying after ``exc``; re-raises when there is no retry."""
    if classify(exc) is not ErrorKind.RETRYABLE:
        raise exc
    if attempt >= backoff.retries:
        raise JdbcTransientError(
            f"jdbc: {what} failed after {attempt + 1} attempts: {database_message(exc)}"
        ) from exc
    delay = backoff.delay(attempt)
    _log.warning(
        "jdbc: %s failed (%s); retry %d/%d in %.2fs",
        what,
        database_message(exc),
        attempt + 1,
        backoff.retries,
        delay,
    )
    return delay
