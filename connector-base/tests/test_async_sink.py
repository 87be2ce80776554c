from __future__ import annotations

import asyncio
import collections
import datetime
import decimal
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from headwater.connectors.base import (
    AIMDRateLimitingStrategy,
    AsyncSinkBase,
    AsyncSinkOptions,
    AsyncSinkWriter,
    Backoff,
    DeadLetter,
    DeadLetterOnError,
    RecordTooLargeError,
    RequestInfo,
    RequestResultInfo,
    RetryPolicy,
    SkipOnError,
    SubmitResult,
)
from headwater.core import (
    CheckpointConfig,
    ConfigurationError,
    DataGenSource,
    FatalError,
    JsonSerializer,
    RetryableError,
    StreamEnvironment,
    VersionedSerializer,
    WriterInitContext,
)
from headwater.core.testing import SlowCommitSink


class FakeWriter(AsyncSinkWriter[int, str]):
    """Records every request; a script decides each request's outcome."""

    def __init__(
        self, context: Any, *, delay: float = 0.0, script: list[Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(context, element_converter=str, **kwargs)
        self.requests: list[list[str]] = []
        self.delivered: list[str] = []
        self.delay = delay
        self.script = script or []
        self.in_flight = 0
        self.max_seen_in_flight = 0

    async def submit_request_entries(self, entries: list[str]) -> SubmitResult[str]:
        self.requests.append(list(entries))
        self.in_flight += 1
        self.max_seen_in_flight = max(self.max_seen_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            action = self.script.pop(0) if self.script else None
            if isinstance(action, BaseException):
                raise action
            if action == "retry-odd":
                refused = [e for e in entries if int(e) % 2]
                self.delivered.extend(e for e in entries if not int(e) % 2)
                return SubmitResult.retry(refused)
            if isinstance(action, SubmitResult):
                return action
            self.delivered.extend(entries)
            return SubmitResult.complete()
        finally:
            self.in_flight -= 1

    def size_in_bytes(self, entry: str) -> int:
        return len(entry)


def opts(**kw: Any) -> AsyncSinkOptions:
    base: dict[str, Any] = {
        "max_batch_size": 10,
        "max_in_flight_requests": 2,
        "max_buffered_requests": 100,
        "max_time_in_buffer": timedelta(seconds=60),
        "max_batch_size_in_bytes": 10_000,
        "max_record_size_in_bytes": 1000,
    }
    base.update(kw)
    return AsyncSinkOptions(**base)


def test_options_cross_field_rules() -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"max_buffered_requests \(10\) must be greater than max_batch_size \(10\)",
    ):
        AsyncSinkOptions(max_batch_size=10, max_buffered_requests=10)
    with pytest.raises(
        ConfigurationError,
        match=r"max_record_size_in_bytes \(2000\) must not exceed max_batch_size_in_bytes \(1000\)",
    ):
        AsyncSinkOptions(max_batch_size_in_bytes=1000, max_record_size_in_bytes=2000)
    with pytest.raises(ConfigurationError, match="max_in_flight_requests"):
        AsyncSinkOptions(max_in_flight_requests=0)
    with pytest.raises(ConfigurationError, match="max_time_in_buffer must be positive"):
        AsyncSinkOptions(max_time_in_buffer=timedelta(0))
    with pytest.raises(ConfigurationError, match="request_timeout must be positive"):
        AsyncSinkOptions(request_timeout=timedelta(seconds=-1))
    options = AsyncSinkOptions()
    with pytest.raises(Exception, match="frozen"):
        options.max_batch_size = 3  # type: ignore[misc]


async def test_batch_cut_by_count(make_context: Any) -> None:
    writer = FakeWriter(make_context(), options=opts())
    await writer.write_batch(range(25))
    await asyncio.sleep(0.01)
    assert [len(r) for r in writer.requests] == [10, 10]  # 5 wait for more or for time
    await writer.flush(True)
    assert [len(r) for r in writer.requests] == [10, 10, 5]
    assert writer.delivered == [str(i) for i in range(25)]


async def test_batch_cut_by_bytes(make_context: Any) -> None:
    writer = FakeWriter(
        make_context(), options=opts(max_batch_size_in_bytes=25, max_record_size_in_bytes=25)
    )
    await writer.write_batch([10**9] * 6)  # 10 bytes each
    await writer.flush(True)
    assert [len(r) for r in writer.requests] == [2, 2, 2]


async def test_batch_cut_by_time(make_context: Any) -> None:
    writer = FakeWriter(make_context(), options=opts(max_time_in_buffer=timedelta(milliseconds=50)))
    await writer.write_batch([1, 2, 3])
    await asyncio.sleep(0.02)
    assert writer.requests == []
    await asyncio.sleep(0.08)
    assert writer.requests == [["1", "2", "3"]]


async def test_in_flight_limit_respected(make_context: Any) -> None:
    writer = FakeWriter(make_context(), delay=0.01, options=opts(max_in_flight_requests=3))
    await writer.write_batch(range(95))
    await writer.flush(True)
    assert writer.max_seen_in_flight == 3
    assert sorted(writer.delivered, key=int) == [str(i) for i in range(95)]


async def test_buffer_limit_applies_backpressure(make_context: Any) -> None:
    writer = FakeWriter(make_context(), delay=0.02, options=opts(max_buffered_requests=20))
    started = asyncio.get_running_loop().time()
    for _ in range(10):
        await writer.write_batch(range(10))
        assert len(writer.snapshot_state(0)) < 20 + 10
    assert asyncio.get_running_loop().time() - started > 0.03
    await writer.flush(True)
    assert len(writer.delivered) == 100


def test_aimd_halves_and_recovers() -> None:
    aimd = AIMDRateLimitingStrategy(max_in_flight_requests=4, max_rate=400, increase_rate=10)
    assert aimd.max_batch_size == 400
    for _ in range(3):
        aimd.register_in_flight_request(RequestInfo(100))
        aimd.register_completed_request(RequestResultInfo(100, failed_entries=100))
    assert aimd.rate == 50
    aimd.register_in_flight_request(RequestInfo(50))
    assert aimd.should_block(RequestInfo(1))
    aimd.register_completed_request(RequestResultInfo(50, failed_entries=0))
    assert aimd.rate == 60
    assert not aimd.should_block(RequestInfo(10_000))  # never blocks when idle
    for _ in range(100):
        aimd.register_in_flight_request(RequestInfo(10))
        aimd.register_completed_request(RequestResultInfo(10, 0))
    assert aimd.rate == 400
    for _ in range(20):
        aimd.register_in_flight_request(RequestInfo(1))
        aimd.register_completed_request(RequestResultInfo(1, 0, throttled=True))
    assert aimd.rate == 1


def test_aimd_shrinks_by_the_refused_share_of_a_request() -> None:
    aimd = AIMDRateLimitingStrategy(max_in_flight_requests=4, max_rate=4000, increase_rate=100)
    # 5% of every request refused (scattered 429s): the limit settles near the top, where the
    # increase balances the decrease (2 * 100 * 0.95 / 0.05 = 3800), instead of collapsing.
    for _ in range(500):
        aimd.register_in_flight_request(RequestInfo(1000))
        aimd.register_completed_request(RequestResultInfo(1000, failed_entries=50))
    assert 3700 <= aimd.rate <= 3900
    # Half of each request refused: the limit falls to a fraction of a batch.
    for _ in range(50):
        aimd.register_in_flight_request(RequestInfo(1000))
        aimd.register_completed_request(RequestResultInfo(1000, failed_entries=500))
    assert aimd.rate < 300


async def test_refused_entries_back_off_and_give_up_per_entry(
    make_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = RetryPolicy(
        backoff=Backoff(initial=timedelta(milliseconds=40), maximum=timedelta(milliseconds=40)),
        max_attempts=3,
    )
    writer = FakeWriter(make_context(), script=["retry-odd"], options=opts(retry_policy=policy))
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float) -> None:
        slept.append(delay)
        await real_sleep(delay)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    await writer.write_batch(range(4))
    await writer.flush(True)
    assert writer.requests == [["0", "1", "2", "3"], ["1", "3"]]
    assert sorted(writer.delivered) == ["0", "1", "2", "3"]
    assert [d for d in slept if d > 0] and all(d <= 0.04 for d in slept)  # one jittered backoff

    refused = RetryableError("item throttled")
    writer = FakeWriter(
        make_context(),
        script=[SubmitResult.retry(["7"], refused)] * 3,
        options=opts(retry_policy=policy),
    )
    await writer.write_batch([7])
    with pytest.raises(RetryableError, match="item throttled") as caught:
        await writer.flush(True)
    assert len(writer.requests) == 3  # max_attempts per entry
    assert any("gave up after 3 attempt" in note for note in caught.value.__notes__)


async def test_retry_entries_are_resent_and_nothing_lost(make_context: Any) -> None:
    context = make_context()
    writer = FakeWriter(context, script=["retry-odd", "retry-odd"], options=opts())
    await writer.write_batch(range(10))
    await writer.flush(True)
    assert sorted(writer.delivered, key=int) == [str(i) for i in range(10)]
    assert writer.requests[0] == [str(i) for i in range(10)]
    assert writer.requests[1] == ["1", "3", "5", "7", "9"]
    metrics = context.metrics()
    assert writer.requests[2] == ["1", "3", "5", "7", "9"]
    assert metrics["numRecordsSendErrors"] == 10
    assert metrics["numRecordsOut"] == 10
    assert metrics["numBytesOut"] == 10
    assert metrics["currentSendTime"] is not None


async def test_retryable_error_is_retried_with_backoff(make_context: Any) -> None:
    policy = RetryPolicy(
        backoff=Backoff(initial=timedelta(milliseconds=5), maximum=timedelta(milliseconds=5))
    )
    writer = FakeWriter(
        make_context(),
        script=[RetryableError("throttled"), TimeoutError()],
        options=opts(retry_policy=policy),
    )
    await writer.write_batch(range(4))
    await writer.flush(True)
    assert writer.delivered == ["0", "1", "2", "3"]
    assert len(writer.requests) == 3


async def test_fatal_error_fails_the_writer(make_context: Any) -> None:
    writer = FakeWriter(make_context(), script=[FatalError("no such stream")], options=opts())
    await writer.write_batch(range(3))
    with pytest.raises(FatalError, match="no such stream"):
        await writer.flush(True)
    with pytest.raises(FatalError):
        await writer.write_batch([1])


async def test_fail_verb_and_exhausted_retries(make_context: Any) -> None:
    writer = FakeWriter(
        make_context(), script=[SubmitResult.fail(ValueError("bad request"))], options=opts()
    )
    await writer.write_batch([1])
    with pytest.raises(ValueError, match="bad request"):
        await writer.flush(True)
    policy = RetryPolicy(max_attempts=2, backoff=Backoff(initial=timedelta(milliseconds=1)))
    writer = FakeWriter(
        make_context(),
        script=[RetryableError("a"), RetryableError("b")],
        options=opts(retry_policy=policy),
    )
    await writer.write_batch([1])
    with pytest.raises(RetryableError, match="b") as info:
        await writer.flush(True)
    assert "gave up after 2 attempt(s)" in info.value.__notes__[0]


async def test_request_timeout(make_context: Any) -> None:
    writer = FakeWriter(
        make_context(),
        delay=1.0,
        options=opts(request_timeout=timedelta(milliseconds=20), fail_on_timeout=True),
    )
    await writer.write_batch([1])
    with pytest.raises(Exception, match=r"no answer within request_timeout \(0:00:00.020000\)"):
        await writer.flush(True)


async def test_oversized_record_refused(make_context: Any) -> None:
    writer = FakeWriter(
        make_context(), options=opts(max_record_size_in_bytes=5, max_batch_size_in_bytes=100)
    )
    with pytest.raises(
        RecordTooLargeError, match=r"a record of 6 bytes exceeds max_record_size_in_bytes \(5\)"
    ):
        await writer.write_batch([123456])


async def test_oversized_records_skipped_or_dead_lettered_by_policy(make_context: Any) -> None:
    letters: list[DeadLetter] = []
    for policy in (SkipOnError(), DeadLetterOnError(letters.append)):
        context = make_context()
        writer = FakeWriter(
            context, options=opts(max_record_size_in_bytes=5, max_batch_size_in_bytes=100)
        )
        writer.on_record_too_large = policy
        await writer.write_batch([1, 123456, 22, 7777777])
        await writer.flush(True)
        assert sorted(e for request in writer.requests for e in request) == ["1", "22"]
        assert context.metrics()["numRecordsOutErrors"] == 2
    assert [(letter.payload, letter.position) for letter in letters] == [
        (b"'123456'", 1),
        (b"'7777777'", 3),
    ]
    assert "6 bytes exceeds max_record_size_in_bytes (5)" in letters[0].error


class FakeSink(AsyncSinkBase[int, str]):
    def __init__(self, writers: list[FakeWriter], **kw: Any) -> None:
        super().__init__(element_converter=str, options=opts(**kw))
        self.writers = writers

    def create_async_writer(
        self, context: WriterInitContext, restored: Sequence[str]
    ) -> FakeWriter:
        writer = FakeWriter(context, options=self.options, restored=restored, delay=0.005)
        self.writers.append(writer)
        return writer

    def entry_serializer(self) -> VersionedSerializer[str]:
        return JsonSerializer(version=1, to_json=lambda e: e, from_json=lambda _v, d: str(d))


async def test_buffered_entries_survive_a_restore(make_context: Any) -> None:
    writers: list[FakeWriter] = []
    sink = FakeSink(writers)
    first = sink.create_writer(make_context())
    await first.write_batch(range(25))
    await first.flush(False)  # checkpoint: waits for requests in flight, keeps the rest buffered
    state = first.snapshot_state(1)
    assert first.delivered == [str(i) for i in range(20)]
    assert state == [str(i) for i in range(20, 25)]
    await first.close()  # the process dies; nothing else is sent
    serializer = sink.writer_state_serializer()
    restored_state = [serializer.deserialize(1, serializer.serialize(s)) for s in state]
    second = sink.restore_writer(make_context(), restored_state)
    await second.write_batch([25, 26])
    await second.flush(True)
    assert first.delivered + second.delivered == [str(i) for i in range(27)]


class DefaultSerializerSink(AsyncSinkBase[Any, Any]):
    """A sink that leaves its entries to the default serializer (core's state codec)."""

    def create_async_writer(self, context: WriterInitContext, restored: Sequence[Any]) -> Any:
        raise NotImplementedError


def test_buffered_entries_keep_their_types_by_default() -> None:
    serializer = DefaultSerializerSink(element_converter=lambda r: r).writer_state_serializer()
    entry = (
        ("key", 1),
        datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
        decimal.Decimal("1.50"),
        b"raw",
        {1: {"set"}},
    )
    restored = serializer.deserialize(serializer.version, serializer.serialize(entry))
    assert restored == entry and type(restored) is tuple and type(restored[0]) is tuple
    assert restored[1].utcoffset() == datetime.timedelta(hours=2)


async def test_flush_before_checkpoint_waits_for_retries(make_context: Any) -> None:
    writer = FakeWriter(make_context(), delay=0.01, script=["retry-odd"], options=opts())
    await writer.write_batch(range(10))
    await writer.flush(False)
    state = writer.snapshot_state(1)
    assert sorted(writer.delivered + state, key=int) == [str(i) for i in range(10)]
    assert not writer._requests


async def test_client_timeout_is_classified_not_a_request_timeout(make_context: Any) -> None:
    """A TimeoutError raised by the client is retried by the policy even with fail_on_timeout."""
    policy = RetryPolicy(
        backoff=Backoff(initial=timedelta(milliseconds=1), maximum=timedelta(milliseconds=1))
    )
    writer = FakeWriter(
        make_context(),
        script=[TimeoutError("client read timeout")],
        options=opts(fail_on_timeout=True, retry_policy=policy),
    )
    await writer.write_batch(range(3))
    await writer.flush(True)
    assert writer.delivered == ["0", "1", "2"]
    assert len(writer.requests) == 2


async def test_retried_entries_keep_their_order_ahead_of_newer_ones(make_context: Any) -> None:
    writer = FakeWriter(
        make_context(), delay=0.005, script=["retry-odd"], options=opts(max_in_flight_requests=1)
    )
    await writer.write_batch(range(10))
    await writer.write_batch(range(10, 15))
    await writer.flush(True)
    assert writer.requests[1][:5] == ["1", "3", "5", "7", "9"]
    assert sorted(writer.delivered, key=int) == [str(i) for i in range(15)]


def test_options_json_schema_and_connector_defaults() -> None:
    from pydantic import TypeAdapter

    class ServiceWriterOptions(AsyncSinkOptions):
        max_batch_size: int = AsyncSinkOptions.default("max_batch_size", 25)

    schema = TypeAdapter(ServiceWriterOptions).json_schema()
    assert schema["properties"]["max_batch_size"] == {
        "default": 25,
        "description": "the most entries per request.",
        "minimum": 1,
        "title": "Max Batch Size",
        "type": "integer",
    }
    assert "classifier" not in schema["$defs"]["RetryPolicy"]["properties"]
    assert ServiceWriterOptions.model_validate({"max_in_flight_requests": 2}).max_batch_size == 25
    with pytest.raises(ConfigurationError, match="max_batch_size"):
        ServiceWriterOptions(max_batch_size=0)
    with pytest.raises(TypeError, match="no field"):
        AsyncSinkOptions.default("batch", 1)


def test_a_stop_with_savepoint_sends_nothing_it_saved(tmp_path: Path) -> None:
    """Entries buffered at the stop's savepoint are in its state: sending them before the job
    stops (the buffer timer fires) would deliver them twice once the job is restored."""
    writers: list[FakeWriter] = []

    async def run(restore: str | None, savepoint: Path) -> Path:
        env = StreamEnvironment(
            parallelism=1,
            checkpointing=CheckpointConfig(
                interval=timedelta(milliseconds=100), restore_from=restore
            ),
        )
        numbers = env.from_source(
            DataGenSource(lambda i, _r: i, rows_per_second=3000, num_splits=1, batch_size=30)
        ).uid("numbers")
        sink = FakeSink(
            writers,
            max_batch_size=500,
            max_buffered_requests=5000,
            max_time_in_buffer=timedelta(milliseconds=20),
        )
        numbers.sink_to(sink).uid("async sink")
        numbers.sink_to(SlowCommitSink()).uid("slow commits")
        job = await env.execute_async("async sink stop")
        await asyncio.sleep(0.5)
        return await job.stop_with_savepoint(savepoint)

    first = asyncio.run(run(None, tmp_path / "sp1"))
    asyncio.run(run(str(first), tmp_path / "sp2"))
    delivered = [int(e) for w in writers for e in w.delivered]
    assert len(delivered) > 500
    duplicates = sorted(n for n, count in collections.Counter(delivered).items() if count > 1)
    assert not duplicates, f"delivered twice: {duplicates[:20]}"


class PoisonWriter(FakeWriter):
    """Every request carrying the poison entry fails with a retryable error; the others succeed."""

    POISON = "113"

    async def submit_request_entries(self, entries: list[str]) -> SubmitResult[str]:
        if self.POISON in entries:
            self.requests.append(list(entries))
            await asyncio.sleep(0.002)
            raise RetryableError("throttled")
        return await super().submit_request_entries(entries)


async def test_retry_limit_counts_per_entry_while_other_requests_succeed(
    make_context: Any,
) -> None:
    policy = RetryPolicy(max_attempts=3, backoff=Backoff(initial=timedelta(milliseconds=1)))
    writer = PoisonWriter(
        make_context(),
        delay=0.002,
        options=opts(max_batch_size=1, max_in_flight_requests=2, retry_policy=policy),
    )
    # Multi-digit strings: distinct objects (CPython shares one-character strings).
    await writer.write_batch(range(100, 160))
    with pytest.raises(RetryableError, match="throttled") as info:
        await writer.flush(True)
    poison_attempts = [r for r in writer.requests if PoisonWriter.POISON in r]
    assert len(poison_attempts) == 3
    assert "gave up after 3 attempt(s)" in info.value.__notes__[0]
    assert PoisonWriter.POISON not in writer.delivered
