"""The decoding record emitter, the enumerator bases and the dataclass serializer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from headwater.connectors.base import (
    DecodingRecordEmitter,
    HandOut,
    JsonFormat,
    PushSplitEnumerator,
    QueueSplitEnumerator,
    SkipOnError,
    dataclass_serializer,
)
from headwater.core import RetryableError, SerializationError
from headwater.core._metrics import MetricRegistry

# -- the decoding record emitter ------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    offset: int
    value: bytes | None
    ts: int


@dataclass
class Position:
    next_offset: int = 0


class Output:
    def __init__(self) -> None:
        self.records: list[Any] = []
        self.timestamps: list[int | None] = []

    def collect(self, record: Any, timestamp: int | None = None, /) -> None:
        self.collect_batch([record], [timestamp])

    def collect_batch(self, records: Sequence[Any], timestamps: Any = None, /) -> None:
        self.records.extend(records)
        self.timestamps.extend(timestamps if timestamps is not None else [None] * len(records))


class MessageEmitter(DecodingRecordEmitter[Message, Message, Any, Position]):
    def payloads(self, elements: Sequence[Message]) -> list[bytes | None]:
        return [m.value for m in elements]

    def timestamps(self, elements: Sequence[Message]) -> list[int | None]:
        return [m.ts for m in elements]

    def position(self, element: Message, split_state: Position) -> str:
        return f"p@{element.offset}"

    def to_record(self, element: Message, split_state: Position) -> Message:
        return element

    def advance(self, elements: Sequence[Message], split_state: Position) -> None:
        split_state.next_offset = elements[-1].offset + 1


def _messages() -> list[Message]:
    return [
        Message(0, b'{"a": 1}', 1000),
        Message(1, None, 1001),  # a tombstone: no value
        Message(2, b"not json", 1002),
        Message(3, b'{"a": 3}', 1003),
    ]


def _metrics() -> Any:
    return MetricRegistry().group({"operator": "test"})


def test_format_decodes_values_skips_tombstones_and_applies_the_error_policy() -> None:
    metrics = _metrics()
    fmt = JsonFormat(on_error=SkipOnError())
    emitter = MessageEmitter(
        "test source",
        deserializer=fmt.deserializer(metrics),
        record_deserializer=None,
        errors=metrics.counter("numRecordsInErrors"),
    )
    out, state = Output(), Position()
    emitter.emit_batch(_messages(), out, state)  # type: ignore[arg-type]
    assert out.records == [{"a": 1}, {"a": 3}]
    assert out.timestamps == [1000, 1003]
    assert state.next_offset == 4  # past the last element, skipped ones included
    assert metrics.snapshot()["numRecordsInErrors"] == 1


def test_raw_bytes_without_a_format() -> None:
    metrics = _metrics()
    emitter = MessageEmitter(
        "test source",
        deserializer=None,
        record_deserializer=None,
        errors=metrics.counter("numRecordsInErrors"),
    )
    out, state = Output(), Position()
    emitter.emit_batch(_messages(), out, state)  # type: ignore[arg-type]
    assert out.records == [b'{"a": 1}', b"not json", b'{"a": 3}']
    assert out.timestamps == [1000, 1002, 1003]
    assert state.next_offset == 4


def test_record_deserializer_failure_names_the_position_and_counts() -> None:
    metrics = _metrics()
    emitter = MessageEmitter(
        "test source",
        deserializer=None,
        record_deserializer=lambda m: json.loads(m.value or b"null"),
        errors=metrics.counter("numRecordsInErrors"),
    )
    out, state = Output(), Position()
    emitter.emit_batch(_messages()[:2], out, state)  # type: ignore[arg-type]
    assert out.records == [{"a": 1}, None]  # the record deserializer sees tombstones too
    assert state.next_offset == 2
    with pytest.raises(SerializationError, match=r"^test source: .* at p@2: JSONDecodeError"):
        emitter.emit_batch(_messages()[2:], out, state)  # type: ignore[arg-type]
    assert metrics.snapshot()["numRecordsInErrors"] == 1
    assert state.next_offset == 2  # not advanced past a batch that failed


def test_prepare_drops_elements_but_the_position_passes_them() -> None:
    class Dedup(MessageEmitter):
        def prepare(self, elements: Sequence[Message], split_state: Position) -> list[Message]:
            return [m for m in elements if m.offset % 2 == 0]

    emitter = Dedup(
        "t", deserializer=None, record_deserializer=None, errors=_metrics().counter("e")
    )
    out, state = Output(), Position()
    emitter.emit_batch([Message(1, b"x", 1)], out, state)  # type: ignore[arg-type]
    assert out.records == [] and state.next_offset == 2
    emitter.emit_batch(_messages(), out, state)  # type: ignore[arg-type]
    assert out.records == [b'{"a": 1}', b"not json"]


def test_a_format_and_a_record_deserializer_together_are_refused() -> None:
    metrics = _metrics()
    with pytest.raises(ValueError, match="not both"):
        MessageEmitter(
            "t",
            deserializer=JsonFormat().deserializer(metrics),
            record_deserializer=lambda m: m,
            errors=metrics.counter("e"),
        )


# -- the queue enumerator -------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    split_id: str
    owner: int = 0


class EnumContext:
    def __init__(self, parallelism: int) -> None:
        self.parallelism = parallelism
        self.registered: set[int] = set()
        self.assignments: list[dict[int, list[Split]]] = []
        self.no_more: list[int] = []
        self.periodic: list[Callable[[], Awaitable[None]]] = []

    def registered_readers(self) -> frozenset[int]:
        return frozenset(self.registered)

    def assign_splits(self, assignment: Mapping[int, Sequence[Split]], /) -> None:
        self.assignments.append({k: list(v) for k, v in assignment.items()})

    def signal_no_more_splits(self, subtask_index: int, /) -> None:
        self.no_more.append(subtask_index)

    def call_periodically(self, fn: Callable[[], Awaitable[None]], interval: timedelta, /) -> Any:
        self.periodic.append(fn)

    def send_event_to_reader(self, subtask_index: int, event: Any, /) -> None:
        pass

    def run_blocking(self, fn: Callable[..., Any], /, *args: Any) -> Awaitable[Any]:
        return asyncio.get_running_loop().run_in_executor(None, fn, *args)


class Planned(QueueSplitEnumerator[Split]):
    async def plan_splits(self) -> list[Split]:
        return [Split(f"s{i}") for i in range(5)]


async def test_queue_answers_requests_made_before_planning_and_ends() -> None:
    context = EnumContext(2)
    enumerator = Planned(context, None)  # type: ignore[arg-type]
    enumerator.handle_split_request(1)  # before start: waits for the plan
    assert context.assignments == []
    await enumerator.start()
    assert context.assignments == [{1: [Split("s0")]}]
    for _ in range(4):
        enumerator.handle_split_request(0)
    enumerator.add_splits_back([Split("s3")], 0)
    assert enumerator.snapshot_state(1) == [Split("s3")]
    enumerator.handle_split_request(0)
    enumerator.handle_split_request(0)
    assert [s.split_id for a in context.assignments for s in a.get(0, [])] == [
        "s1",
        "s2",
        "s3",
        "s4",
        "s3",
    ]
    assert context.no_more == [0]


@pytest.mark.parametrize(
    ("hand_out", "parallelism", "first"),
    [
        (HandOut.ONE, 1, 1),
        (HandOut.ALL_TO_SOLE_READER, 1, 5),
        (HandOut.ALL_TO_SOLE_READER, 2, 1),
        (HandOut.EVEN_SHARE, 2, 3),
        (HandOut.EVEN_SHARE, 1, 5),
    ],
)
async def test_hand_out_policies(hand_out: HandOut, parallelism: int, first: int) -> None:
    context = EnumContext(parallelism)
    enumerator = Planned(context, None, hand_out=hand_out)  # type: ignore[arg-type]
    await enumerator.start()
    enumerator.handle_split_request(0)
    assert len(context.assignments[0][0]) == first


async def test_restored_queue_does_not_plan_again() -> None:
    context = EnumContext(1)
    enumerator = Planned(context, [Split("left")])  # type: ignore[arg-type]
    await enumerator.start()
    enumerator.handle_split_request(0)
    assert context.assignments == [{0: [Split("left")]}]
    assert Planned(context, None).snapshot_state(1) is None  # type: ignore[arg-type]


# -- the push enumerator --------------------------------------------------------------------


class Discovering(PushSplitEnumerator[Split, tuple[Split, ...]]):
    def __init__(self, context: EnumContext, found: list[list[Split] | Exception], **kw: Any):
        super().__init__(context, name="test source", what="split", **kw)  # type: ignore[arg-type]
        self.found = found

    async def discover(self) -> None:
        batch = self.found.pop(0)
        if isinstance(batch, Exception):
            raise batch
        self.add_pending(batch)

    def owner(self, split: Split, counts: Mapping[int, int]) -> int | None:
        return split.owner

    def snapshot_state(self, checkpoint_id: int) -> tuple[Split, ...]:
        return tuple(self.pending.values())


async def test_push_waits_for_owners_and_ends_bounded_readers() -> None:
    context = EnumContext(2)
    context.registered = {0}
    enumerator = Discovering(
        context, [[Split("a", 0), Split("b", 1)]], bounded=True, discovery_interval=None
    )
    await enumerator.start()
    assert context.assignments == [{0: [Split("a", 0)]}]
    assert context.no_more == []  # "b" is still pending
    assert enumerator.snapshot_state(1) == (Split("b", 1),)
    context.registered.add(1)
    enumerator.add_reader(1)
    assert context.assignments[-1] == {1: [Split("b", 1)]}
    assert sorted(context.no_more) == [0, 1]
    assert context.periodic == []  # bounded: no periodic discovery
    enumerator.add_reader(1)  # a re-registered reader is told again
    assert sorted(context.no_more) == [0, 1, 1]


async def test_periodic_discovery_logs_retryable_errors_and_fails_on_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    context = EnumContext(1)
    context.registered = {0}
    enumerator = Discovering(
        context,
        [[], RetryableError("broker busy"), [Split("late", 0)], ValueError("bad")],
        bounded=False,
        discovery_interval=timedelta(seconds=1),
    )
    await enumerator.start()
    (periodic,) = context.periodic
    await periodic()
    assert "test source: split discovery failed, retrying later: broker busy" in caplog.text
    await periodic()
    assert context.assignments == [{0: [Split("late", 0)]}]
    with pytest.raises(ValueError, match="bad"):
        await periodic()
    assert context.no_more == []  # unbounded: never ends


# -- the dataclass serializer ---------------------------------------------------------------


@dataclass(frozen=True)
class Inner:
    name: str
    at: int | None = None


@dataclass(frozen=True)
class Outer:
    splits: tuple[Inner, ...]
    done: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    flag: bool = False


def test_dataclass_serializer_round_trips_nested_values() -> None:
    serializer = dataclass_serializer(Outer, 1)
    value = Outer((Inner("a", 3), Inner("b")), frozenset({("t", 1), ("u", 0)}), True)
    data = serializer.serialize(value)
    assert json.loads(data)["flag"] is True
    restored = serializer.deserialize(1, data)
    assert restored == value
    assert isinstance(restored.splits, tuple) and isinstance(restored.splits[0], Inner)


def test_dataclass_serializer_migrates_old_versions_and_refuses_newer() -> None:
    serializer = dataclass_serializer(
        Inner,
        3,
        {
            1: lambda old: {"name": old[0]},  # format 1 was a list
            2: lambda old: {**old, "at": old.get("at", 0)},
        },
    )
    assert serializer.deserialize(1, b'["x"]') == Inner("x", 0)
    assert serializer.deserialize(2, b'{"name": "y"}') == Inner("y", 0)
    assert serializer.deserialize(3, serializer.serialize(Inner("z", 9))) == Inner("z", 9)
    with pytest.raises(SerializationError, match="newer than this release"):
        serializer.deserialize(4, b"{}")
    with pytest.raises(SerializationError, match="format version 3"):
        serializer.deserialize(3, b'{"at": 1}')
    with pytest.raises(ValueError, match="no migration from format version 2"):
        dataclass_serializer(Inner, 3, {1: lambda old: old})
