"""The conformance suites run against core's file test-double sinks and two sources.

Bounded reads use :class:`JsonPayloadSource`, a small source on connector-base's reader base and
formats (so the metric and bad-record tests see a real reader); unbounded reads use DataGen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from headwater.connectors.base import (
    Deserializer,
    ErrorPolicy,
    FailOnError,
    JsonFormat,
    RecordEmitter,
    RecordsBySplit,
    SourceReaderBase,
    SplitFetcherManager,
    SplitReader,
)
from headwater.connectors.testing import (
    FileAppendSink,
    FileTwoPhaseSink,
    SinkExternalContext,
    SinkTestSuiteBase,
    SourceExternalContext,
    SourceTestSuiteBase,
    read_records,
)
from headwater.core import (
    CollectionSource,
    DataGenSource,
    DeliveryGuarantee,
    RangeSplit,
    ReaderOutput,
    Sink,
    Source,
    SourceReader,
    SourceReaderContext,
    SplitEnumerator,
    SplitEnumeratorContext,
)


class TwoPhaseFileContext(SinkExternalContext):
    guarantee = DeliveryGuarantee.EXACTLY_ONCE
    job_target = "headwater.connectors.testing.builtin_jobs:two_phase_file_job"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def create_sink(self) -> Sink[Any]:
        return FileTwoPhaseSink(self.directory)

    def read_back(self) -> list[Any]:
        return read_records(self.directory)

    def job_params(self) -> dict[str, str]:
        return {"out": str(self.directory)}


class AppendFileContext(TwoPhaseFileContext):
    guarantee = DeliveryGuarantee.AT_LEAST_ONCE
    job_target = "headwater.connectors.testing.builtin_jobs:append_file_job"

    def create_sink(self) -> Sink[Any]:
        return FileAppendSink(self.directory)


class TestFileTwoPhaseSink(SinkTestSuiteBase):
    @pytest.fixture
    def external(self, tmp_path: Path) -> SinkExternalContext:
        return TwoPhaseFileContext(tmp_path / "out")


class TestFileAppendSink(SinkTestSuiteBase):
    @pytest.fixture
    def external(self, tmp_path: Path) -> SinkExternalContext:
        return AppendFileContext(tmp_path / "out")


@dataclass
class _Position:
    index: int
    end: int


class _PayloadSlices(SplitReader[bytes, RangeSplit]):
    """Fetches up to 100 payloads per split and call from an in-memory list."""

    def __init__(self, payloads: Sequence[bytes]) -> None:
        self._payloads = payloads
        self._splits: dict[str, list[int]] = {}

    def handle_splits_changes(self, added: Sequence[RangeSplit]) -> None:
        for split in added:
            self._splits[split.split_id] = [split.position, split.end]

    async def fetch(self) -> RecordsBySplit[bytes]:
        records: dict[str, Sequence[bytes]] = {}
        finished = []
        for split_id, (position, end) in list(self._splits.items()):
            stop = min(end, position + 100)
            records[split_id] = self._payloads[position:stop]
            self._splits[split_id][0] = stop
            if stop >= end:
                finished.append(split_id)
                del self._splits[split_id]
        size = sum(len(p) for batch in records.values() for p in batch)
        return RecordsBySplit(records, finished, size_in_bytes=size)


class _DecodingEmitter(RecordEmitter[bytes, Any, _Position]):
    def __init__(self, deserializer: Deserializer[Any]) -> None:
        self._deserializer = deserializer

    def emit_record(
        self, element: bytes, output: ReaderOutput[Any], split_state: _Position
    ) -> None:
        self.emit_batch([element], output, split_state)

    def emit_batch(
        self, elements: Sequence[bytes], output: ReaderOutput[Any], split_state: _Position
    ) -> None:
        start = split_state.index
        positions = range(start, start + len(elements))
        output.collect_batch(self._deserializer.deserialize_batch(elements, positions=positions))
        split_state.index += len(elements)


class _PayloadReader(SourceReaderBase[bytes, Any, RangeSplit, _Position]):
    def initialized_state(self, split: RangeSplit) -> _Position:
        return _Position(split.position, split.end)

    def to_split(self, split_id: str, state: _Position) -> RangeSplit:
        return RangeSplit(split_id, state.index, state.end)

    def on_split_finished(self, finished: Mapping[str, _Position]) -> None:
        pass


class _AllSplitsAtOnce(SplitEnumerator[RangeSplit, list[RangeSplit]]):
    """Hands every split to the first reader that asks (so one reader owns them together)."""

    def __init__(
        self, context: SplitEnumeratorContext[RangeSplit], splits: list[RangeSplit]
    ) -> None:
        self._context = context
        self._unassigned = splits

    def handle_split_request(self, subtask_index: int) -> None:
        if self._unassigned:
            self._context.assign_splits({subtask_index: self._unassigned})
            self._unassigned = []
        else:
            self._context.signal_no_more_splits(subtask_index)

    def add_reader(self, subtask_index: int) -> None:
        """Readers ask for splits themselves."""

    def add_splits_back(self, splits: Sequence[RangeSplit], subtask_index: int) -> None:
        self._unassigned = [*splits, *self._unassigned]

    def snapshot_state(self, checkpoint_id: int) -> list[RangeSplit]:
        return list(self._unassigned)


class JsonPayloadSource(CollectionSource[Any]):
    """A bounded source of JSON payloads decoded by :class:`JsonFormat` with an error policy.

    With ``split_sizes``, the payloads form one split per size, all handed to the first reader.
    """

    def __init__(
        self, payloads: Sequence[bytes], policy: ErrorPolicy, split_sizes: Sequence[int] = ()
    ) -> None:
        super().__init__(payloads)
        self._payloads = payloads
        self._format = JsonFormat(on_error=policy)
        self._split_sizes = split_sizes

    def create_enumerator(
        self, context: SplitEnumeratorContext[RangeSplit]
    ) -> SplitEnumerator[RangeSplit, list[RangeSplit]]:
        if not self._split_sizes:
            return super().create_enumerator(context)
        splits, start = [], 0
        for i, size in enumerate(self._split_sizes):
            splits.append(RangeSplit(str(i), start, start + size))
            start += size
        return _AllSplitsAtOnce(context, splits)

    def create_reader(self, context: SourceReaderContext) -> SourceReader[Any, RangeSplit]:
        deserializer = self._format.deserializer(context.metric_group)
        manager: SplitFetcherManager[bytes, RangeSplit] = SplitFetcherManager(
            lambda: _PayloadSlices(self._payloads)
        )
        return _PayloadReader(context, manager, _DecodingEmitter(deserializer))


class PayloadContext(SourceExternalContext):
    """Bounded: the written integers as JSON payloads (bad ones in the middle) read by
    :class:`JsonPayloadSource`; unbounded: DataGen of the index."""

    def __init__(self) -> None:
        self.count = 0
        self.bad: list[bytes] = []
        self.splits: list[list[Any]] = []

    def write_test_data(self, records: Sequence[Any]) -> None:
        assert list(records) == list(range(len(records)))
        self.count = len(records)

    def write_test_data_in_splits(self, splits: Sequence[Sequence[Any]]) -> None:
        self.splits = [list(records) for records in splits]

    def write_bad_records(self, count: int) -> None:
        self.bad = [b"{not json %d" % i for i in range(count)]

    def create_source(self, *, bounded: bool) -> Source[Any, Any, Any]:
        if bounded and self.splits:
            payloads = [orjson.dumps(r) for records in self.splits for r in records]
            return JsonPayloadSource(payloads, FailOnError(), [len(rs) for rs in self.splits])
        if bounded:
            return self.create_source_with_error_policy(FailOnError())
        return DataGenSource(lambda i, _r: i, rows_per_second=2000, num_splits=1, batch_size=50)

    def create_source_with_error_policy(self, policy: ErrorPolicy) -> Source[Any, Any, Any]:
        good = [orjson.dumps(i) for i in range(self.count)]
        middle = len(good) // 2
        return JsonPayloadSource(good[:middle] + self.bad + good[middle:], policy)


class TestBuiltinSources(SourceTestSuiteBase):
    @pytest.fixture
    def external(self) -> SourceExternalContext:
        return PayloadContext()
