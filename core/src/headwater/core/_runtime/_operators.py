"""Chainable operators. Each applies its function in a tight loop over a batch and pushes the result on."""

from __future__ import annotations

import asyncio
import base64
import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from itertools import chain, compress
from operator import length_hint
from typing import Any

from headwater.core._errors import CheckpointError, TaskFailedError
from headwater.core._functions import ProcessFunction
from headwater.core._graph import NodeKind, Transformation
from headwater.core._runtime._channels import RecordBatch
from headwater.core._runtime._context import OperatorContext
from headwater.core._serialization import VersionedSerializer
from headwater.core._sink import (
    CommitRequest,
    Committer,
    CommittingSinkWriter,
    Sink,
    SinkWriter,
    TwoPhaseCommittingSink,
)

__all__ = ["Operator", "Output", "create_operator", "decode_blob", "encode_blob"]


def encode_blob(serializer: VersionedSerializer[Any], obj: Any) -> dict[str, Any]:
    """A serialized object as a JSON-compatible value with its format version."""
    return {"v": serializer.version, "b64": base64.b64encode(serializer.serialize(obj)).decode()}


def decode_blob(serializer: VersionedSerializer[Any], blob: dict[str, Any]) -> Any:
    """The object :func:`encode_blob` wrote."""
    return serializer.deserialize(int(blob["v"]), base64.b64decode(blob["b64"]))


def _describe(record: Any, limit: int = 200) -> str:
    text = repr(record)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Output(ABC):
    """Where an operator pushes its results: the next chained operator, or the task's output."""

    @abstractmethod
    async def process(self, batch: RecordBatch) -> None:
        """Take a batch of records."""

    @abstractmethod
    async def process_watermark(self, timestamp: int) -> None:
        """Take a watermark."""

    async def process_side(self, tag: str, batch: RecordBatch) -> None:  # noqa: B027
        """Take side-output records; without a consumer of ``tag`` they are dropped."""


class Operator(Output):
    """One operator of a chain; its ``output`` is the next operator or the task's output."""

    def __init__(self, transformation: Transformation) -> None:
        self.transformation = transformation
        self.name = transformation.name
        self.uid = transformation.operator_uid
        self.output: Output
        self.context: OperatorContext
        self.records_in = 0
        self.records_out = 0

    async def open(self, context: OperatorContext) -> None:
        """Prepare for the first batch (restored state is in ``context.restored``)."""
        self.context = context
        group = context.metric_group
        group.gauge("numRecordsIn", lambda: self.records_in)
        group.gauge("numRecordsOut", lambda: self.records_out)

    async def process_watermark(self, timestamp: int) -> None:
        """Forward the watermark."""
        await self.output.process_watermark(timestamp)

    async def end_input(self) -> None:
        """No more input will arrive."""

    async def process_input(self, input_index: int, batch: RecordBatch) -> None:
        """Take a batch from input ``input_index`` (two-input operators override this)."""
        await self.process(batch)

    async def on_processing_time(self, now_ms: int) -> None:
        """A processing-time tick the operator asked for is due."""

    async def on_control(self, item: Any) -> None:
        """A control element the operator posted to its task (e.g. an async result is ready)."""

    async def snapshot(self, checkpoint_id: int) -> dict[str, Any]:
        """State of this operator for the checkpoint (values the state codec writes)."""
        return _operator_state(self.context)

    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        """Checkpoint ``checkpoint_id`` is complete."""

    def pending_commits(self) -> int:
        """Committables of completed checkpoints not committed yet (two-phase sinks)."""
        return 0

    def suspend(self) -> None:
        """The job stops with the savepoint just snapshotted: emit and send nothing more."""

    def resume(self) -> None:
        """The stop failed: go on (undo :meth:`suspend`)."""

    async def close(self) -> None:
        """Release resources."""

    def _fail(self, exc: BaseException, values: Sequence[Any], remaining: int) -> TaskFailedError:
        position = len(values) - remaining - 1
        record = values[position] if 0 <= position < len(values) else "<unknown>"
        return TaskFailedError(
            f"operator '{self.name}' (subtask {self.context.subtask_index}) failed on record "
            f"{_describe(record)}: {type(exc).__name__}: {exc}",
            task=self.name,
            operator=self.name,
        )

    async def _emit(self, values: list[Any], timestamps: list[int | None] | None) -> None:
        if values:
            self.records_out += len(values)
            await self.output.process(RecordBatch(values, timestamps))


def _operator_state(context: OperatorContext) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if context.list_states:
        state["list"] = {name: s.items for name, s in context.list_states.items()}
    if context.union_states:
        state["union"] = {name: s.items for name, s in context.union_states.items()}
    return state


class _MapOperator(Operator):
    async def process(self, batch: RecordBatch) -> None:
        values = batch.values
        self.records_in += len(values)
        it = iter(values)
        try:
            out = list(map(self.transformation.payload, it))
        except Exception as exc:
            raise self._fail(exc, values, length_hint(it)) from exc
        await self._emit(out, batch.timestamps)


class _FilterOperator(Operator):
    async def process(self, batch: RecordBatch) -> None:
        values = batch.values
        self.records_in += len(values)
        it = iter(values)
        try:
            if batch.timestamps is None:
                await self._emit(list(filter(self.transformation.payload, it)), None)
                return
            keep = list(map(self.transformation.payload, it))
        except Exception as exc:
            raise self._fail(exc, values, length_hint(it)) from exc
        await self._emit(list(compress(values, keep)), list(compress(batch.timestamps, keep)))


class _FlatMapOperator(Operator):
    def _function(self) -> Callable[[Any], Any]:
        fn: Callable[[Any], Any] = self.transformation.payload
        return fn

    async def process(self, batch: RecordBatch) -> None:
        values = batch.values
        self.records_in += len(values)
        fn = self._function()
        it = iter(values)
        try:
            if batch.timestamps is None:
                await self._emit(list(chain.from_iterable(map(fn, it))), None)
                return
            out: list[Any] = []
            stamps: list[int | None] = []
            for value, ts in zip(it, batch.timestamps, strict=True):
                produced = list(fn(value))
                out.extend(produced)
                stamps.extend([ts] * len(produced))
        except Exception as exc:
            raise self._fail(exc, values, length_hint(it)) from exc
        await self._emit(out, stamps)


class _ProcessOperator(_FlatMapOperator):
    """Each subtask runs its own copy of the ProcessFunction (as if deserialized per subtask)."""

    def _function(self) -> Callable[[Any], Any]:
        return self.function.process_element

    async def open(self, context: OperatorContext) -> None:
        await super().open(context)
        self.function: ProcessFunction[Any, Any] = copy.deepcopy(self.transformation.payload)
        self.function.open(context)

    async def snapshot(self, checkpoint_id: int) -> dict[str, Any]:
        self.function.snapshot_state(checkpoint_id)
        return await super().snapshot(checkpoint_id)

    async def end_input(self) -> None:
        self.function.close()


class _SinkOperator(Operator):
    """Runs a sink's writer and, for two-phase sinks, its committer."""

    async def open(self, context: OperatorContext) -> None:
        await super().open(context)
        sink: Sink[Any] = self.transformation.payload
        self.sink = sink
        self.writer_serializer = sink.writer_state_serializer()
        restored = context.restored
        if restored.get("writer") and self.writer_serializer is not None:
            states = [decode_blob(self.writer_serializer, b) for b in restored["writer"]]
            self.writer: SinkWriter[Any] = sink.restore_writer(context, states)
        else:
            self.writer = sink.create_writer(context)
        self.committer: Committer[Any] | None = None
        self.commit_lock = asyncio.Lock()
        self.pending: list[tuple[int, CommitRequest[Any]]] = []
        if isinstance(sink, TwoPhaseCommittingSink):
            self.committable_serializer = sink.committable_serializer()
            self.committer = sink.create_committer(context)
            for checkpoint_id, blob in restored.get("committables", []):
                request = CommitRequest(decode_blob(self.committable_serializer, blob))
                self.pending.append((int(checkpoint_id), request))
            # Committables of the restored checkpoint are committed again (idempotently) at once.
            if self.pending and context.restored_checkpoint_id is not None:
                await self.notify_checkpoint_complete(context.restored_checkpoint_id)

    async def process(self, batch: RecordBatch) -> None:
        self.records_in += len(batch.values)
        await self.writer.write_batch(batch.values)
        self.records_out += len(batch.values)

    async def end_input(self) -> None:
        await self.writer.flush(True)

    async def snapshot(self, checkpoint_id: int) -> dict[str, Any]:
        await self.writer.flush(False)
        state = await super().snapshot(checkpoint_id)
        if self.committer is not None:
            writer = self.writer
            assert isinstance(writer, CommittingSinkWriter)
            for committable in await writer.prepare_commit():
                self.pending.append((checkpoint_id, CommitRequest(committable)))
            state["committables"] = [
                [cid, encode_blob(self.committable_serializer, r.committable)]
                for cid, r in self.pending
            ]
        writer_state = self.writer.snapshot_state(checkpoint_id)
        if writer_state:
            if self.writer_serializer is None:
                raise CheckpointError(
                    f"sink '{self.name}': its writer returned state but the sink has no "
                    f"writer_state_serializer()"
                )
            state["writer"] = [encode_blob(self.writer_serializer, s) for s in writer_state]
        return state

    def pending_commits(self) -> int:
        return len(self.pending)

    def suspend(self) -> None:
        self.writer.suspend()

    def resume(self) -> None:
        self.writer.resume()

    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        if self.committer is None:
            return
        async with self.commit_lock:
            await self._commit_up_to(checkpoint_id, self.committer)

    async def _commit_up_to(self, checkpoint_id: int, committer: Committer[Any]) -> None:
        due = [(cid, r) for cid, r in self.pending if cid <= checkpoint_id]
        if not due:
            return
        for _, request in due:
            request._outcome = "committed"
        await committer.commit([r for _, r in due])
        keep: list[tuple[int, CommitRequest[Any]]] = []
        for cid, request in due:
            if request.outcome in ("committed", "already_committed"):
                continue
            if request.outcome == "retry":
                request.number_of_retries += 1
                keep.append((cid, request))
                continue
            raise TaskFailedError(
                f"sink '{self.name}': commit of {_describe(request.committable)} failed "
                f"({request.outcome.replace('_', ' ')}): {request.error}",
                task=self.name,
                operator=self.name,
            ) from request.error
        self.pending = keep + [(cid, r) for cid, r in self.pending if cid > checkpoint_id]

    async def close(self) -> None:
        await self.writer.close()
        if self.committer is not None:
            await self.committer.close()


_OPERATORS: dict[NodeKind, type[Operator]] = {
    NodeKind.MAP: _MapOperator,
    NodeKind.FILTER: _FilterOperator,
    NodeKind.FLAT_MAP: _FlatMapOperator,
    NodeKind.PROCESS: _ProcessOperator,
    NodeKind.SINK: _SinkOperator,
}


def create_operator(transformation: Transformation) -> Operator:
    """The runtime operator of a (non-source) transformation."""
    from headwater.core._runtime._async_io import AsyncIoOperator
    from headwater.core._runtime._broadcast import BroadcastProcessOperator
    from headwater.core._runtime._keyed import KeyedProcessOperator, ReduceOperator, WindowOperator

    keyed: dict[NodeKind, type[Operator]] = {
        NodeKind.REDUCE: ReduceOperator,
        NodeKind.KEYED_PROCESS: KeyedProcessOperator,
        NodeKind.WINDOW: WindowOperator,
        NodeKind.ASYNC_IO: AsyncIoOperator,
        NodeKind.BROADCAST_PROCESS: BroadcastProcessOperator,
    }
    return (_OPERATORS.get(transformation.kind) or keyed[transformation.kind])(transformation)
