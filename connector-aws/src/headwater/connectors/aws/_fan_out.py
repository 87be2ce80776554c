"""Kinesis enhanced fan-out (SubscribeToShard): the consumer, its options and the split reader.

A consumer registered on the stream gets its own 2 MB/s per shard, pushed over HTTP/2 event
streams, instead of sharing each shard's GetRecords limits with other readers. The enumerator
registers the consumer when the job starts and deregisters it when the job ends
(``JOB_MANAGED``), or uses one the user manages (``SELF_MANAGED``); readers look its ARN up by
name. Shard discovery, lineage and assignment stay the polling source's (ListShards).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from botocore.exceptions import ClientError
from headwater.connectors.aws._aws import error_code, translate
from headwater.connectors.aws._kinesis_api import KinesisApi, kinesis_timestamp
from headwater.connectors.aws._reader import Record, ShardCursor, ShardSplitReader
from headwater.connectors.aws._shards import ShardSplit, StartingPosition
from headwater.connectors.base import OptionsModel, RecordsBySplit
from headwater.core import ConnectorError, FatalError, RetryableError
from pydantic import Field, model_validator
from typing_extensions import override

__all__ = [
    "EnhancedFanOutOptions",
    "FanOutKinesisApi",
    "FanOutShardSplitReader",
    "subscription_error",
]

log = logging.getLogger(__name__)

_MAX_WAIT = 1.0
"""The longest a fetch waits for an event (so split changes and due shards are seen soon)."""

_END_CHECK_INTERVAL = 10.0
"""Seconds between checks whether a caught-up shard was closed, without a discovery interval."""


class EnhancedFanOutOptions(OptionsModel):
    """Read with enhanced fan-out (SubscribeToShard) through a registered stream consumer.

    Args:
        consumer_name: the consumer's name, unique per stream (1-128 of ``a-zA-Z0-9_.-``). Two
            jobs reading one stream need two names.
        consumer_lifecycle: ``JOB_MANAGED`` (default): the job registers the consumer when it
            starts (or reuses one of that name) and deregisters it when it ends or stops, also
            with a savepoint. ``SELF_MANAGED``: the consumer must exist and be ``ACTIVE``; the
            job never registers or deregisters it (the IAM role needs no
            ``RegisterStreamConsumer`` then).
        registration_timeout: how long the job waits at start for a consumer to become
            ``ACTIVE``.
    """

    consumer_name: str = Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_.-]+$")
    consumer_lifecycle: Literal["JOB_MANAGED", "SELF_MANAGED"] = "JOB_MANAGED"
    registration_timeout: timedelta = timedelta(minutes=1)

    @model_validator(mode="after")
    def _check(self) -> EnhancedFanOutOptions:
        if self.registration_timeout <= timedelta(0):
            raise ValueError("registration_timeout must be positive")
        return self


def _cause_code(exc: BaseException) -> str | None:
    """The AWS error code behind a translated error."""
    return error_code(exc.__cause__) if exc.__cause__ is not None else error_code(exc)


class FanOutKinesisApi(KinesisApi):
    """Kinesis with a stream consumer: registration, the consumer's ARN, SubscribeToShard.

    Args:
        client: a boto3 ``kinesis`` client.
        fan_out: the consumer and its lifecycle.
    """

    def __init__(self, client: Any, fan_out: EnhancedFanOutOptions) -> None:
        super().__init__(client)
        self.fan_out = fan_out
        self._consumer_arn: str | None = None
        self._lock = threading.Lock()

    def _describe(self, stream_arn: str) -> dict[str, Any]:
        answer = self.call(
            "describe_stream_consumer",
            "DescribeStreamConsumer",
            StreamARN=stream_arn,
            ConsumerName=self.fan_out.consumer_name,
        )
        return dict(answer["ConsumerDescription"])

    @override
    def acquire(self, stream_arn: str) -> None:
        """Register the consumer (``JOB_MANAGED``) and wait until it is ``ACTIVE``."""
        if self.fan_out.consumer_lifecycle == "JOB_MANAGED":
            try:
                self.call(
                    "register_stream_consumer",
                    "RegisterStreamConsumer",
                    StreamARN=stream_arn,
                    ConsumerName=self.fan_out.consumer_name,
                )
            except ConnectorError as exc:
                if _cause_code(exc) != "ResourceInUseException":  # registered already
                    raise
        deadline = time.monotonic() + self.fan_out.registration_timeout.total_seconds()
        while (status := self._describe(stream_arn)["ConsumerStatus"]) != "ACTIVE":
            if time.monotonic() > deadline:
                raise FatalError(
                    f"{self.connector}: consumer {self.fan_out.consumer_name!r} is {status}, not "
                    f"ACTIVE after registration_timeout ({self.fan_out.registration_timeout})"
                )
            time.sleep(0.2)

    @override
    def release(self, stream_arn: str) -> None:
        """Deregister the consumer (``JOB_MANAGED``); failures are logged, not raised."""
        if self.fan_out.consumer_lifecycle != "JOB_MANAGED":
            return
        try:
            self.call(
                "deregister_stream_consumer",
                "DeregisterStreamConsumer",
                StreamARN=stream_arn,
                ConsumerName=self.fan_out.consumer_name,
            )
        except ConnectorError as exc:
            if _cause_code(exc) != "ResourceNotFoundException":
                log.warning(
                    "%s: could not deregister consumer %r: %s",
                    self.connector,
                    self.fan_out.consumer_name,
                    exc,
                )

    def consumer_arn(self, stream_arn: str) -> str:
        """The consumer's ARN once it is ``ACTIVE`` (cached; blocking).

        Raises :class:`RetryableError` while a job-managed consumer is not registered or not
        active yet (the enumerator registers it); a missing self-managed consumer is fatal.
        """
        with self._lock:
            if self._consumer_arn is not None:
                return self._consumer_arn
        try:
            description = self._describe(stream_arn)
        except FatalError as exc:
            if (
                self.fan_out.consumer_lifecycle == "JOB_MANAGED"
                and _cause_code(exc) == "ResourceNotFoundException"
            ):
                raise RetryableError(
                    f"{self.connector}: consumer {self.fan_out.consumer_name!r} is not registered yet"
                ) from exc
            raise
        if description["ConsumerStatus"] != "ACTIVE":
            raise RetryableError(
                f"{self.connector}: consumer {self.fan_out.consumer_name!r} is "
                f"{description['ConsumerStatus']}"
            )
        with self._lock:
            self._consumer_arn = str(description["ConsumerARN"])
            return self._consumer_arn

    def subscribe(self, stream_arn: str, shard_id: str, position: StartingPosition) -> Any:
        """SubscribeToShard from ``position``: the boto3 ``EventStream`` (close it when done).

        Errors as :func:`subscription_error` classifies them.
        """
        starting: dict[str, Any] = {"Type": position.kind}
        if position.kind == "AT_TIMESTAMP":
            starting["Timestamp"] = kinesis_timestamp(position.value)
        elif position.value is not None:
            starting["SequenceNumber"] = position.value
        try:
            answer = self.client.subscribe_to_shard(
                ConsumerARN=self.consumer_arn(stream_arn),
                ShardId=shard_id,
                StartingPosition=starting,
            )
        except ConnectorError:
            raise
        except Exception as exc:
            raise subscription_error(self.connector, exc) from exc
        return answer["EventStream"]


_END = object()
"""A subscription's event stream ended (the service ends each after 5 minutes)."""


def subscription_error(connector: str, exc: Exception) -> ConnectorError:
    """The headwater error of a subscription that failed, at SubscribeToShard or while read.

    ``ResourceInUseException`` (the consumer's previous subscription to the shard is still held,
    or was made less than 5 seconds ago) is retryable; other service errors are classified by
    their code; anything else (a connection reset, a read timeout) is retryable: the shard is
    subscribed again from its position.
    """
    if error_code(exc) == "ResourceInUseException":
        return RetryableError(
            f"{connector}: SubscribeToShard: the consumer's previous subscription to the shard is "
            "still held"
        )
    if isinstance(exc, ClientError):
        return translate(exc, connector, "SubscribeToShard")
    return RetryableError(
        f"{connector}: SubscribeToShard events failed: {type(exc).__name__}: {exc}"
    )


class _Subscription:
    """One SubscribeToShard call, read by its own thread into the reader's event queue.

    The thread subscribes, then puts each event on the queue (blocking while it is full, which
    holds the event stream back), then :data:`_END`; an error is put on the queue instead. A
    paused subscription holds its next event until resumed.
    """

    def __init__(
        self,
        api: FanOutKinesisApi,
        split: ShardSplit,
        position: StartingPosition,
        events: queue.Queue[tuple[_Subscription | None, object]],
    ) -> None:
        self._api = api
        self._split = split
        self._position = position
        self._events = events
        self._closed = threading.Event()
        self.running = threading.Event()
        self.running.set()
        self._stream: Any = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, name=f"kinesis-efo-{split.shard_id}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        try:
            stream = self._api.subscribe(
                self._split.stream_arn, self._split.shard_id, self._position
            )
        except ConnectorError as exc:
            self._put(exc)
            return
        with self._lock:
            if self._closed.is_set():
                stream.close()
                return
            self._stream = stream
        try:
            for event in stream:
                if not self._put(event):
                    return
            self._put(_END)
        except Exception as exc:
            if not self._closed.is_set():
                error = subscription_error(self._api.connector, exc)
                error.__cause__ = exc
                self._put(error)
        finally:
            stream.close()

    def _put(self, item: object) -> bool:
        """Queue ``item`` once running; ``False`` if the subscription was closed meanwhile."""
        while not self._closed.is_set():
            if not self.running.wait(0.1):
                continue
            try:
                self._events.put((self, item), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """Stop the thread and close the event stream (from any thread; does not wait)."""
        self._closed.set()
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()


@dataclass(slots=True)
class _Subscribed(ShardCursor):
    subscription: _Subscription | None = None
    end_checked: float = 0.0


class FanOutShardSplitReader(ShardSplitReader[FanOutKinesisApi, _Subscribed]):
    """Reads shards with SubscribeToShard: one subscription (and thread) per shard, one fetcher.

    Each shard is subscribed from its position; the subscription's thread queues its events, and
    each fetch takes one event (all its records) off the queue. Every event moves the shard's
    position to its ``ContinuationSequenceNumber``. When a subscription ends (the service ends
    each after 5 minutes) or fails with a retryable error, the shard is subscribed again right
    after that position, after a jittered backoff for errors. A shard ends when the service says
    it is closed (``ChildShards`` or no continuation), when a caught-up shard has children
    (checked with ListShards at most every ``end_check_interval``: emulators send no
    ``ChildShards``), or, in a bounded read, when it is caught up.

    Args:
        api_factory: builds the fan-out API (called on the fetcher thread).
        bounded: end shards when they are caught up.
        millis_behind: where the reader publishes ``MillisBehindLatest`` per shard.
        end_check_interval: seconds between checks whether a caught-up shard was closed.
        queue_size: events queued at most (the subscriptions wait beyond).
    """

    def __init__(
        self,
        api_factory: Callable[[], FanOutKinesisApi],
        *,
        bounded: bool,
        millis_behind: dict[str, int | None],
        end_check_interval: float | None,
        queue_size: int = 16,
    ) -> None:
        super().__init__(api_factory, bounded=bounded, millis_behind=millis_behind)
        self._events: queue.Queue[tuple[_Subscription | None, object]] = queue.Queue(queue_size)
        self._end_check = end_check_interval or _END_CHECK_INTERVAL

    @override
    def new_cursor(self, split: ShardSplit) -> _Subscribed:
        return _Subscribed(split, split.starting_position)

    @override
    def pause_or_resume_splits(self, to_pause: Collection[str], to_resume: Collection[str]) -> None:
        pause, resume = set(to_pause), set(to_resume)
        super().pause_or_resume_splits(pause, resume)
        for shard_id, cursor in self._shards.items():
            if cursor.subscription is not None:
                if shard_id in self._paused:
                    cursor.subscription.running.clear()
                else:
                    cursor.subscription.running.set()

    @override
    def wake_up(self) -> None:
        # A full queue needs no marker: the fetch has events to take and returns soon anyway.
        with contextlib.suppress(queue.Full):
            self._events.put_nowait((None, None))

    @override
    def fetch(self) -> RecordsBySplit[Record]:
        api = self.api()
        now = time.monotonic()
        for idle in self.active_cursors():
            if idle.subscription is None and idle.due <= now:
                idle.subscription = _Subscription(api, idle.split, idle.position, self._events)
        due = [c.due for c in self.active_cursors() if c.subscription is None]
        wait = min([_MAX_WAIT, *(max(0.0, d - now) for d in due)])
        try:
            subscription, item = self._events.get(timeout=wait)
        except queue.Empty:
            return RecordsBySplit()
        cursor = next((c for c in self._shards.values() if c.subscription is subscription), None)
        if subscription is None or cursor is None:
            return RecordsBySplit()  # a wake-up, or what a closed subscription had queued
        if item is _END:
            cursor.subscription = None
            return RecordsBySplit()
        if isinstance(item, RetryableError):
            cursor.subscription = None
            return self.retry_later(cursor, item)
        if isinstance(item, BaseException):
            raise item
        return self._event(cursor, item)

    def _event(self, cursor: _Subscribed, event: Any) -> RecordsBySplit[Record]:
        body = event.get("SubscribeToShardEvent")
        if body is None:
            return RecordsBySplit()
        records: list[Record] = body.get("Records", [])
        continuation = body.get("ContinuationSequenceNumber")
        millis_behind = body.get("MillisBehindLatest")
        closed = continuation is None or bool(body.get("ChildShards"))
        if not closed and not records and millis_behind in (0, None):
            closed = self._has_children(cursor)
        fetched = self.delivered(cursor, records, millis_behind, closed=closed)
        if continuation is not None:  # past records the service filtered out, too
            cursor.position = StartingPosition.after(continuation)
        if fetched.finished_splits and cursor.subscription is not None:
            cursor.subscription.close()
        return fetched

    def _has_children(self, cursor: _Subscribed) -> bool:
        """Whether a caught-up shard was closed: ListShards names it a parent (rate-limited)."""
        now = time.monotonic()
        if now - cursor.end_checked < self._end_check:
            return False
        cursor.end_checked = now
        shard_id = cursor.split.shard_id
        try:
            later = self.api().list_shards(cursor.split.stream_arn, None, shard_id)
        except RetryableError as exc:
            log.warning(
                "%s: listing the children of %s failed: %s", self.api().connector, shard_id, exc
            )
            return False
        return any(shard_id in s.parent_ids for s in later)

    @override
    def close(self) -> None:
        for cursor in self._shards.values():
            if cursor.subscription is not None:
                cursor.subscription.close()
        super().close()
