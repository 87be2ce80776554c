"""The exactly-once file sink: part files per bucket, rolled by a policy, committed on checkpoint.

Life of a part file (Flink's FileSink): *in progress* (hidden locally, an incomplete multipart
upload on S3) while records are written; at a checkpoint it is either persisted (its length or
upload state goes into the writer state, and it stays open) or closed and becomes *pending* (a
committable); when the checkpoint completes the committer publishes it (*finished*: an atomic
rename, or the completed upload). On restore, pending files of the restored checkpoint are
committed again (idempotently) and in-progress files are cut back to their checkpointed content
and committed at the next checkpoint; anything written after the restored checkpoint stays
hidden and is never published.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

from headwater.connectors.base import Format, JsonFormat
from headwater.connectors.files._buckets import BasePathBucketAssigner, BucketAssigner
from headwater.connectors.files._file_formats import (
    AvroFileFormat,
    FileFormat,
    PartWriter,
    RowFormat,
)
from headwater.connectors.files._filesystem import FileSystem, PendingFile, ResumeState
from headwater.connectors.files._manifest import write_manifest
from headwater.connectors.files._options import FileSinkOptions
from headwater.connectors.files._rolling import (
    DefaultRollingPolicy,
    OnCheckpointRollingPolicy,
    PartFileInfo,
    RollingPolicy,
)
from headwater.core import (
    CommitRequest,
    Committer,
    CommittingSinkWriter,
    ConfigurationError,
    ConnectorError,
    FatalError,
    JsonSerializer,
    RetryableError,
    TwoPhaseCommittingSink,
    VersionedSerializer,
    WriterInitContext,
)
from typing_extensions import override

__all__ = ["FileSink"]

T = TypeVar("T")
_STATE_VERSION = 1
_ROLL_CHECK = 1000
"""Records written between two checks of the rolling policy's size limit."""


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class _OpenPart:
    bucket: str
    writer: PartWriter
    created_ms: int
    last_updated_ms: int

    def info(self) -> PartFileInfo:
        return PartFileInfo(self.bucket, self.writer.size, self.created_ms, self.last_updated_ms)


def _resume_to_json(state: ResumeState) -> dict[str, Any]:
    return asdict(state)


def _resume_from_json(_version: int, data: dict[str, Any]) -> ResumeState:
    return ResumeState(**data)


def _pending_to_json(pending: PendingFile) -> dict[str, Any]:
    return asdict(pending)


def _pending_from_json(_version: int, data: dict[str, Any]) -> PendingFile:
    return PendingFile(**data)


class _FileSinkWriter(CommittingSinkWriter[T, PendingFile]):
    """Writes one subtask's part files. Every file operation runs on the job's thread pool."""

    def __init__(
        self, sink: FileSink[T], context: WriterInitContext, recovered: Sequence[ResumeState]
    ) -> None:
        self._sink = sink
        self._fs = sink.filesystem
        self._context = context
        self._run = secrets.token_hex(4)
        self._counter = 0
        self._open: dict[str, _OpenPart] = {}
        self._closed: list[PendingFile] = []
        self._recovered = list(recovered)
        self._snapshot: list[ResumeState] = []
        self._ready = False
        self._ended = False
        self._bytes_out = context.metric_group.counter("numBytesOut")
        # The runtime may flush at end of input while the final checkpoint prepares its commit:
        # one file operation at a time.
        self._busy = asyncio.Lock()

    # -- on the thread pool ----------------------------------------------------------------
    def _final_path(self, bucket: str) -> str:
        self._counter += 1
        name = (
            f"{self._sink.options.part_prefix}-{self._run}-{self._context.subtask_index}-"
            f"{self._counter}{self._sink.suffix}"
        )
        return self._fs.join(self._sink.options.path, bucket, name)

    def _ensure_ready(self) -> None:
        if not self._ready:
            self._fs.check_writable(self._sink.options.path)
            self._ready = True

    def _roll(self, part: _OpenPart) -> None:
        del self._open[part.bucket]
        part.writer.finish()
        size = part.writer.size
        storage = part.writer.file.close_for_commit()
        self._bytes_out.inc(size)
        self._closed.append(
            PendingFile(
                final_path=part.writer.file.final_path,
                bucket=part.bucket,
                records=part.writer.records,
                size=size,
                storage=storage,
            )
        )

    def _roll_by_time(self, now: int) -> None:
        policy = self._sink.rolling_policy
        for part in list(self._open.values()):
            if policy.should_roll_on_processing_time(part.info(), now):
                self._roll(part)

    def _open_part(self, bucket: str, now: int) -> _OpenPart:
        try:
            file = self._fs.open_in_progress(self._final_path(bucket))
        except OSError as exc:
            directory = self._fs.join(self._sink.options.path, bucket)
            raise FatalError(f"files: cannot create a part file in {directory}: {exc}") from exc
        part = _OpenPart(bucket, self._sink.format.open(file), now, now)
        self._open[bucket] = part
        return part

    def _write_groups(self, groups: dict[str, list[T]]) -> None:
        self._ensure_ready()
        now = _now_ms()
        policy = self._sink.rolling_policy
        for bucket, records in groups.items():
            for start in range(0, len(records), _ROLL_CHECK):
                part = self._open.get(bucket)
                if part is None:
                    part = self._open_part(bucket, now)
                part.writer.write(records[start : start + _ROLL_CHECK])
                part.last_updated_ms = now
                if policy.should_roll_on_event(part.info()):
                    self._roll(part)
        self._roll_by_time(now)

    def _flush(self) -> None:
        for part in self._open.values():
            part.writer.flush()
        self._roll_by_time(_now_ms())

    def _prepare(self) -> tuple[list[PendingFile], list[ResumeState]]:
        if self._recovered:
            self._ensure_ready()
        for state in self._recovered:
            pending = self._fs.recover_for_commit(state)
            if pending is not None:
                self._closed.append(pending)
        self._recovered = []
        policy = self._sink.rolling_policy
        for part in list(self._open.values()):
            if (
                self._ended
                or self._sink.format.bulk
                or policy.should_roll_on_checkpoint(part.info())
            ):
                self._roll(part)
        states = []
        for part in self._open.values():
            part.writer.flush()
            states.append(
                ResumeState(
                    final_path=part.writer.file.final_path,
                    bucket=part.bucket,
                    records=part.writer.records,
                    created_ms=part.created_ms,
                    storage=part.writer.file.persist(),
                )
            )
        closed, self._closed = self._closed, []
        return closed, states

    # -- on the event loop -----------------------------------------------------------------
    @override
    async def write_batch(self, records: Sequence[T]) -> None:
        groups = self._sink.bucket_assigner.assign_batch(records)
        async with self._busy:
            await self._context.run_blocking(self._write_groups, groups)

    @override
    async def flush(self, end_of_input: bool) -> None:
        if end_of_input:
            self._ended = True
        async with self._busy:
            if self._open:
                await self._context.run_blocking(self._flush)

    @override
    async def prepare_commit(self) -> list[PendingFile]:
        async with self._busy:
            closed, self._snapshot = await self._context.run_blocking(self._prepare)
        return closed

    @override
    def snapshot_state(self, checkpoint_id: int) -> list[Any]:
        # The open files were persisted by prepare_commit, which the runtime calls just before.
        return list(self._snapshot)


class _FileCommitter(Committer[PendingFile]):
    """Publishes pending files (idempotently) and records them in the manifest."""

    def __init__(self, sink: FileSink[Any], context: WriterInitContext) -> None:
        self._sink = sink
        self._context = context

    def _commit_all(self, files: list[PendingFile]) -> list[BaseException | bool]:
        outcomes: list[BaseException | bool] = []
        for pending in files:
            try:
                outcomes.append(self._sink.filesystem.commit(pending))
            except (OSError, ConnectorError) as exc:
                outcomes.append(exc)
        published = [f for f, o in zip(files, outcomes, strict=True) if o is True or o is False]
        if self._sink.options.manifest and published:
            write_manifest(self._sink.filesystem, self._sink.options.path, published)
        return outcomes

    @override
    async def commit(self, requests: Sequence[CommitRequest[PendingFile]]) -> None:
        files = [r.committable for r in requests]
        try:
            outcomes = await self._context.run_blocking(self._commit_all, files)
        except RetryableError:
            for request in requests:
                request.retry_later()
            return
        for request, outcome in zip(requests, outcomes, strict=True):
            if outcome is False:
                request.signal_already_committed()
            elif isinstance(outcome, RetryableError):
                request.retry_later()
            elif isinstance(outcome, BaseException):
                request.signal_failed_with_known_reason(outcome)


class FileSink(TwoPhaseCommittingSink[T, PendingFile], Generic[T]):
    """Exactly-once part files on the local file system or S3 (Flink's ``FileSink``).

    Args:
        options: where to write, part-file names, rolling, manifest, S3 client.
        format: a :class:`FileFormat` (:class:`RowFormat`, :class:`ParquetFormat`,
            :class:`AvroFileFormat`) or a connector-base row :class:`Format` (JSON lines by
            default).
        bucket_assigner: the sub-directory of each record (default: the base path).
        rolling_policy: when part files roll; default from the options (row formats:
            :class:`DefaultRollingPolicy`; bulk formats always roll on checkpoint).

    Part files become visible only when the checkpoint that closed them completes: a job needs
    checkpoints (bounded jobs commit at their final checkpoint).
    """

    def __init__(
        self,
        options: FileSinkOptions,
        format: FileFormat | Format[Any] | None = None,
        *,
        bucket_assigner: BucketAssigner[T] | None = None,
        rolling_policy: RollingPolicy | None = None,
    ) -> None:
        self.options = options
        if format is None:
            format = JsonFormat()
        self.format: FileFormat = format if isinstance(format, FileFormat) else RowFormat(format)
        if isinstance(self.format, AvroFileFormat) and self.format.parsed_schema is None:
            raise ConfigurationError("FileSink: AvroFileFormat needs a schema to write Avro files")
        self.bucket_assigner: BucketAssigner[Any] = bucket_assigner or BasePathBucketAssigner()
        if rolling_policy is not None:
            self.rolling_policy = rolling_policy
        elif options.roll_on_checkpoint or self.format.bulk:
            self.rolling_policy = OnCheckpointRollingPolicy()
        else:
            self.rolling_policy = DefaultRollingPolicy(
                max_part_size=options.max_part_size,
                rollover_interval=options.rollover_interval,
                inactivity_interval=options.inactivity_interval,
            )
        self.suffix = options.part_suffix if options.part_suffix is not None else self.format.suffix
        self.filesystem: FileSystem = options.filesystem()

    @override
    def create_writer(self, context: WriterInitContext) -> CommittingSinkWriter[T, PendingFile]:
        return _FileSinkWriter(self, context, ())

    @override
    def restore_writer(
        self, context: WriterInitContext, states: list[Any]
    ) -> CommittingSinkWriter[T, PendingFile]:
        return _FileSinkWriter(self, context, states)

    @override
    def writer_state_serializer(self) -> VersionedSerializer[Any]:
        return JsonSerializer(
            version=_STATE_VERSION, to_json=_resume_to_json, from_json=_resume_from_json
        )

    @override
    def create_committer(self, context: WriterInitContext) -> Committer[PendingFile]:
        return _FileCommitter(self, context)

    @override
    def committable_serializer(self) -> VersionedSerializer[PendingFile]:
        return JsonSerializer(
            version=_STATE_VERSION, to_json=_pending_to_json, from_json=_pending_from_json
        )
