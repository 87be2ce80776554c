"""Tasks: one per parallel subtask of a job vertex; a source task or an operator task."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from headwater.core._dead_letters import DEAD_LETTER_TAG
from headwater.core._dead_letters import collector as dead_letters
from headwater.core._errors import TaskFailedError
from headwater.core._graph import JobVertex
from headwater.core._runtime._channels import (
    Barrier,
    EndOfInput,
    InputGate,
    ProcessingTimeTick,
    RecordBatch,
    Watermark,
    WatermarkStatus,
)
from headwater.core._runtime._operators import Operator, Output, encode_blob
from headwater.core._runtime._output import TaskOutput
from headwater.core._runtime._source_output import SourceOutput
from headwater.core._source import InputStatus, SourceReader, SplitEnumerator
from headwater.core._watermarks import MIN_WATERMARK, WatermarkStrategy

if TYPE_CHECKING:
    from headwater.core._metrics import MetricGroup
    from headwater.core._runtime._context import OperatorContext
    from headwater.core._runtime._coordinator import CheckpointCoordinator
    from headwater.core._serialization import VersionedSerializer

__all__ = ["OperatorTask", "SourceTask", "Task"]

MAX_WATERMARK = 2**63 - 1


_RESUME = object()
"""Control item: a stop's savepoint failed, the task goes on."""


class Task:
    """A chain of operators run by one subtask."""

    def __init__(
        self, vertex: JobVertex, subtask_index: int, operators: list[Operator], output: TaskOutput
    ) -> None:
        self.vertex = vertex
        self.subtask_index = subtask_index
        self.operators = operators
        self.output = output
        self.name = f"{vertex.name} ({subtask_index + 1}/{vertex.parallelism})"
        self.finished = False
        self.suspended = False
        """Past a stop's savepoint barrier: emit and send nothing (see :meth:`_checkpoint`)."""
        self.coordinator: CheckpointCoordinator
        self._notify_lock = asyncio.Lock()
        for op, nxt in zip(operators, [*operators[1:], output], strict=False):
            op.output = nxt
        self.head: Output = operators[0] if operators else output

    async def snapshot(self, checkpoint_id: int) -> dict[str, dict[str, Any]]:
        """The state of every operator of the chain, by operator uid."""
        return {op.uid: await op.snapshot(checkpoint_id) for op in self.operators}

    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        """Tell the chain that ``checkpoint_id`` is complete (in checkpoint order, one at a time).

        Notifications of successive checkpoints may be under way together (the coordinator does
        not wait for them); a task handles them in order.
        """
        async with self._notify_lock:
            await self._notify_complete(checkpoint_id)

    async def _notify_complete(self, checkpoint_id: int) -> None:
        for op in self.operators:
            await op.notify_checkpoint_complete(checkpoint_id)

    def resume(self) -> None:
        """Go on after a stop whose savepoint failed (the task suspended after its barrier)."""
        raise NotImplementedError

    def _resume(self) -> None:
        """Undo the suspension (run by the task itself, between its inputs)."""
        self.suspended = False
        for op in self.operators:
            op.resume()

    async def close(self) -> None:
        """Close every operator (the first error is raised after all were tried)."""
        errors: list[BaseException] = []
        for op in self.operators:
            try:
                await op.close()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    async def _end_input(self) -> None:
        for op in self.operators:
            await op.end_input()
        self.output.send_event(EndOfInput)
        self.finished = True
        self.coordinator.task_finished(self)

    async def _checkpoint(self, checkpoint_id: int) -> None:
        try:
            states = await self.snapshot(checkpoint_id)
            self.output.send_event(Barrier(checkpoint_id))
            self.coordinator.acknowledge(checkpoint_id, self, states)
        except Exception as exc:
            # The checkpoint fails with the error (its waiters learn why), then the task.
            self.coordinator.fail_checkpoint(checkpoint_id, self.fail(exc))
            raise
        if checkpoint_id == self.coordinator.stop_checkpoint_id:
            # The job stops with this savepoint: anything emitted or sent from now on would lie
            # past it (the restored job emits it again), so sources stop polling, operator tasks
            # hold back timers and async results, and sink writers stop sending.
            self.suspended = True
            for op in self.operators:
                op.suspend()

    def idle_seconds(self) -> float:
        """Time this task spent waiting for input."""
        return 0.0

    def register_metrics(self, group: MetricGroup) -> None:
        """Busy, idle and backpressured time of this task (Flink's accumulated time metrics)."""
        started = time.perf_counter()
        channels = [c for edge in self.output.edges for c in edge.channels]

        def backpressured() -> float:
            return sum(c.waited_s for c in channels) * 1000

        group.gauge("accumulatedIdleTimeMs", lambda: self.idle_seconds() * 1000)
        group.gauge("accumulatedBackPressuredTimeMs", backpressured)
        group.gauge(
            "accumulatedBusyTimeMs",
            lambda: max(
                0.0,
                (time.perf_counter() - started) * 1000
                - self.idle_seconds() * 1000
                - backpressured(),
            ),
        )

    def fail(self, exc: BaseException) -> TaskFailedError:
        """Wrap an unexpected error with the task's name."""
        if isinstance(exc, TaskFailedError):
            return exc
        return TaskFailedError(
            f"task '{self.name}' failed: {type(exc).__name__}: {exc}", task=self.name
        )


class OperatorTask(Task):
    """A task fed by an input gate; aligns checkpoint barriers across its input channels."""

    def __init__(
        self,
        vertex: JobVertex,
        subtask_index: int,
        operators: list[Operator],
        output: TaskOutput,
        gate: InputGate,
    ) -> None:
        super().__init__(vertex, subtask_index, operators, output)
        self.gate = gate
        for op in operators:
            op.context.post_control = gate.post_control
        self._aligning: int | None = None
        self._aligned = 0
        self._watermarks = [MIN_WATERMARK] * len(gate.channels)
        self._watermark = MIN_WATERMARK
        self._idle = [False] * len(gate.channels)
        self._idle_channels = 0
        self._forwarded_idle = False
        self._deferred: list[Any] = []

    def idle_seconds(self) -> float:
        """Time spent waiting on the input gate."""
        return self.gate.idle_s

    async def run(self) -> None:
        """Process input until every channel has ended."""
        gate = self.gate
        head = self.head
        get = gate.get
        inputs = gate.channel_inputs
        two_inputs = any(inputs)
        while True:
            index, item = await get()
            if type(item) is RecordBatch:
                if self._idle_channels and self._idle[index]:
                    await self._on_status(index, False)
                if two_inputs:
                    await self.operators[0].process_input(inputs[index], item)
                else:
                    await head.process(item)
            elif type(item) is Barrier:
                await self._on_barrier(index, item.checkpoint_id)
            elif type(item) is Watermark:
                await self._on_watermark(index, item.timestamp)
            elif type(item) is WatermarkStatus:
                await self._on_status(index, item.idle)
            elif index < 0:
                await self._on_control(item)
            elif item is EndOfInput:
                gate.ended[index] = True
                self._watermarks[index] = MAX_WATERMARK
                if self._aligning is not None and self._aligned >= gate.active_channels():
                    await self._complete_alignment()
                if gate.active_channels() == 0:
                    await self._end_input()
                    return

    def resume(self) -> None:
        """Replay the timers and async results held back since the stop's barrier."""
        self.gate.post_control(_RESUME)

    async def _on_control(self, item: Any) -> None:
        if item is _RESUME:
            self._resume()
            deferred, self._deferred = self._deferred, []
            for held in deferred:
                await self._on_control(held)
            return
        if self.suspended:
            # Past the stop's savepoint: a timer's or async call's output would be delivered
            # again by the restored job (its timers and calls are in the savepoint).
            self._deferred.append(item)
            return
        if type(item) is ProcessingTimeTick:
            now_ms = int(time.time() * 1000)
            for op in self.operators:
                await op.on_processing_time(now_ms)
        else:
            await self.operators[0].on_control(item)

    async def _on_barrier(self, index: int, checkpoint_id: int) -> None:
        if self._aligning is None:
            self._aligning = checkpoint_id
            self._aligned = 0
        elif checkpoint_id != self._aligning:
            # A barrier of a newer checkpoint overtakes an abandoned one: restart alignment.
            self.gate.unblock_all()
            self._aligning = checkpoint_id
            self._aligned = 0
        self.gate.blocked[index] = True
        self._aligned += 1
        if self._aligned >= self.gate.active_channels():
            await self._complete_alignment()

    async def _complete_alignment(self) -> None:
        checkpoint_id = self._aligning
        assert checkpoint_id is not None
        self._aligning = None
        self._aligned = 0
        await self._checkpoint(checkpoint_id)
        self.gate.unblock_all()

    async def _on_watermark(self, index: int, timestamp: int) -> None:
        if self._idle[index]:
            await self._on_status(index, False)
        if timestamp <= self._watermarks[index]:
            return
        self._watermarks[index] = timestamp
        await self._advance_watermark()

    async def _advance_watermark(self) -> None:
        active = [w for w, idle in zip(self._watermarks, self._idle, strict=True) if not idle]
        if not active:
            return
        combined = min(active)
        if combined > self._watermark:
            self._watermark = combined
            await self.head.process_watermark(combined)

    async def _on_status(self, index: int, idle: bool) -> None:
        """An idle channel stops holding back the watermark; all idle makes this task idle."""
        if self._idle[index] == idle or self.gate.ended[index]:
            return
        self._idle[index] = idle
        self._idle_channels += 1 if idle else -1
        all_idle = self._idle_channels == self.gate.active_channels()
        if all_idle != self._forwarded_idle:
            self._forwarded_idle = all_idle
            self.output.send_event(WatermarkStatus(idle=all_idle))
        if idle:
            await self._advance_watermark()


class SourceTask(Task):
    """A task whose head is a source reader; checkpoints are triggered through its mailbox."""

    def __init__(
        self,
        vertex: JobVertex,
        subtask_index: int,
        operators: list[Operator],
        output: TaskOutput,
        reader: SourceReader[Any, Any],
        split_serializer: VersionedSerializer[Any],
        watermarks: WatermarkStrategy[Any],
        batch_size: int,
        batch_linger: float,
    ) -> None:
        super().__init__(vertex, subtask_index, operators, output)
        self.reader = reader
        self.source_uid = vertex.head.operator_uid
        self.split_serializer = split_serializer
        self.mailbox: deque[tuple[str, Any]] = deque()
        self._mail_waiter: asyncio.Future[None] | None = None
        self._out = SourceOutput(watermarks, time.monotonic())
        self._batch_size = batch_size
        self._linger = batch_linger
        self._timed = (
            watermarks.generator_factory is not None or watermarks.idle_timeout is not None
        )
        self._emit_interval = watermarks.emit_interval.total_seconds()
        self._last_watermark = MIN_WATERMARK
        self._last_watermark_emit = 0.0
        self._idle = False
        self.alignment = watermarks.alignment
        self._max_allowed: int | None = None
        self._max_drift = (
            None
            if watermarks.alignment is None
            else int(watermarks.alignment.max_drift.total_seconds() * 1000)
        )
        self._paused: set[str] = set()
        self.records_out = 0
        self.reader_context: OperatorContext
        self._idle_s = 0.0
        self.last_emitted_timestamp: int | None = None

    def idle_seconds(self) -> float:
        """Time spent waiting for the reader to have data."""
        return self._idle_s

    def register_metrics(self, group: MetricGroup) -> None:
        """Task times plus the FLIP-33 source lags."""
        super().register_metrics(group)
        group.gauge("numRecordsOut", lambda: self.records_out)
        group.gauge(
            "currentEmitEventTimeLag",
            lambda: (
                None
                if self.last_emitted_timestamp is None
                else int(time.time() * 1000) - self.last_emitted_timestamp
            ),
        )
        group.gauge(
            "watermarkLag",
            lambda: (
                None
                if self._last_watermark <= MIN_WATERMARK or self._last_watermark >= MAX_WATERMARK
                else int(time.time() * 1000) - self._last_watermark
            ),
        )

    async def _wait_for_mail(self) -> None:
        if self.mailbox:
            return
        self._mail_waiter = asyncio.get_running_loop().create_future()
        waited = time.perf_counter()
        await self._mail_waiter
        self._idle_s += time.perf_counter() - waited
        self._mail_waiter = None

    def connect(self, enumerator: SplitEnumerator[Any, Any]) -> None:
        """Route the reader's split requests and events to its enumerator."""
        index = self.subtask_index
        self.reader_context.split_requests = lambda: enumerator.handle_split_request(index)
        self.reader_context.source_events = lambda e: enumerator.handle_source_event(index, e)

    def post(self, kind: str, payload: Any = None) -> None:
        """Queue an action for the task (split assignment, checkpoint trigger, event)."""
        self.mailbox.append((kind, payload))
        waiter = self._mail_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def run(self) -> None:
        """Poll the reader until it reaches the end of its input."""
        reader = self.reader
        out = self._out
        batch_size = self._batch_size
        # Dead letters reported during a poll join the buffer when the job reads them.
        consumed = not self.operators and any(
            edge.tag == DEAD_LETTER_TAG for edge in self.output.edges
        )
        collect_letters = out.add_dead_letter if consumed else None
        await reader.start()
        first_buffered = 0.0
        while True:
            if self.mailbox:
                await self._process_mail()
            if self.suspended or self._held():
                await self._wait_for_mail()
                continue
            token = dead_letters.set(collect_letters)
            try:
                status = reader.poll_next(out)
            finally:
                dead_letters.reset(token)
            if self._max_drift is not None:
                self._align()  # per poll (one split's batch): a split stops soon after it is ahead
            buffered = out.pending()
            if buffered:
                now = time.monotonic()
                if first_buffered == 0.0:
                    first_buffered = now
                if (
                    buffered >= batch_size
                    or status is not InputStatus.MORE_AVAILABLE
                    or now - first_buffered >= self._linger
                ):
                    await self._flush()
                    first_buffered = 0.0
                    await asyncio.sleep(0)
            if status is InputStatus.MORE_AVAILABLE:
                continue
            if status is InputStatus.END_OF_INPUT:
                break
            await self._maybe_emit_watermark()
            available = reader.is_available()
            if not available.done() and not self.mailbox:
                self._mail_waiter = asyncio.get_running_loop().create_future()
                timeout = self._emit_interval if self._timed else None
                waited = time.perf_counter()
                await asyncio.wait(
                    [available, self._mail_waiter],
                    timeout=timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                self._idle_s += time.perf_counter() - waited
                self._mail_waiter = None
        await self._process_mail()
        # The end of a bounded input is the end of event time: every event-time window fires.
        await self.head.process_watermark(MAX_WATERMARK)
        await self._end_input()

    async def _flush(self) -> None:
        if self._out.dead_letters:
            await self.output.process_side(DEAD_LETTER_TAG, self._out.take_dead_letters())
            if not self._out.values:
                return
        batch = self._out.take()
        self.records_out += len(batch.values)
        if batch.timestamps:
            present = [t for t in batch.timestamps if t is not None]
            if present:
                self.last_emitted_timestamp = max(present)
        if self._idle:
            self._idle = False
            self.output.send_event(WatermarkStatus(idle=False))
        size = self._batch_size
        if len(batch.values) <= size:
            await self.head.process(batch)
        else:  # one poll emitted more than a batch (a large fetch): send it in batch_size slices
            values, stamps = batch.values, batch.timestamps
            for start in range(0, len(values), size):
                end = start + size
                await self.head.process(
                    RecordBatch(values[start:end], None if stamps is None else stamps[start:end])
                )
        # Only after every slice: the watermark already covers the whole buffer.
        await self._maybe_emit_watermark()

    async def _maybe_emit_watermark(self) -> None:
        now = time.monotonic()
        if (
            now - self._last_watermark_emit < self._emit_interval
            and not self._out.explicit_advanced
        ):
            return
        self._out.explicit_advanced = False
        self._last_watermark_emit = now
        candidate, all_idle = self._out.watermark(now)
        if all_idle and not self._idle:
            self._idle = True
            self.output.send_event(WatermarkStatus(idle=True))
        if candidate is not None and candidate > self._last_watermark:
            self._last_watermark = candidate
            await self.head.process_watermark(candidate)
        if self._max_drift is not None:
            self._align()

    @property
    def current_watermark(self) -> int:
        """The reader's watermark now (fresher than the last one emitted), for alignment."""
        fresh, _ = self._out.watermark(time.monotonic())
        return self._last_watermark if fresh is None else max(fresh, self._last_watermark)

    @property
    def is_idle(self) -> bool:
        """Whether every output of the reader is idle."""
        return self._idle

    def _align(self) -> None:
        """Pause the splits ahead of the allowance, resume the others.

        The allowance is the group's (its slowest reader's watermark plus the drift, sent by the
        job every update interval) and never more than this reader's own slowest split plus
        the drift, which is known at once: so a split cannot run ahead of its reader's other
        splits before the first update, nor between updates.
        """
        assert self._max_drift is not None
        marks = self._out.split_watermarks(time.monotonic())
        if not marks:
            return
        # A split that has no watermark yet (and is not idle) may still bring the oldest records.
        own = min(MIN_WATERMARK if m is None else m for m in marks.values()) + self._max_drift
        allowed = own if self._max_allowed is None else min(own, self._max_allowed)
        ahead = {split for split, mark in marks.items() if mark is not None and mark > allowed}
        to_pause = sorted(ahead - self._paused)
        to_resume = sorted(self._paused - ahead)
        if to_pause or to_resume:
            self.reader.pause_or_resume_splits(to_pause, to_resume)
            self._paused = ahead

    def _held(self) -> bool:
        """A reader whose watermark is ahead of its alignment group is not polled.

        Its watermark is the minimum over its splits, so every split is ahead: this also aligns
        readers that cannot pause single splits (``pause_or_resume_splits`` is optional).
        """
        return self._max_allowed is not None and self._last_watermark > self._max_allowed

    async def _process_mail(self) -> None:
        while self.mailbox:
            kind, payload = self.mailbox.popleft()
            if kind == "splits":
                self.reader.add_splits(payload)
            elif kind == "no_more_splits":
                self.reader.notify_no_more_splits()
            elif kind == "event":
                self.reader.handle_source_event(payload)
            elif kind == "align":
                self._max_allowed = payload
                self._align()
            elif kind == "trigger":
                if self._out.pending():
                    await self._flush()
                await self._checkpoint(payload)
            elif kind == "resume":
                self._resume()

    def resume(self) -> None:
        """Poll the reader again."""
        self.post("resume")

    async def snapshot(self, checkpoint_id: int) -> dict[str, dict[str, Any]]:
        """The reader's splits (by the source's uid) and the chained operators' state."""
        splits = self.reader.snapshot_state(checkpoint_id)
        states = {
            self.source_uid: {"splits": [encode_blob(self.split_serializer, s) for s in splits]}
        }
        states.update(await super().snapshot(checkpoint_id))
        return states

    async def _notify_complete(self, checkpoint_id: int) -> None:
        """Tell the reader and the chained operators."""
        await self.reader.notify_checkpoint_complete(checkpoint_id)
        await super()._notify_complete(checkpoint_id)

    async def close(self) -> None:
        """Close the reader, then the chained operators."""
        try:
            await self.reader.close()
        finally:
            await super().close()
