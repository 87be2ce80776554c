"""Unit tests of the shared shard enumerator, reader markers, assigner and checkpoint formats."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest
from headwater.connectors.aws import (
    AssignmentContext,
    EnumeratorState,
    KinesisEntry,
    ShardSplit,
    StartingPosition,
    uniform_shard_assigner,
)
from headwater.connectors.aws._dynamodb_sink import ENTRY_SERIALIZER as DYNAMODB_ENTRIES
from headwater.connectors.aws._dynamodb_sink import DynamoDbWriteRequest
from headwater.connectors.aws._enumerator import (
    FinishedAcknowledged,
    ShardsFinished,
    ShardSplitEnumerator,
)
from headwater.connectors.aws._kinesis_sink import ENTRY_SERIALIZER as KINESIS_ENTRIES
from headwater.connectors.aws._reader import ShardRecordEmitter, ShardSourceReader
from headwater.connectors.aws._shards import (
    ENUMERATOR_STATE_SERIALIZER,
    SPLIT_SERIALIZER,
    Shard,
)
from headwater.connectors.aws._stream_api import FetchedRecords, StreamApi
from headwater.connectors.base import SplitFetcherManager
from headwater.core import ReaderOutput
from headwater.core._metrics import MetricRegistry

ARN = "arn:aws:kinesis:us-east-1:000000000000:stream/s"
HALF = 1 << 127


class FakeApi(StreamApi):
    service = "kinesis"
    connector = "fake"
    max_records_per_call = 10

    def __init__(self, shards: list[Shard]) -> None:
        super().__init__(None)
        self.shards = shards
        self.calls: list[tuple[StartingPosition | None, str | None]] = []

    def list_shards(
        self, stream_arn: str, initial: StartingPosition | None, after: str | None
    ) -> list[Shard]:
        self.calls.append((initial, after))
        return list(self.shards)

    def shard_iterator(self, stream_arn: str, shard_id: str, position: StartingPosition) -> str:
        raise NotImplementedError

    def get_records(self, stream_arn: str, iterator: str, limit: int) -> FetchedRecords:
        raise NotImplementedError

    @staticmethod
    def sequence_number(record: dict[str, Any]) -> str:
        return str(record["seq"])

    @staticmethod
    def event_time(record: dict[str, Any]) -> int | None:
        return None

    @staticmethod
    def size(record: dict[str, Any]) -> int:
        return 0

    def close(self) -> None:
        pass


class FakeContext:
    def __init__(self, parallelism: int = 2) -> None:
        self.parallelism = parallelism
        self.assigned: list[tuple[int, str]] = []
        self.events: list[tuple[int, Any]] = []
        self.no_more: list[int] = []

    def registered_readers(self) -> frozenset[int]:
        return frozenset(range(self.parallelism))

    def assign_splits(self, assignment: Mapping[int, Sequence[ShardSplit]]) -> None:
        for reader, splits in assignment.items():
            self.assigned += [(reader, s.shard_id) for s in splits]

    def signal_no_more_splits(self, subtask_index: int) -> None:
        self.no_more.append(subtask_index)

    def send_event_to_reader(self, subtask_index: int, event: Any) -> None:
        self.events.append((subtask_index, event))

    def call_periodically(self, fn: Callable[[], Awaitable[None]], interval: timedelta) -> None:
        pass

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


# A split (0 -> 2, 3), then a merge (3 + 1 -> 4).
SHARDS = [
    Shard("s0", (), (0, HALF - 1)),
    Shard("s1", (), (HALF, 2 * HALF - 1)),
    Shard("s2", ("s0",), (0, HALF // 2 - 1)),
    Shard("s3", ("s0",), (HALF // 2, HALF - 1)),
    Shard("s4", ("s3", "s1"), (HALF // 2, 2 * HALF - 1)),
]


def _enumerator(
    context: FakeContext, api: FakeApi, state: EnumeratorState | None = None, bounded: bool = False
) -> ShardSplitEnumerator:
    return ShardSplitEnumerator(
        context,  # type: ignore[arg-type]
        stream_arn=ARN,
        initial=StartingPosition("TRIM_HORIZON"),
        api_factory=lambda: api,
        assigner=uniform_shard_assigner,
        discovery_interval=None,
        bounded=bounded,
        state=state,
    )


def _assigned(context: FakeContext) -> list[str]:
    return [shard for _, shard in context.assigned]


async def test_children_wait_for_all_parents_across_a_restore() -> None:
    context = FakeContext()
    api = FakeApi(SHARDS)
    enumerator = _enumerator(context, api)
    await enumerator.start()
    assert sorted(_assigned(context)) == ["s0", "s1"]
    assert context.assigned == [(0, "s0"), (1, "s1")], "by hash-key range"
    enumerator.handle_source_event(0, ShardsFinished(("s0",)))
    assert sorted(_assigned(context)) == ["s0", "s1", "s2", "s3"]
    state = enumerator.snapshot_state(7)
    enumerator.handle_source_event(0, ShardsFinished(("s3",)))
    assert "s4" not in _assigned(context), "s1 is not finished"
    assert context.events[-1] == (0, FinishedAcknowledged(("s3",), 7))
    await enumerator.close()

    # Restore from checkpoint 7: s3 is not known finished there, the reader's marker says so again.
    restored_state = ENUMERATOR_STATE_SERIALIZER.deserialize(
        1, ENUMERATOR_STATE_SERIALIZER.serialize(state)
    )
    context = FakeContext()
    enumerator = _enumerator(context, api, restored_state)
    await enumerator.start()
    for reader in range(2):
        enumerator.add_reader(reader)
    assert _assigned(context) == [], "s1, s2, s3 are held by readers; s4 waits"
    assert api.calls[-1] == (None, "s4"), "incremental discovery after the last shard seen"
    enumerator.handle_source_event(0, ShardsFinished(("s3",)))
    assert context.events[-1] == (0, FinishedAcknowledged(("s3",), -1))
    enumerator.handle_source_event(1, ShardsFinished(("s1",)))
    assert _assigned(context) == ["s4"]


async def test_unknown_parents_do_not_block_and_bounded_reads_end() -> None:
    context = FakeContext()
    api = FakeApi([Shard("s5", ("expired",), None), Shard("s6", (), None)])
    enumerator = _enumerator(context, api, bounded=True)
    await enumerator.start()
    assert sorted(context.assigned) == [(0, "s5"), (1, "s6")], "least-loaded without hash keys"
    enumerator.handle_source_event(0, ShardsFinished(("s5",)))
    assert context.no_more == []
    enumerator.add_splits_back([ShardSplit(ARN, "s6", StartingPosition.after("9"))], 1)
    assert context.assigned[-1] == (0, "s6"), "reassigned to the least-loaded reader"
    enumerator.handle_source_event(0, ShardsFinished(("s6",)))
    assert sorted(context.no_more) == [0, 1]


def test_uniform_assigner_spreads_by_hash_key_range() -> None:
    quarter = HALF // 2
    splits = [
        ShardSplit(
            ARN, f"s{i}", StartingPosition("LATEST"), (), (i * quarter, (i + 1) * quarter - 1)
        )
        for i in range(4)
    ]
    owners = [uniform_shard_assigner(s, AssignmentContext(2, {})) for s in splits]
    assert owners == [0, 0, 1, 1]


class _Emitter(ShardRecordEmitter[Any]):
    def emit_records(
        self, records: Sequence[dict[str, Any]], output: ReaderOutput[Any], shard_id: str
    ) -> None:
        for r in records:
            output.collect(r)


class _ReaderContext:
    subtask_index = 0
    parallelism = 1

    def __init__(self) -> None:
        self.metric_group = MetricRegistry().group({"operator": "source"})
        self.events: list[Any] = []

    def send_split_request(self) -> None:
        pass

    def send_source_event(self, event: Any) -> None:
        self.events.append(event)


async def test_reader_keeps_finished_markers_until_a_later_checkpoint_completes() -> None:
    context = _ReaderContext()
    manager: SplitFetcherManager[dict[str, Any], ShardSplit] = SplitFetcherManager(
        lambda: pytest.fail("no fetcher for markers")  # type: ignore[arg-type,return-value]
    )
    reader = ShardSourceReader(context, manager, _Emitter(FakeApi), {})  # type: ignore[arg-type]
    marker = ShardSplit(ARN, "s0", StartingPosition.after("41"), finished=True)
    reader.add_splits([marker])
    assert context.events == [ShardsFinished(("s0",))]
    assert reader.snapshot_state(4) == [marker]
    reader.handle_source_event(FinishedAcknowledged(("s0",), 4))
    await reader.notify_checkpoint_complete(4)
    assert reader.snapshot_state(5) == [marker], "checkpoint 4's enumerator state may lack it"
    await reader.notify_checkpoint_complete(5)
    assert reader.snapshot_state(6) == []
    await reader.close()


def test_checkpoint_formats_round_trip() -> None:
    split = ShardSplit(ARN, "s1", StartingPosition.after("123"), ("s0",), (0, 2**128 - 1), True)
    assert SPLIT_SERIALIZER.deserialize(1, SPLIT_SERIALIZER.serialize(split)) == split
    entry = KinesisEntry(b"\x00data", "key", "42")
    assert KINESIS_ENTRIES.deserialize(1, KINESIS_ENTRIES.serialize(entry)) == entry
    request = DynamoDbWriteRequest.put({"id": "a", "blob": b"\x01", "n": 1.5, "tags": {"x"}})
    restored = DYNAMODB_ENTRIES.deserialize(1, DYNAMODB_ENTRIES.serialize(request))
    assert restored.request() == request.request()
    assert restored.attributes["blob"] == {"B": b"\x01"} and restored.attributes["n"] == {
        "N": "1.5"
    }
