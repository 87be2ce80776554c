"""Async I/O: call an async function per record with bounded concurrency, in order or not."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from headwater.core._errors import ConfigurationError
from headwater.core._graph import NodeKind

if TYPE_CHECKING:
    from headwater.core._datastream import DataStream

__all__ = ["AsyncDataStream", "AsyncRetryStrategy"]

T = TypeVar("T")
R = TypeVar("R")


def _always(_: Any) -> bool:
    return True


@dataclass(frozen=True, kw_only=True)
class AsyncRetryStrategy:
    """When and how often an async call is tried again.

    Args:
        max_attempts: tries in all, including the first.
        initial_delay: the wait before the first retry.
        multiplier: each wait is the previous one times this (1.0: fixed delay).
        max_delay: the longest wait.
        retry_on_exception: retry when this returns true for the raised exception.
        retry_on_result: retry when this returns true for the returned result.
    """

    max_attempts: int = 3
    initial_delay: timedelta = timedelta(milliseconds=100)
    multiplier: float = 1.0
    max_delay: timedelta = timedelta(seconds=10)
    retry_on_exception: Callable[[BaseException], bool] = field(default=_always)
    retry_on_result: Callable[[Any], bool] | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError("async retry: max_attempts must be >= 1")
        if self.initial_delay < timedelta(0) or self.max_delay < self.initial_delay:
            raise ConfigurationError("async retry: need 0 <= initial_delay <= max_delay")
        if self.multiplier < 1.0:
            raise ConfigurationError("async retry: multiplier must be >= 1")

    @classmethod
    def fixed(cls, delay: timedelta, max_attempts: int, **predicates: Any) -> AsyncRetryStrategy:
        """Retry after the same ``delay`` each time."""
        return cls(max_attempts=max_attempts, initial_delay=delay, max_delay=delay, **predicates)

    @classmethod
    def exponential(
        cls,
        initial_delay: timedelta,
        max_delay: timedelta,
        max_attempts: int,
        multiplier: float = 2.0,
        **predicates: Any,
    ) -> AsyncRetryStrategy:
        """Retry after waits that grow by ``multiplier`` up to ``max_delay``."""
        return cls(
            max_attempts=max_attempts,
            initial_delay=initial_delay,
            max_delay=max_delay,
            multiplier=multiplier,
            **predicates,
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (from 1)."""
        seconds = self.initial_delay.total_seconds() * self.multiplier ** (attempt - 1)
        return min(seconds, self.max_delay.total_seconds())


@dataclass(frozen=True)
class AsyncSpec:
    """Everything the async I/O operator needs (internal)."""

    function: Callable[[Any], Awaitable[Any]]
    ordered: bool
    timeout: float
    capacity: int
    retry: AsyncRetryStrategy | None
    on_timeout: Callable[[Any], Any] | None


class AsyncDataStream:
    """Async I/O (enrichment lookups): records in flight are checkpointed and re-issued on restore.

    The delivery guarantee is at-least-once: a call in flight at a failure is made again.
    """

    @staticmethod
    def unordered_wait(
        stream: DataStream[T],
        fn: Callable[[T], Awaitable[R]],
        timeout: timedelta,
        capacity: int = 100,
        retry: AsyncRetryStrategy | None = None,
        on_timeout: Callable[[T], R] | None = None,
        name: str = "AsyncIO",
    ) -> DataStream[R]:
        """Emit each result as soon as it is ready (a slow call does not hold back others)."""
        return AsyncDataStream._add(stream, fn, False, timeout, capacity, retry, on_timeout, name)

    @staticmethod
    def ordered_wait(
        stream: DataStream[T],
        fn: Callable[[T], Awaitable[R]],
        timeout: timedelta,
        capacity: int = 100,
        retry: AsyncRetryStrategy | None = None,
        on_timeout: Callable[[T], R] | None = None,
        name: str = "AsyncIO",
    ) -> DataStream[R]:
        """Emit results in the order of the input records."""
        return AsyncDataStream._add(stream, fn, True, timeout, capacity, retry, on_timeout, name)

    @staticmethod
    def _add(
        stream: DataStream[Any],
        fn: Callable[[Any], Awaitable[Any]],
        ordered: bool,
        timeout: timedelta,
        capacity: int,
        retry: AsyncRetryStrategy | None,
        on_timeout: Callable[[Any], Any] | None,
        name: str,
    ) -> DataStream[Any]:
        if capacity < 1:
            raise ConfigurationError(f"async I/O '{name}': capacity must be >= 1, got {capacity}")
        if timeout <= timedelta(0):
            raise ConfigurationError(f"async I/O '{name}': timeout must be positive, got {timeout}")
        spec = AsyncSpec(fn, ordered, timeout.total_seconds(), capacity, retry, on_timeout)
        return stream._add(NodeKind.ASYNC_IO, name, spec)
