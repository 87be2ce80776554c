"""The split reader and the record emitter on their own, with a fake consumer and a fake output.

The broker tests cover them end to end; these pin down their rules: bounded splits end at the
consumer's position, records past a stopping offset are dropped, ``wake_up`` ends a waiting
fetch, a batch goes out in one ``collect_batch`` with its timestamps, bad values go to the
format's error policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError
from headwater.connectors.base import (
    DeadLetter,
    DeadLetterOnError,
    FailOnError,
    JsonFormat,
    SkipOnError,
)
from headwater.connectors.kafka import KafkaPartitionSplit, KafkaRecord, KafkaSourceOptions
from headwater.connectors.kafka._reader import (
    KafkaPartitionSplitReader,
    KafkaRecordEmitter,
    KafkaSplitState,
)
from headwater.core import FatalError, RetryableError, SerializationError
from headwater.core._metrics import MetricRegistry


def record(
    offset: int, value: bytes | None, *, partition: int = 0, timestamp: int | None = None
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="t",
        partition=partition,
        offset=offset,
        timestamp=1000 + offset if timestamp is None else timestamp,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=-1 if value is None else len(value),
        headers=[("h", b"1")],
    )


# -- the emitter ---------------------------------------------------------------------------------


@dataclass
class FakeOutput:
    """Records what the emitter hands over; ``collect`` must not be used."""

    batches: list[tuple[list[Any], list[int | None] | None]] = field(default_factory=list)

    def collect(self, record: Any, timestamp: int | None = None, /) -> None:
        raise AssertionError("the emitter emits whole batches")

    def collect_batch(
        self, records: Sequence[Any], timestamps: Sequence[int | None] | None = None, /
    ) -> None:
        self.batches.append((list(records), None if timestamps is None else list(timestamps)))


def state(starting_offset: int = 0) -> KafkaSplitState:
    return KafkaSplitState(KafkaPartitionSplit("t", 0, starting_offset), starting_offset)


def emit(emitter: KafkaRecordEmitter[Any], records: list[Any]) -> tuple[FakeOutput, int]:
    output, split_state = FakeOutput(), state(records[0].offset)
    emitter.emit_batch(records, output, split_state)  # type: ignore[arg-type]
    return output, split_state.next_offset


def test_bytes_values_in_one_batch_with_timestamps_tombstones_skipped() -> None:
    errors = MetricRegistry().group({}).counter("numRecordsInErrors")
    emitter: KafkaRecordEmitter[bytes] = KafkaRecordEmitter(None, None, errors)
    output, next_offset = emit(emitter, [record(5, b"a"), record(6, None), record(7, b"b")])
    assert output.batches == [([b"a", b"b"], [1005, 1007])]
    assert next_offset == 8  # past the tombstone too


def test_a_trailing_tombstone_still_advances_the_position() -> None:
    errors = MetricRegistry().group({}).counter("numRecordsInErrors")
    emitter: KafkaRecordEmitter[bytes] = KafkaRecordEmitter(None, None, errors)
    output, next_offset = emit(emitter, [record(3, None)])
    assert output.batches == [([], [])]
    assert next_offset == 4


def test_record_deserializer_sees_the_whole_record() -> None:
    errors = MetricRegistry().group({}).counter("numRecordsInErrors")
    emitter: KafkaRecordEmitter[KafkaRecord] = KafkaRecordEmitter(None, lambda r: r, errors)
    output, next_offset = emit(emitter, [record(0, b"a"), record(1, None, timestamp=7)])
    [(records, timestamps)] = output.batches
    assert records[0] == KafkaRecord(
        topic="t",
        partition=0,
        offset=0,
        timestamp=1000,
        key=b"k",
        value=b"a",
        headers=(("h", b"1"),),
    )
    assert records[1].value is None  # tombstones reach a record deserializer
    assert timestamps == [1000, 7]
    assert next_offset == 2


def test_record_deserializer_error_names_the_record_and_counts() -> None:
    errors = MetricRegistry().group({}).counter("numRecordsInErrors")

    def picky(r: KafkaRecord) -> bytes:
        if r.offset == 11:
            raise ValueError("no")
        return r.value or b""

    emitter: KafkaRecordEmitter[bytes] = KafkaRecordEmitter(None, picky, errors)
    output, split_state = FakeOutput(), state(10)
    with pytest.raises(SerializationError, match=r"t-0 offset 11: ValueError: no"):
        emitter.emit_batch([record(10, b"a"), record(11, b"b")], output, split_state)  # type: ignore[arg-type]
    assert errors.count == 1
    assert split_state.next_offset == 10  # not advanced: the batch was not emitted


def test_format_decodes_a_batch_in_one_call() -> None:
    group = MetricRegistry().group({})
    emitter: KafkaRecordEmitter[Any] = KafkaRecordEmitter(
        JsonFormat().deserializer(group), None, group.counter("numRecordsInErrors")
    )
    output, next_offset = emit(emitter, [record(0, b"1"), record(1, None), record(2, b'{"a":2}')])
    assert output.batches == [([1, {"a": 2}], [1000, 1002])]
    assert next_offset == 3


def test_bad_values_skipped_and_counted_timestamps_stay_aligned() -> None:
    group = MetricRegistry().group({})
    emitter: KafkaRecordEmitter[Any] = KafkaRecordEmitter(
        JsonFormat(on_error=SkipOnError()).deserializer(group),
        None,
        group.counter("numRecordsInErrors"),
    )
    output, next_offset = emit(emitter, [record(0, b"1"), record(1, b"{bad"), record(2, b"3")])
    assert output.batches == [([1, 3], [1000, 1002])]
    assert group.counter("numRecordsInErrors").count == 1
    assert next_offset == 3


def test_bad_values_reach_dead_letters_with_their_position() -> None:
    group = MetricRegistry().group({})
    letters: list[DeadLetter] = []
    fmt = JsonFormat(on_error=DeadLetterOnError(letters.append))
    emitter: KafkaRecordEmitter[Any] = KafkaRecordEmitter(
        fmt.deserializer(group), None, group.counter("numRecordsInErrors")
    )
    emit(emitter, [record(4, b"{bad"), record(5, b"5")])
    assert [(x.payload, x.position, x.format) for x in letters] == [(b"{bad", "t-0@4", "json")]


def test_bad_value_fails_by_default() -> None:
    group = MetricRegistry().group({})
    emitter: KafkaRecordEmitter[Any] = KafkaRecordEmitter(
        JsonFormat(on_error=FailOnError()).deserializer(group),
        None,
        group.counter("numRecordsInErrors"),
    )
    with pytest.raises(SerializationError, match="cannot deserialize the record at position t-0@1"):
        emit(emitter, [record(0, b"0"), record(1, b"{bad")])


def test_emit_record_is_a_batch_of_one() -> None:
    errors = MetricRegistry().group({}).counter("numRecordsInErrors")
    emitter: KafkaRecordEmitter[bytes] = KafkaRecordEmitter(None, None, errors)
    output, split_state = FakeOutput(), state(0)
    emitter.emit_record(record(0, b"a"), output, split_state)  # type: ignore[arg-type]
    assert output.batches == [([b"a"], [1000])] and split_state.next_offset == 1


# -- the split reader ----------------------------------------------------------------------------


class FakeConsumer:
    """The part of AIOKafkaConsumer the split reader uses, over in-memory partition logs."""

    def __init__(self, logs: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        self.logs = logs
        self.positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self.error: Exception | None = None
        self.waits = 0

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.positions = {tp: self.positions.get(tp, 0) for tp in partitions}
        self._paused &= set(partitions)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def pause(self, *tps: TopicPartition) -> None:
        self._paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._paused.difference_update(tps)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    async def getmany(
        self, *, timeout_ms: int, max_records: int | None
    ) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        if self.error is not None:
            raise self.error
        out = {}
        for tp, position in self.positions.items():
            batch = [r for r in self.logs.get(tp, []) if r.offset >= position][:max_records]
            if batch and tp not in self._paused:
                out[tp] = batch
                self.positions[tp] = batch[-1].offset + 1
        if not out and timeout_ms:
            self.waits += 1
            await asyncio.sleep(timeout_ms / 1000)
        return out


TP0, TP1 = TopicPartition("t", 0), TopicPartition("t", 1)


def split_reader(
    logs: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]], **options: Any
) -> tuple[KafkaPartitionSplitReader, FakeConsumer]:
    reader = KafkaPartitionSplitReader(
        KafkaSourceOptions(bootstrap_servers="localhost:9092", topics=["t"], **options)
    )
    consumer = FakeConsumer(logs)
    reader.consumer = consumer  # type: ignore[assignment]
    return reader, consumer


async def test_fetch_reads_added_splits_from_their_starting_offsets() -> None:
    logs = {
        TP0: [record(o, b"x") for o in range(5)],
        TP1: [record(o, b"yy", partition=1) for o in range(3)],
    }
    reader, consumer = split_reader(logs)
    reader.handle_splits_changes([KafkaPartitionSplit("t", 0, 2), KafkaPartitionSplit("t", 1, 0)])
    fetched = await reader.fetch()
    assert {k: [r.offset for r in v] for k, v in fetched.records.items()} == {
        "t-0": [2, 3, 4],
        "t-1": [0, 1, 2],
    }
    assert fetched.finished_splits == []
    assert fetched.size_in_bytes == 3 * (1 + 1) + 3 * (1 + 2)
    assert fetched.max_event_time == 1004
    assert consumer.assignment() == {TP0, TP1}


async def test_bounded_split_drops_records_past_the_stop_and_finishes() -> None:
    reader, consumer = split_reader({TP0: [record(o, b"x") for o in range(10)]})
    reader.handle_splits_changes([KafkaPartitionSplit("t", 0, 0, stopping_offset=4)])
    fetched = await reader.fetch()
    assert [r.offset for r in fetched.records["t-0"]] == [0, 1, 2, 3]
    assert fetched.finished_splits == ["t-0"]
    await reader.fetch()  # the finished split is unassigned at the next fetch
    assert consumer.assignment() == set()


async def test_bounded_split_ends_at_the_position_even_without_records() -> None:
    """Transaction markers move the position without records: the split must still end."""
    reader, consumer = split_reader({TP0: [record(0, b"x")]}, fetch_timeout=0.01)
    reader.handle_splits_changes([KafkaPartitionSplit("t", 0, 0, stopping_offset=3)])
    assert [r.offset for r in (await reader.fetch()).records["t-0"]] == [0]
    consumer.positions[TP0] = 3  # a commit marker at offsets 1-2
    fetched = await reader.fetch()
    assert fetched.records == {} and fetched.finished_splits == ["t-0"]


async def test_empty_bounded_split_finishes_without_being_assigned() -> None:
    reader, consumer = split_reader({})
    reader.handle_splits_changes([KafkaPartitionSplit("t", 0, 5, stopping_offset=5)])
    fetched = await reader.fetch()
    assert fetched.finished_splits == ["t-0"]
    assert consumer.assignment() == set()


async def test_kept_partitions_keep_their_position_when_splits_are_added() -> None:
    reader, consumer = split_reader(
        {TP0: [record(o, b"x") for o in range(4)], TP1: [record(0, b"y", partition=1)]}
    )
    reader.handle_splits_changes([KafkaPartitionSplit("t", 0, 0)])
    await reader.fetch()
    reader.handle_splits_changes([KafkaPartitionSplit("t", 1, 0)])
    fetched = await reader.fetch()
    assert list(fetched.records) == ["t-1"]  # t-0 not read again from its starting offset
    assert consumer.positions == {TP0: 4, TP1: 1}


async def test_paused_splits_are_paused_in_the_consumer() -> None:
    reader, consumer = split_reader({TP0: [record(0, b"x")], TP1: [record(0, b"y", partition=1)]})
    reader.handle_splits_changes([KafkaPartitionSplit("t", 0, 0), KafkaPartitionSplit("t", 1, 0)])
    reader.pause_or_resume_splits(["t-0"], [])
    assert list((await reader.fetch()).records) == ["t-1"]
    assert consumer.paused() == {TP0}
    reader.pause_or_resume_splits([], ["t-0"])
    assert list((await reader.fetch()).records) == ["t-0"]
    assert consumer.paused() == set()


async def test_wake_up_ends_a_waiting_fetch_at_once() -> None:
    reader, consumer = split_reader({}, fetch_timeout=30)
    reader.handle_splits_changes([KafkaPartitionSplit("t", 0, 0)])
    fetch = asyncio.ensure_future(reader.fetch())
    while not consumer.waits:
        await asyncio.sleep(0)
    reader.wake_up()
    fetched = await asyncio.wait_for(fetch, timeout=2)
    assert fetched.records == {} and fetched.finished_splits == []


@pytest.mark.parametrize(
    ("error", "kind"),
    [(KafkaConnectionError(), RetryableError), (TopicAuthorizationFailedError(), FatalError)],
)
async def test_client_errors_are_translated(error: Exception, kind: type[Exception]) -> None:
    reader, consumer = split_reader({})
    reader.handle_splits_changes([KafkaPartitionSplit("t", 0, 0)])
    consumer.error = error
    with pytest.raises(kind, match="kafka: fetching records failed") as info:
        await reader.fetch()
    assert info.value.__cause__ is error
