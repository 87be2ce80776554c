"""The file source (FLIP-27): an enumerator that lists paths, readers that resume at offsets.

Bounded: the paths are listed once; every file's splits are handed out on request and the
readers end. Continuous (``monitor_interval`` set): the paths are listed again at that interval
and new files are read as they appear. The enumerator's state holds the splits not yet handed
out and the files already seen, bounded by a modification-time watermark (``mtime_lookback``
behind the newest file seen): files older than that are not tracked and never read again.

Files must appear whole (written elsewhere and moved in, as the FileSink does): a file that grows
after it was listed is read as it was when its splits were planned (byte ranges) or as it is
when read. Names starting with ``.`` or ``_`` are skipped.
"""

from __future__ import annotations

import fnmatch
import glob
import io
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, BinaryIO, Generic, TypeVar

import fastavro
import pyarrow.parquet as pq
from headwater.connectors.base import (
    BlockingSplitReader,
    Deserializer,
    Format,
    JsonFormat,
    RecordEmitter,
    RecordsBySplit,
    SourceReaderBase,
    SplitFetcherManager,
)
from headwater.connectors.files._file_formats import (
    AvroFileFormat,
    Compression,
    FileFormat,
    ParquetFormat,
    RowFormat,
)
from headwater.connectors.files._filesystem import FileInfo, FileSystem, hidden
from headwater.connectors.files._options import FileSourceOptions
from headwater.connectors.files._splits import (
    FileSplit,
    plan_splits,
    split_from_json,
    split_to_json,
)
from headwater.core import (
    Boundedness,
    ConnectorError,
    FatalError,
    JsonSerializer,
    ReaderOutput,
    SerializationError,
    Source,
    SourceReader,
    SourceReaderContext,
    SplitEnumerator,
    SplitEnumeratorContext,
    VersionedSerializer,
)
from typing_extensions import override

__all__ = ["FileSource"]

T = TypeVar("T")
_STATE_VERSION = 1
_READ_BLOCK = 256 * 1024
_GLOB = ("*", "?", "[")


# -- enumerator ------------------------------------------------------------------------------
@dataclass(slots=True)
class _EnumeratorState:
    pending: list[FileSplit]
    seen: dict[str, int]
    """Files already planned, with their modification time (ms)."""
    watermark_ms: int
    """Files modified before this are not tracked (taken as read)."""


def _state_to_json(state: _EnumeratorState) -> dict[str, Any]:
    return {
        "pending": [split_to_json(s) for s in state.pending],
        "seen": state.seen,
        "watermark_ms": state.watermark_ms,
    }


def _state_from_json(version: int, data: dict[str, Any]) -> _EnumeratorState:
    return _EnumeratorState(
        [split_from_json(version, s) for s in data["pending"]],
        {str(k): int(v) for k, v in data["seen"].items()},
        int(data["watermark_ms"]),
    )


def _list_path(filesystem: FileSystem, path: str) -> list[FileInfo]:
    if not any(c in path for c in _GLOB):
        return list(filesystem.list_files(path))
    if path.startswith("s3://"):
        root = path[: min(path.find(c) for c in _GLOB if c in path)].rsplit("/", 1)[0]
        return [i for i in filesystem.list_files(root) if fnmatch.fnmatchcase(i.path, path)]
    fixed = os.path.dirname(path[: min(path.find(c) for c in _GLOB if c in path)])
    found: list[FileInfo] = []
    for match in sorted(glob.glob(path, recursive=True)):
        relative = os.path.relpath(match, fixed or ".")
        if os.path.isfile(match) and not any(hidden(p) for p in relative.split(os.sep)):
            found.extend(filesystem.list_files(match))
    return found


class _FileEnumerator(SplitEnumerator[FileSplit, _EnumeratorState]):
    def __init__(
        self,
        source: FileSource[Any],
        context: SplitEnumeratorContext[FileSplit],
        state: _EnumeratorState,
    ) -> None:
        self._source = source
        self._context = context
        self._pending: deque[FileSplit] = deque(state.pending)
        self._seen = dict(state.seen)
        self._watermark = state.watermark_ms
        self._waiting: list[int] = []
        self._listed = False

    def _scan(self) -> list[FileSplit]:
        """List the paths; plan the splits of files not seen yet. Blocking."""
        options = self._source.options
        filesystem = self._source.filesystem
        try:
            infos = [i for path in options.paths for i in _list_path(filesystem, path)]
        except OSError as exc:
            raise FatalError(f"files: cannot list {', '.join(options.paths)}: {exc}") from exc
        splits: list[FileSplit] = []
        newest = max((i.modified_ms for i in infos), default=0)
        for info in sorted(infos, key=lambda i: (i.modified_ms, i.path)):
            if info.path in self._seen or info.modified_ms < self._watermark:
                continue
            try:
                splits.extend(
                    plan_splits(filesystem, info, self._source.format, options.split_size)
                )
            except (OSError, ValueError) as exc:
                raise FatalError(f"files: cannot read {info.path}: {exc}") from exc
            self._seen[info.path] = info.modified_ms
        lookback = int(options.mtime_lookback.total_seconds() * 1000)
        watermark = max(self._watermark, newest - lookback)
        if watermark > self._watermark:
            self._watermark = watermark
            self._seen = {p: m for p, m in self._seen.items() if m >= watermark}
        return splits

    async def _discover(self) -> None:
        splits = await self._context.run_blocking(self._scan)
        self._pending.extend(splits)
        self._listed = True
        self._serve_waiting()

    def _serve_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        for subtask in waiting:
            self.handle_split_request(subtask)

    @override
    async def start(self) -> None:
        await self._discover()
        interval = self._source.options.monitor_interval
        if interval is not None:
            self._context.call_periodically(self._discover, interval)

    @override
    def handle_split_request(self, subtask_index: int) -> None:
        if subtask_index not in self._context.registered_readers():
            # Served once the reader registers (add_reader).
            if subtask_index not in self._waiting:
                self._waiting.append(subtask_index)
            return
        if self._pending:
            self._context.assign_splits({subtask_index: [self._pending.popleft()]})
        elif self._listed and self._source.options.monitor_interval is None:
            self._context.signal_no_more_splits(subtask_index)
        elif subtask_index not in self._waiting:
            self._waiting.append(subtask_index)

    @override
    def add_reader(self, subtask_index: int) -> None:
        if subtask_index in self._waiting:
            self._serve_waiting()

    @override
    def add_splits_back(self, splits: Sequence[FileSplit], subtask_index: int) -> None:
        self._pending.extendleft(reversed(splits))
        self._serve_waiting()

    @override
    def snapshot_state(self, checkpoint_id: int) -> _EnumeratorState:
        return _EnumeratorState(list(self._pending), dict(self._seen), self._watermark)


# -- reader ----------------------------------------------------------------------------------
@dataclass(slots=True)
class _SplitState:
    split: FileSplit
    offset: int


class _LineCursor:
    """Reads the lines of a byte range [offset, end) of an uncompressed file, a block at a time.

    Lines come without their newline; each one advances the position by its length plus one.
    Lines are handed out in slices (no per-line Python work but at the end of the range).
    """

    def __init__(self, stream: BinaryIO, offset: int, end: int) -> None:
        self._stream = stream
        self.position = offset
        self._end = end
        self._lines: list[bytes] = []
        self._next = 0
        self._carry = b""
        self._eof = False

    def _fill(self) -> None:
        while self._next >= len(self._lines) and not self._eof:
            block = self._stream.read(_READ_BLOCK)
            self._next = 0
            if not block:
                self._eof = True
                self._lines = [self._carry] if self._carry else []
                self._carry = b""
                return
            self._lines = (self._carry + block).split(b"\n")
            self._carry = self._lines.pop()

    def read(self, limit: int) -> tuple[list[bytes], bool]:
        """Up to ``limit`` lines starting before ``end``; whether the range is done."""
        taken: list[bytes] = []
        while len(taken) < limit and self.position < self._end:
            self._fill()
            if self._next >= len(self._lines):
                break
            lines = self._lines[self._next : self._next + limit - len(taken)]
            advance = sum(map(len, lines)) + len(lines)
            if self.position + advance - len(lines[-1]) - 1 >= self._end:
                # The range ends inside this slice: keep the lines that start before it.
                kept = 0
                for line in lines:
                    if self.position >= self._end:
                        break
                    self.position += len(line) + 1
                    kept += 1
                lines, advance = lines[:kept], 0
            self._next += len(lines)
            self.position += advance
            taken.extend(lines)
        done = self.position >= self._end or (self._eof and self._next >= len(self._lines))
        return taken, done


class _FileSplitReader(BlockingSplitReader[Any, FileSplit]):
    """Reads one split at a time on the fetcher thread.

    Elements are lines without their newline (byte splits), or a whole file's lines or records
    (record splits): each element is one record, so the reader base counts ``numRecordsIn``.
    """

    def __init__(self, source: FileSource[Any]) -> None:
        self._source = source
        self._splits: deque[FileSplit] = deque()
        self._current: FileSplit | None = None
        self._lines: _LineCursor | None = None
        self._stream: BinaryIO | None = None
        self._records: list[Any] | None = None
        self._offset = 0

    @override
    def handle_splits_changes(self, added: Sequence[FileSplit]) -> None:
        self._splits.extend(added)

    def _open(self, split: FileSplit) -> None:
        filesystem = self._source.filesystem
        self._current, self._offset = split, split.offset
        try:
            if split.unit == "byte":
                assert split.end is not None
                self._stream = filesystem.open_read(split.path, split.offset)
                self._lines = _LineCursor(self._stream, split.offset, split.end)
                return
            with filesystem.open_read(split.path) as stream:
                data = stream.read()
            self._records = self._decode_whole(split, data)
        except (ConnectorError, SerializationError):
            raise
        except Exception as exc:
            raise FatalError(
                f"files: cannot read {split.path}: {type(exc).__name__}: {exc}"
            ) from exc

    def _decode_whole(self, split: FileSplit, data: bytes) -> list[Any]:
        format = self._source.format
        if isinstance(format, ParquetFormat):
            table = pq.ParquetFile(io.BytesIO(data)).read_row_group(
                split.start, columns=list(format.columns) if format.columns else None
            )
            return table.to_pylist()  # type: ignore[no-any-return]
        if isinstance(format, AvroFileFormat):
            return list(fastavro.reader(io.BytesIO(data), reader_schema=format.parsed_schema))
        lines = Compression.of_path(split.path).decompress(data).split(b"\n")
        if lines and not lines[-1]:
            lines.pop()
        return lines

    def _close_current(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self._current, self._stream, self._lines, self._records = None, None, None, None

    @override
    def fetch(self) -> RecordsBySplit[Any]:
        if self._current is None:
            if not self._splits:
                return RecordsBySplit()
            self._open(self._splits.popleft())
        split = self._current
        assert split is not None
        limit = self._source.options.max_records_per_fetch
        first = self._offset
        values: list[Any]
        if self._lines is not None:
            values, done = self._lines.read(limit)
            self._offset = self._lines.position
            size: int | None = self._offset - first
        else:
            assert self._records is not None
            values = self._records[first : first + limit]
            self._offset = first + len(values)
            done = self._offset >= len(self._records)
            size = None
        if done:
            self._close_current()
        return RecordsBySplit(
            records={split.split_id: values} if values else {},
            finished_splits=[split.split_id] if done else (),
            size_in_bytes=size,
        )

    @override
    def close(self) -> None:
        self._close_current()


class _Positions(Sequence[str]):
    """Where each line of a batch was read, computed only for the bad ones."""

    def __init__(self, state: _SplitState, lines: Sequence[bytes]) -> None:
        self._path = state.split.path
        self._offset = state.offset
        self._unit = state.split.unit
        self._lines = lines

    def __len__(self) -> int:
        return len(self._lines)

    def __getitem__(self, index: Any) -> Any:
        if self._unit == "byte":
            offset = self._offset + sum(len(v) + 1 for v in self._lines[:index])
            return f"{self._path} byte {offset}"
        return f"{self._path} record {self._offset + index}"


class _FileEmitter(RecordEmitter[Any, Any, _SplitState]):
    """Decodes a fetch's lines in one call (row formats) and advances the split's offset."""

    def __init__(self, deserializer: Deserializer[Any] | None) -> None:
        self._deserializer = deserializer

    @override
    def emit_record(
        self, element: Any, output: ReaderOutput[Any], split_state: _SplitState
    ) -> None:
        self.emit_batch([element], output, split_state)

    @override
    def emit_batch(
        self, elements: Sequence[Any], output: ReaderOutput[Any], split_state: _SplitState
    ) -> None:
        if self._deserializer is not None:
            payloads = elements
            if elements and elements[0].endswith(b"\r"):  # CRLF line ends
                payloads = [line.removesuffix(b"\r") for line in elements]
            values = self._deserializer.deserialize_batch(
                payloads, positions=_Positions(split_state, elements)
            )
        else:
            values = list(elements)
        output.collect_batch(values)
        if split_state.split.unit == "byte":
            split_state.offset += sum(map(len, elements)) + len(elements)
        else:
            split_state.offset += len(elements)


class _FileSourceReader(SourceReaderBase[Any, Any, FileSplit, _SplitState]):
    @override
    def initialized_state(self, split: FileSplit) -> _SplitState:
        return _SplitState(split, split.offset)

    @override
    def to_split(self, split_id: str, state: _SplitState) -> FileSplit:
        return replace(state.split, offset=state.offset)


class FileSource(Source[T, FileSplit, _EnumeratorState], Generic[T]):
    """Reads files (local or S3): bounded, or continuously watching for new files.

    Args:
        options: paths, monitoring, split size, S3 client.
        format: a connector-base row :class:`Format` (lines: JSON lines by default, CSV, text),
            :class:`RowFormat` (the same; compressed files, ``.gz``/``.zst``, are read whole),
            :class:`ParquetFormat` (``columns`` projects) or :class:`AvroFileFormat` (its schema
            is the reader schema).
    """

    def __init__(
        self, options: FileSourceOptions, format: FileFormat | Format[Any] | None = None
    ) -> None:
        self.options = options
        if format is None:
            format = JsonFormat()
        self.format: FileFormat = format if isinstance(format, FileFormat) else RowFormat(format)
        self.filesystem: FileSystem = options.filesystem()

    @property
    @override
    def boundedness(self) -> Boundedness:
        if self.options.monitor_interval is None:
            return Boundedness.BOUNDED
        return Boundedness.CONTINUOUS_UNBOUNDED

    @override
    def create_enumerator(
        self, context: SplitEnumeratorContext[FileSplit]
    ) -> SplitEnumerator[FileSplit, _EnumeratorState]:
        return _FileEnumerator(self, context, _EnumeratorState([], {}, 0))

    @override
    def restore_enumerator(
        self, context: SplitEnumeratorContext[FileSplit], state: _EnumeratorState
    ) -> SplitEnumerator[FileSplit, _EnumeratorState]:
        return _FileEnumerator(self, context, state)

    @override
    def create_reader(self, context: SourceReaderContext) -> SourceReader[T, FileSplit]:
        deserializer = (
            self.format.format.deserializer(context.metric_group)
            if isinstance(self.format, RowFormat)
            else None
        )
        manager: SplitFetcherManager[Any, FileSplit] = SplitFetcherManager(
            lambda: _FileSplitReader(self)
        )
        return _FileSourceReader(context, manager, _FileEmitter(deserializer))

    @override
    def split_serializer(self) -> VersionedSerializer[FileSplit]:
        return JsonSerializer(
            version=_STATE_VERSION, to_json=split_to_json, from_json=split_from_json
        )

    @override
    def enumerator_state_serializer(self) -> VersionedSerializer[_EnumeratorState]:
        return JsonSerializer(
            version=_STATE_VERSION, to_json=_state_to_json, from_json=_state_from_json
        )
