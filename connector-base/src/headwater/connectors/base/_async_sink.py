"""The async sink base: batching, bounded requests in flight, rate limiting, retries, checkpointed buffer.

A connector writes an element converter (record -> request entry) and a writer that overrides
:meth:`AsyncSinkWriter.submit_request_entries` and :meth:`AsyncSinkWriter.size_in_bytes`; the base
does the rest. Delivery guarantee: at-least-once. At each checkpoint the writer waits for every
request in flight (entries are then delivered, or back in the buffer), and the entries still
buffered are saved in the checkpoint and sent again after a restore.
"""

from __future__ import annotations

import asyncio
import time
from abc import abstractmethod
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import accumulate, islice
from typing import Annotated, Any, Generic, TypeVar

from headwater.connectors.base._formats import DeadLetter, ErrorPolicy, refuse_record
from headwater.connectors.base._options import OptionsModel
from headwater.connectors.base._rate_limiting import (
    AIMDRateLimitingStrategy,
    RateLimitingStrategy,
    RequestInfo,
    RequestResultInfo,
)
from headwater.connectors.base._retry import ErrorClass, RetryPolicy
from headwater.core import (
    FatalError,
    RetryableError,
    Sink,
    SinkWriter,
    StateCodecSerializer,
    VersionedSerializer,
    WriterInitContext,
)
from pydantic import Field, model_validator
from pydantic.fields import FieldInfo

__all__ = [
    "AsyncSinkBase",
    "AsyncSinkOptions",
    "AsyncSinkWriter",
    "RecordTooLargeError",
    "RequestTimeoutError",
    "SubmitResult",
]

IN = TypeVar("IN")
"""The type of the records the sink consumes."""
E = TypeVar("E")
"""The request entry type: what one record becomes in a request to the external system."""

_MIB = 1024 * 1024


class RecordTooLargeError(FatalError):
    """A record is larger than a sink's size limit; by default the task fails with it."""


class RequestTimeoutError(RetryableError):
    """A request took longer than ``request_timeout``."""


class AsyncSinkOptions(OptionsModel):
    """The knobs of an async sink writer.

    Args:
        max_batch_size: the most entries per request.
        max_in_flight_requests: the most requests awaiting an answer at once.
        max_buffered_requests: entries buffered before ``write_batch`` waits (backpressure); must
            exceed ``max_batch_size``.
        max_batch_size_in_bytes: the most bytes per request (a single entry may reach
            ``max_record_size_in_bytes``).
        max_time_in_buffer: an entry waits at most this long for a full batch before a partial
            batch is sent.
        max_record_size_in_bytes: larger entries go to the sink's ``on_record_too_large`` policy
            (default: the task fails with :class:`RecordTooLargeError`); ``None`` for no limit.
            Must not exceed ``max_batch_size_in_bytes``.
        request_timeout: a request not answered by then counts as failed.
        fail_on_timeout: on a timeout, fail the task (``True``) or retry the entries (``False``).
        retry_policy: backoff and limits for requests that fail with a retryable error; its
            classifier decides what is retryable.
    """

    max_batch_size: int = Field(default=500, ge=1)
    max_in_flight_requests: int = Field(default=50, ge=1)
    max_buffered_requests: int = Field(default=10_000, ge=1)
    max_batch_size_in_bytes: int = Field(default=5 * _MIB, ge=1)
    max_time_in_buffer: timedelta = timedelta(seconds=5)
    max_record_size_in_bytes: int | None = Field(default=1 * _MIB, ge=1)
    request_timeout: timedelta = timedelta(minutes=10)
    fail_on_timeout: bool = False
    retry_policy: RetryPolicy = RetryPolicy()

    @classmethod
    def default(cls, field: str, value: Any) -> Any:
        """The declaration of ``field`` with another default, keeping its type rules.

        How a connector sets its own defaults (its service's limits): subclass the options and
        redeclare the fields; the subclass's JSON Schema (the docs' options tables) shows them, a
        dict given for it overrides only the keys it names, and an :class:`AsyncSinkOptions`
        instance is taken with all its values. Example::

            class KinesisWriterOptions(AsyncSinkOptions):
                max_batch_size: int = AsyncSinkOptions.default("max_batch_size", 500)

            class KinesisStreamsSinkOptions(OptionsModel):
                writer: KinesisWriterOptions = KinesisWriterOptions()

        Raises:
            TypeError: ``field`` is not a field of the options.
        """
        if field not in cls.model_fields:
            raise TypeError(f"{cls.__name__} has no field {field!r}")
        declared = cls.model_fields[field]
        # The declaration as Annotated metadata: its constraints and description, a new default.
        annotated: Any = Annotated[declared.annotation, declared]
        return FieldInfo.from_annotated_attribute(annotated, value)

    @model_validator(mode="before")
    @classmethod
    def _from_other_options(cls, data: Any) -> Any:
        # An instance of the base (or another variant) given where a variant is expected.
        if isinstance(data, AsyncSinkOptions) and not isinstance(data, cls):
            return dict(data)
        return data

    @model_validator(mode="after")
    def _check(self) -> AsyncSinkOptions:
        if self.max_buffered_requests <= self.max_batch_size:
            raise ValueError(
                f"max_buffered_requests ({self.max_buffered_requests}) must be greater than "
                f"max_batch_size ({self.max_batch_size})"
            )
        if (
            self.max_record_size_in_bytes is not None
            and self.max_record_size_in_bytes > self.max_batch_size_in_bytes
        ):
            raise ValueError(
                f"max_record_size_in_bytes ({self.max_record_size_in_bytes}) must not exceed "
                f"max_batch_size_in_bytes ({self.max_batch_size_in_bytes})"
            )
        if self.max_time_in_buffer <= timedelta(0):
            raise ValueError(f"max_time_in_buffer must be positive, got {self.max_time_in_buffer}")
        if self.request_timeout <= timedelta(0):
            raise ValueError(f"request_timeout must be positive, got {self.request_timeout}")
        return self

    def default_rate_limiting_strategy(self) -> RateLimitingStrategy:
        """AIMD congestion control sized by these options.

        Starts (and peaks) at ``max_in_flight_requests * max_batch_size`` entries in flight, grows
        by a tenth of a batch per successful request, halves on throttling.
        """
        return AIMDRateLimitingStrategy(
            max_in_flight_requests=self.max_in_flight_requests,
            max_rate=self.max_in_flight_requests * self.max_batch_size,
            increase_rate=max(1, self.max_batch_size // 10),
        )


@dataclass(frozen=True, slots=True)
class SubmitResult(Generic[E]):
    """The outcome of one request, built with a verb: :meth:`complete`, :meth:`retry` or :meth:`fail`.

    Raising from ``submit_request_entries`` is also allowed: the error goes to the classifier
    (retryable errors are retried with backoff, fatal ones fail the task).
    """

    retry_entries: Sequence[E] = ()
    error: BaseException | None = field(default=None)
    cause: BaseException | None = field(default=None)
    """Why the ``retry_entries`` were refused (the error the task fails with if they give up)."""

    @classmethod
    def complete(cls) -> SubmitResult[E]:
        """Every entry was accepted."""
        return cls()

    @classmethod
    def retry(cls, entries: Sequence[E], cause: BaseException | None = None) -> SubmitResult[E]:
        """These entries were refused (throttled, partially failed) and must be sent again.

        They are sent again after a backoff of the retry policy, counted per entry; when the
        policy gives up on one, the task fails with ``cause`` (default: a
        :class:`~headwater.core.RetryableError` counting the refused entries).
        """
        return cls(retry_entries=entries, cause=cause)

    @classmethod
    def fail(cls, error: BaseException) -> SubmitResult[E]:
        """The request failed for good; the task fails with ``error``."""
        return cls(error=error)


@dataclass(slots=True)
class _Chunk:
    """Consecutive buffered entries enqueued together."""

    count: int
    enqueued_at: float


class _Buffer(Generic[E]):
    """Buffered entries and their sizes, oldest first.

    The hot path costs no Python call per entry: entries and sizes are plain lists cut with
    slices, batches are sized with ``accumulate`` and ``bisect``, and enqueue times are kept per
    chunk (one per ``write_batch`` or per retried request), not per entry.
    """

    __slots__ = ("_chunks", "entries", "nbytes", "sizes")

    def __init__(self) -> None:
        self.entries: list[E] = []
        self.sizes: list[int] = []
        self.nbytes = 0
        self._chunks: deque[_Chunk] = deque()

    def __len__(self) -> int:
        return len(self.entries)

    def oldest(self) -> float:
        """When the entry at the head was enqueued (the buffer must not be empty)."""
        return self._chunks[0].enqueued_at

    def add(self, entries: list[E], sizes: list[int], enqueued_at: float, *, front: bool) -> None:
        """Append ``entries``, or put them back at the head (``front``, for retries)."""
        self.nbytes += sum(sizes)
        if front:
            self.entries[:0] = entries
            self.sizes[:0] = sizes
            self._chunks.appendleft(_Chunk(len(entries), enqueued_at))
        else:
            self.entries += entries
            self.sizes += sizes
            self._chunks.append(_Chunk(len(entries), enqueued_at))

    def measure(self, max_count: int, max_bytes: int) -> tuple[int, int]:
        """How many head entries fit in ``max_count`` and ``max_bytes`` (at least one), and their bytes."""
        sums = list(accumulate(islice(self.sizes, max_count)))
        count = bisect_right(sums, max_bytes) or 1
        return count, sums[count - 1]

    def take(self, count: int, nbytes: int) -> list[E]:
        """Remove and return the ``count`` head entries (``nbytes`` as :meth:`measure` said)."""
        batch = self.entries[:count]
        del self.entries[:count]
        del self.sizes[:count]
        self.nbytes -= nbytes
        chunks = self._chunks
        while count:
            head = chunks[0]
            if head.count > count:
                head.count -= count
                break
            count -= head.count
            chunks.popleft()
        return batch


class AsyncSinkWriter(SinkWriter[IN], Generic[IN, E]):
    """Buffers request entries and sends them in batches, concurrently, with retries.

    A connector overrides :meth:`submit_request_entries` and :meth:`size_in_bytes` (and
    :meth:`close` to release its client). Everything runs on the event loop; requests are asyncio
    tasks, at most ``max_in_flight_requests`` at once and as many as the rate-limiting strategy
    allows.

    Batches are cut when ``max_batch_size`` entries or ``max_batch_size_in_bytes`` bytes are
    buffered, when the oldest entry has waited ``max_time_in_buffer``, and at the end of input.
    Entries returned by :meth:`SubmitResult.retry` count in ``numRecordsSendErrors`` and go back to
    the front of the buffer after a backoff of the retry policy (the strategy is told which share
    of the request was refused). A request raising an error the classifier calls retryable is sent
    again after a backoff (the strategy is told it was throttled as a whole). The retry policy's
    limits count per entry, so an entry that keeps failing gives up while other requests succeed. A fatal
    error, an exhausted retry policy or :meth:`SubmitResult.fail` fails the task at the next ``write_batch`` or
    ``flush``.

    An entry larger than ``max_record_size_in_bytes`` goes to :attr:`on_record_too_large`: by
    default the task fails with :class:`RecordTooLargeError` (naming the size, the limit and the
    option); with :class:`SkipOnError` or :class:`DeadLetterOnError` it is dropped (and handed
    over as a :class:`DeadLetter` with :meth:`entry_payload`) and counted in
    ``numRecordsOutErrors``.

    Metrics (FLIP-33): ``numRecordsOut`` and ``numBytesOut`` (entries and bytes accepted by the
    external system), ``numRecordsSendErrors``, ``numRecordsOutErrors`` (entries refused as too
    large), ``currentSendTime`` (ms, last request), ``pendingRecords`` (buffered entries).

    Args:
        context: the writer's init context.
        element_converter: turns a record into a request entry (called once per record).
        options: the knobs.
        restored: entries from the checkpoint, sent first.
        rate_limiting_strategy: default :meth:`AsyncSinkOptions.default_rate_limiting_strategy`.
    """

    def __init__(
        self,
        context: WriterInitContext,
        *,
        element_converter: Callable[[IN], E],
        options: AsyncSinkOptions,
        restored: Sequence[E] = (),
        rate_limiting_strategy: RateLimitingStrategy | None = None,
    ) -> None:
        self.context = context
        self.options = options
        self._convert = element_converter
        self._strategy = rate_limiting_strategy or options.default_rate_limiting_strategy()
        self._max_time = options.max_time_in_buffer.total_seconds()
        self._timeout = options.request_timeout.total_seconds()
        self._buffer: _Buffer[E] = _Buffer()
        self._requests: set[asyncio.Task[None]] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._error: BaseException | None = None
        self._flushing = False
        self._suspended = False
        # Failed attempts per entry (by identity) and when its first one started: a request that
        # keeps failing reaches the retry policy's limits while others succeed.
        self._failures: dict[int, tuple[int, float]] = {}
        self._records_out = 0
        self._send_time_ms: float | None = None
        self.on_record_too_large: ErrorPolicy | None = None
        """What happens to an entry over ``max_record_size_in_bytes`` (``None``: fail)."""
        group = context.metric_group
        self._refused = group.counter("numRecordsOutErrors")
        self._bytes_out = group.counter("numBytesOut")
        self._send_errors = group.counter("numRecordsSendErrors")
        group.gauge("numRecordsOut", lambda: self._records_out)
        group.gauge("currentSendTime", lambda: self._send_time_ms)
        group.gauge("pendingRecords", lambda: len(self._buffer))
        if restored:
            overdue = time.monotonic() - self._max_time
            self._enqueue(list(restored), overdue)

    # -- hooks -----------------------------------------------------------------------------
    @abstractmethod
    async def submit_request_entries(self, entries: list[E]) -> SubmitResult[E]:
        """Send one request carrying ``entries``; report the outcome with a :class:`SubmitResult` verb."""

    @abstractmethod
    def size_in_bytes(self, entry: E) -> int:
        """The size of one entry, for the byte limits and ``numBytesOut``."""

    def entry_payload(self, entry: E) -> bytes:
        """The bytes of an entry, for the dead letter of one refused as too large (default: repr)."""
        return repr(entry).encode()

    def classify(self, error: BaseException) -> ErrorClass:
        """Whether a request error is retryable; default: the retry policy's classifier."""
        return self.options.retry_policy.classifier(error)

    # -- SinkWriter ------------------------------------------------------------------------
    async def write_batch(self, records: Sequence[IN]) -> None:
        """Convert and buffer ``records``; wait while ``max_buffered_requests`` are buffered."""
        self._raise_if_failed()
        self._enqueue(list(map(self._convert, records)), time.monotonic())
        if self._maybe_send():
            await asyncio.sleep(0)  # let the new requests reach the wire before more records come
        while len(self._buffer) >= self.options.max_buffered_requests:
            await self._wait_for_progress()
            self._raise_if_failed()

    async def flush(self, end_of_input: bool) -> None:
        """Wait until no request is in flight; at the end of input, send everything buffered first.

        Before a checkpoint (``end_of_input=False``) buffered entries stay buffered and are saved
        by :meth:`snapshot_state`; entries of requests in flight are delivered or back in the buffer.
        """
        self._flushing = end_of_input
        try:
            while True:
                self._raise_if_failed()
                if end_of_input:
                    self._maybe_send()
                if not self._requests and not (end_of_input and self._buffer):
                    break
                await self._wait_for_progress()
        finally:
            self._flushing = False
        self._raise_if_failed()

    def snapshot_state(self, checkpoint_id: int) -> list[Any]:
        """The buffered entries (called after :meth:`flush`, so none is in flight)."""
        return list(self._buffer.entries)

    def suspend(self) -> None:
        """Stop sending: the buffered entries are in the stop's savepoint (see ``SinkWriter``)."""
        self._suspended = True
        self._cancel_timer()

    def resume(self) -> None:
        """The stop failed: send again, starting with what is due."""
        self._suspended = False
        self._maybe_send()

    async def close(self) -> None:
        """Cancel requests in flight and the buffer timer."""
        self._cancel_timer()
        for task in self._requests:
            task.cancel()
        if self._requests:
            await asyncio.gather(*self._requests, return_exceptions=True)

    # -- internals -------------------------------------------------------------------------
    def _enqueue(self, entries: list[E], enqueued_at: float, *, front: bool = False) -> None:
        if not entries:
            return
        sizes = list(map(self.size_in_bytes, entries))
        limit = self.options.max_record_size_in_bytes
        if limit is not None and max(sizes) > limit:
            entries, sizes = self._refuse_too_large(entries, sizes, limit)
            if not entries:
                return
        self._buffer.add(entries, sizes, enqueued_at, front=front)

    def _refuse_too_large(
        self, entries: list[E], sizes: list[int], limit: int
    ) -> tuple[list[E], list[int]]:
        """The entries within ``limit``; the others go to :attr:`on_record_too_large`."""
        name = getattr(self, "connector", type(self).__name__)
        kept: list[E] = []
        kept_sizes: list[int] = []
        for index, (entry, size) in enumerate(zip(entries, sizes, strict=True)):
            if size <= limit:
                kept.append(entry)
                kept_sizes.append(size)
                continue
            error = RecordTooLargeError(
                f"{name}: a record of {size} bytes exceeds max_record_size_in_bytes ({limit}); "
                "raise that option (up to the service's limit) or set on_record_too_large to "
                "skip or dead-letter such records"
            )
            letter = DeadLetter(
                payload=self.entry_payload(entry),
                error=f"RecordTooLargeError: {error}",
                format=name,
                position=index,
            )
            refuse_record(self.on_record_too_large, letter, error)
            self._refused.inc()
        return kept, kept_sizes

    def _batch_ready(self, now: float) -> bool:
        buffer = self._buffer
        options = self.options
        return (
            self._flushing
            or len(buffer) >= options.max_batch_size
            or buffer.nbytes >= options.max_batch_size_in_bytes
            or now - buffer.oldest() >= self._max_time
        )

    def _next_batch(self, now: float) -> tuple[list[E], int] | None:
        """Take the next batch if one is ready and the strategy allows it (counted in flight)."""
        buffer = self._buffer
        if not buffer or self._suspended or self._error is not None or not self._batch_ready(now):
            return None
        options = self.options
        strategy = self._strategy
        limit = min(options.max_batch_size, strategy.max_batch_size)
        count, nbytes = buffer.measure(limit, options.max_batch_size_in_bytes)
        info = RequestInfo(count)
        if strategy.should_block(info):
            return None
        strategy.register_in_flight_request(info)
        return buffer.take(count, nbytes), nbytes

    def _maybe_send(self) -> int:
        """Start as many requests as are ready and allowed; return how many were started."""
        now = time.monotonic()
        loop = asyncio.get_running_loop()
        started = 0
        while (batch := self._next_batch(now)) is not None:
            self._requests.add(loop.create_task(self._send(*batch)))
            started += 1
        self._arm_timer(now)
        return started

    def _arm_timer(self, now: float) -> None:
        if (
            self._timer is not None
            or not self._buffer
            or self._error is not None
            or self._suspended
        ):
            return
        delay = self._buffer.oldest() + self._max_time - now
        if delay > 0:  # an overdue head waits for a request to complete instead
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        self._maybe_send()

    async def _send(self, entries: list[E], nbytes: int) -> None:
        """Send ``entries``, then, in the same task, every next batch that is ready and allowed.

        Going on in the same task puts the next request on the wire before the writer (woken
        because buffer space was freed) converts more records, with no task to schedule.
        """
        try:
            while True:
                await self._request(entries, nbytes)
                batch = self._next_batch(time.monotonic())
                if batch is None:
                    break
                self._wake()  # buffer space was freed
                entries, nbytes = batch
            self._arm_timer(time.monotonic())
        finally:
            # Leave the set before waking waiters, so flush() sees this request as done.
            current = asyncio.current_task()
            assert current is not None
            self._requests.discard(current)
            self._wake()

    async def _request(self, entries: list[E], nbytes: int) -> None:
        started = time.monotonic()
        failed: Sequence[E] = ()
        fatal: BaseException | None = None
        backoff: float | None = None
        deadline = asyncio.timeout(self._timeout)
        try:
            async with deadline:
                result = await self.submit_request_entries(entries)
        except Exception as exc:
            if isinstance(exc, TimeoutError) and deadline.expired():
                if self.options.fail_on_timeout:
                    fatal = RequestTimeoutError(
                        f"{type(self).__name__}: a request of {len(entries)} entries got no answer "
                        f"within request_timeout ({self.options.request_timeout})"
                    )
                else:
                    failed = entries
            else:  # includes the client's own timeouts, classified like any error
                backoff = self._retry_delay(exc, entries, started)
                if backoff is None:
                    fatal = exc
                else:
                    failed = entries
        else:
            if result.error is not None:
                fatal = result.error
            elif result.retry_entries:
                failed = result.retry_entries
                cause = result.cause or RetryableError(
                    f"{getattr(self, 'connector', type(self).__name__)}: {len(failed)} of "
                    f"{len(entries)} entries of a request were refused"
                )
                backoff = self._retry_delay(cause, failed, started)
                if backoff is None:
                    fatal = cause
        self._send_time_ms = (time.monotonic() - started) * 1000.0
        whole_failed = failed is entries
        self._strategy.register_completed_request(
            RequestResultInfo(len(entries), len(entries) if fatal else len(failed), whole_failed)
        )
        if fatal is not None:
            self._send_errors.inc(len(entries))
            self._fail(fatal)
            return
        delivered = len(entries) - len(failed)
        if delivered and self._failures:
            self._forget_failures(entries, failed)
        if delivered:
            self._records_out += delivered
            self._bytes_out.inc(nbytes - sum(map(self.size_in_bytes, failed)))
        if failed:
            self._send_errors.inc(len(failed))
            if backoff:
                await asyncio.sleep(backoff)
            if self._error is None:
                self._enqueue(list(failed), started - self._max_time, front=True)

    def _retry_delay(
        self, error: BaseException, entries: Sequence[E], started: float
    ) -> float | None:
        """The backoff before ``entries`` are sent again, or ``None`` to give up.

        Counts one more failed attempt for each entry; the request's attempt is its most-tried
        entry's, and its elapsed time runs from that entry set's earliest first failure.
        """
        if self.classify(error) is ErrorClass.FATAL:
            return None
        failures = self._failures
        attempt, since = 0, started
        for entry in entries:
            count, first = failures.get(id(entry), (0, started))
            failures[id(entry)] = (count + 1, first)
            attempt, since = max(attempt, count + 1), min(since, first)
        policy = self.options.retry_policy
        elapsed = time.monotonic() - since
        delay = policy.next_delay(error, attempt, elapsed)
        if delay is None:
            error.add_note(policy.give_up_note(error, attempt, elapsed))
            return None
        return delay.total_seconds()

    def _forget_failures(self, entries: Sequence[E], failed: Sequence[E]) -> None:
        """Drop the failure counts of the delivered ``entries`` (all but ``failed``)."""
        kept = {id(entry) for entry in failed}
        for entry in entries:
            if id(entry) not in kept:
                self._failures.pop(id(entry), None)

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        elif error is not self._error:
            self._error.add_note(f"also: {type(error).__name__}: {error}")
        self._wake()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _wait_for_progress(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter


class AsyncSinkBase(Sink[IN], Generic[IN, E]):
    """A sink whose writer is an :class:`AsyncSinkWriter`: at-least-once, buffer in the checkpoint.

    A connector implements :meth:`create_async_writer` (build its writer with ``restored``
    entries) and may override :meth:`entry_serializer` (a versioned serializer of one request
    entry; buffered entries are checkpointed one by one, so they are redistributed when the
    parallelism changes). By default entries go through core's state codec, so tuples, bytes,
    datetimes, Decimals and dataclasses come back from a restore unchanged.

    Args:
        element_converter: turns a record into a request entry.
        options: the writer's knobs (validated when built).
        on_record_too_large: what happens to a record over ``max_record_size_in_bytes``:
            ``None`` or :class:`FailOnError` fail the job (the error names size, limit and
            option), :class:`SkipOnError` drops it, :class:`DeadLetterOnError` hands it over.
    """

    def __init__(
        self,
        *,
        element_converter: Callable[[IN], E],
        options: AsyncSinkOptions | None = None,
        on_record_too_large: ErrorPolicy | None = None,
    ) -> None:
        self.element_converter = element_converter
        self.options = options or AsyncSinkOptions()
        self.on_record_too_large = on_record_too_large

    @abstractmethod
    def create_async_writer(
        self, context: WriterInitContext, restored: Sequence[E]
    ) -> AsyncSinkWriter[IN, E]:
        """A writer for one subtask, starting with the ``restored`` entries."""

    def entry_serializer(self) -> VersionedSerializer[E]:
        """The serializer of one request entry (the checkpointed buffer): the state codec."""
        return StateCodecSerializer()

    def create_writer(self, context: WriterInitContext) -> AsyncSinkWriter[IN, E]:
        """A writer with an empty buffer."""
        writer = self.create_async_writer(context, ())
        writer.on_record_too_large = self.on_record_too_large
        return writer

    def restore_writer(
        self, context: WriterInitContext, states: list[Any]
    ) -> AsyncSinkWriter[IN, E]:
        """A writer whose buffer holds the checkpointed entries (accepted before, so in limits)."""
        writer = self.create_async_writer(context, states)
        writer.on_record_too_large = self.on_record_too_large
        return writer

    def writer_state_serializer(self) -> VersionedSerializer[Any]:
        """The entry serializer (writer state is the list of buffered entries)."""
        return self.entry_serializer()
