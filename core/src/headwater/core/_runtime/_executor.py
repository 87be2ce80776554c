"""The local executor: runs a job graph on one asyncio event loop, with checkpoints and restarts."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import sys
import time
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.core._console import install_excepthook
from headwater.core._errors import (
    CheckpointError,
    JobCancelledError,
    JobFailedError,
    TaskFailedError,
)
from headwater.core._graph import JobGraph, JobVertex, NodeKind, resolve_partitioning
from headwater.core._metrics import MetricRegistry
from headwater.core._runtime._channels import InputGate
from headwater.core._runtime._context import BlockingPool, OperatorContext
from headwater.core._runtime._coordinator import (
    CheckpointCoordinator,
    CompletedCheckpoint,
    EnumeratorContext,
)
from headwater.core._runtime._gc import tuned_gc
from headwater.core._runtime._operators import create_operator, decode_blob
from headwater.core._runtime._output import EdgeWriter, TaskOutput
from headwater.core._runtime._progress import JobProgress
from headwater.core._runtime._restore import RestoredJob
from headwater.core._runtime._storage import CheckpointStorage, read_metadata
from headwater.core._runtime._tasks import OperatorTask, SourceTask, Task
from headwater.core._source import Boundedness, Source, SplitEnumerator
from headwater.core._watermarks import MIN_WATERMARK

if TYPE_CHECKING:
    from headwater.core._environment import StreamEnvironment

__all__ = ["JobClient", "JobResult", "JobStatus", "LocalExecutor", "announce"]

log = logging.getLogger("headwater.executor")

RESTORE_ENV = "HEADWATER_RESTORE_FROM"
"""Set by ``headwater run --restore PATH``: the checkpoint every job of the run starts from."""

STARTED: weakref.WeakSet[StreamEnvironment] = weakref.WeakSet()
"""Environments that started a job (``headwater run module:function`` reports one built, not run)."""

FINAL_COMMIT_RETRIES = 12
"""Retries (backoff 50 ms doubling to 5 s, ~40 s in all) of commits pending at the end of a job."""


class JobStatus(enum.Enum):
    """The lifecycle of a job."""

    CREATED = "created"
    RUNNING = "running"
    RESTARTING = "restarting"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass
class JobResult:
    """What a finished job reports."""

    job_name: str
    status: JobStatus
    duration_s: float
    restarts: int
    checkpoints: int
    last_checkpoint: Path | None
    metrics: dict[str, dict[str, float | int | None]] = field(default_factory=dict)
    """Per operator (summed over subtasks): ``numRecordsIn``, ``numRecordsOut``, ..."""


class _Stop(Exception):
    """Ends an attempt without a failure (cancel, stop with savepoint)."""


class Attempt:
    """One run of the job graph, started empty or from a checkpoint."""

    def __init__(self, executor: LocalExecutor, restored: RestoredJob | None, number: int) -> None:
        self.executor = executor
        self.env = executor.env
        self.graph = executor.graph
        self.job_name = executor.graph.name
        self.restored = restored
        self.number = number
        self.tasks: list[Task] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._done = asyncio.Event()
        self._failure: BaseException | None = None
        self._finished = 0
        self.stop_requested = False

    # -- supervision -----------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as part of this attempt; an exception fails the attempt."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._on_done)
        return task

    def _on_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        """Fail the attempt (the first failure wins; later ones are noted on it).

        Pending checkpoints fail with it, so nothing (the final checkpoint, a savepoint) waits
        for acknowledgements that will never come.
        """
        if self._failure is None:
            self._failure = exc
        elif exc is not self._failure:
            self._failure.add_note(f"also: {type(exc).__name__}: {exc}")
        self._done.set()
        coordinator = getattr(self, "coordinator", None)
        if coordinator is not None:
            coordinator.fail_all(exc)

    def stop(self) -> None:
        """End the attempt without failure."""
        self.stop_requested = True
        self._done.set()

    def task_finished(self) -> None:
        """A task ended its input."""
        self._finished += 1
        if self._finished == len(self.tasks):
            self._done.set()

    # -- building --------------------------------------------------------------------------
    def _context(
        self,
        vertex: JobVertex,
        uid: str,
        name: str,
        kind: NodeKind,
        subtask: int,
        coordinator: CheckpointCoordinator | None = None,
    ) -> OperatorContext:
        restored = None
        if self.restored is not None:
            restored = self.restored.subtask_state(
                uid, kind, subtask, vertex.parallelism, vertex.max_parallelism
            )
        return OperatorContext(
            operator_name=name,
            operator_uid=uid,
            job_name=self.job_name,
            subtask_index=subtask,
            parallelism=vertex.parallelism,
            max_parallelism=vertex.max_parallelism,
            metric_group=self.executor.metrics.group(
                {"job": self.job_name, "operator": name, "subtask": str(subtask)}
            ),
            pool=self.executor.pool,
            attempt=self.number,
            restored_checkpoint_id=self.restored.checkpoint_id if self.restored else None,
            restored=restored,
            state_backend=self.env.state_backend,
            incremental_dir=self.executor.storage.shared_dir()
            if self.env.checkpointing.incremental
            else None,
            incremental_full_every=self.env.checkpointing.incremental_full_every,
            is_savepoint=coordinator.is_savepoint if coordinator is not None else None,
            checkpoint_dir=coordinator.checkpoint_dir if coordinator is not None else None,
        )

    async def _build(self, coordinator: CheckpointCoordinator) -> None:
        execution = self.env.execution
        gates: dict[int, list[InputGate]] = {}
        offsets: dict[tuple[int, int, int], int] = {}
        for vertex in self.graph.vertices:
            total = 0
            channel_inputs: list[int] = []
            for upstream, edge in vertex.inputs:
                offsets[(vertex.index, id(edge), upstream.index)] = total
                total += upstream.parallelism
                channel_inputs.extend([edge.input_index] * upstream.parallelism)
            if vertex.inputs:
                gates[vertex.index] = [
                    InputGate(total, execution.channel_capacity, channel_inputs)
                    for _ in range(vertex.parallelism)
                ]
        for vertex in self.graph.vertices:
            vertex_tasks: list[Task] = []
            for subtask in range(vertex.parallelism):
                writers = []
                for downstream, edge in vertex.outputs:
                    offset = offsets[(downstream.index, id(edge), vertex.index)]
                    channels = [g.channels[offset + subtask] for g in gates[downstream.index]]
                    partitioning = resolve_partitioning(
                        edge, vertex.parallelism, downstream.parallelism
                    )
                    writers.append(
                        EdgeWriter(
                            edge, partitioning, channels, subtask, downstream.max_parallelism
                        )
                    )
                output = TaskOutput(writers)
                chain = (
                    vertex.chain if vertex.head.kind is not NodeKind.SOURCE else vertex.chain[1:]
                )
                operators = [create_operator(t) for t in chain]
                for op in operators:
                    await op.open(
                        self._context(
                            vertex, op.uid, op.name, op.transformation.kind, subtask, coordinator
                        )
                    )
                task: Task
                if vertex.head.kind is NodeKind.SOURCE:
                    task = self._source_task(vertex, subtask, operators, output)
                else:
                    task = OperatorTask(
                        vertex, subtask, operators, output, gates[vertex.index][subtask]
                    )
                    task.register_metrics(operators[0].context.metric_group)
                task.coordinator = coordinator
                vertex_tasks.append(task)
            self.tasks.extend(vertex_tasks)
            if vertex.head.kind is NodeKind.SOURCE:
                await self._start_enumerator(
                    vertex, [t for t in vertex_tasks if isinstance(t, SourceTask)], coordinator
                )
        coordinator.tasks = self.tasks

    def _source_task(
        self, vertex: JobVertex, subtask: int, operators: list[Any], output: TaskOutput
    ) -> SourceTask:
        head = vertex.head
        source, watermarks = head.payload
        context = self._context(vertex, head.operator_uid, head.name, NodeKind.SOURCE, subtask)
        reader = source.create_reader(context)
        serializer = source.split_serializer()
        restored_splits = [decode_blob(serializer, b) for b in context.restored.get("splits", [])]
        if restored_splits:
            reader.add_splits(restored_splits)
        task = SourceTask(
            vertex,
            subtask,
            operators,
            output,
            reader,
            serializer,
            watermarks,
            self.env.execution.batch_size,
            self.env.execution.batch_linger.total_seconds(),
        )
        task.reader_context = context
        task.register_metrics(context.metric_group)
        return task

    async def _start_enumerator(
        self, vertex: JobVertex, readers: list[SourceTask], coordinator: CheckpointCoordinator
    ) -> None:
        source: Source[Any, Any, Any] = vertex.head.payload[0]
        uid = vertex.head.operator_uid
        context = EnumeratorContext(self, readers, self.executor.pool)
        blob = self.restored.enumerator_state(uid) if self.restored else None
        enumerator: SplitEnumerator[Any, Any]
        if blob is not None:
            state = decode_blob(source.enumerator_state_serializer(), blob)
            enumerator = source.restore_enumerator(context, state)
        else:
            enumerator = source.create_enumerator(context)
        for reader in readers:
            reader.connect(enumerator)
        coordinator.enumerators[uid] = (source, enumerator)
        await enumerator.start()
        for reader in readers:
            context.register(reader.subtask_index)
            enumerator.add_reader(reader.subtask_index)

    # -- running ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Build, restore, run until the end of input (final checkpoint), a stop or a failure."""
        checkpointing = self.env.checkpointing
        coordinator = CheckpointCoordinator(
            self,
            self.executor.storage,
            self.executor.next_checkpoint_id(),
            checkpointing.timeout,
            self.executor.pool,
            self.executor.checkpoint_completed,
        )
        self.coordinator = coordinator
        try:
            await self._build(coordinator)
            for task in self.tasks:
                self.spawn(self._run_task(task), task.name)
            if checkpointing.interval is not None:
                self.spawn(self._trigger_periodically(coordinator), "checkpoint trigger")
            self._start_alignment()
            await self._done.wait()
            if self._failure is None and not self.stop_requested:
                await self._final_checkpoint(coordinator)
        except Exception as exc:
            self.fail(exc)
        finally:
            await self._shutdown()
        if self._failure is not None:
            raise self._failure
        if self.stop_requested:
            raise _Stop

    def _start_alignment(self) -> None:
        """One loop per watermark alignment group: tell its sources how far they may run."""
        groups: dict[str, list[SourceTask]] = {}
        for task in self.tasks:
            if isinstance(task, SourceTask) and task.alignment is not None:
                groups.setdefault(task.alignment.group, []).append(task)
        for name, members in groups.items():
            self.spawn(self._align(members), f"watermark alignment {name}")

    async def _align(self, members: list[SourceTask]) -> None:
        alignments = [t.alignment for t in members if t.alignment is not None]
        drift = min(int(a.max_drift.total_seconds() * 1000) for a in alignments)
        interval = min(a.update_interval.total_seconds() for a in alignments)
        while True:
            await asyncio.sleep(interval)
            live = [t for t in members if not t.finished and not t.is_idle]
            # A reader without a watermark yet does not hold the group at the minimum watermark.
            marks = [m for m in (t.current_watermark for t in live) if m > MIN_WATERMARK]
            if marks:
                allowed = min(marks) + drift
                for task in live:
                    task.post("align", allowed)

    async def _run_task(self, task: Task) -> None:
        try:
            await task.run()  # type: ignore[attr-defined]
        except (asyncio.CancelledError, TaskFailedError):
            raise
        except Exception as exc:
            raise task.fail(exc) from exc

    async def _trigger_periodically(self, coordinator: CheckpointCoordinator) -> None:
        checkpointing = self.env.checkpointing
        assert checkpointing.interval is not None
        interval = checkpointing.interval.total_seconds()
        min_pause = checkpointing.min_pause.total_seconds()
        while True:
            await asyncio.sleep(interval)
            pause = coordinator.last_completed_at + min_pause - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            if all(t.finished for t in self.tasks):
                return
            if coordinator.stopping:
                continue
            # An expired checkpoint is skipped; a failed one has failed the attempt already.
            with contextlib.suppress(TimeoutError, CheckpointError):
                await coordinator.trigger()

    async def _final_checkpoint(self, coordinator: CheckpointCoordinator) -> None:
        """Every task ended its input: a last checkpoint lets two-phase sinks commit everything.

        The job does not end while a commit asked to be retried: it is retried with backoff, and
        if it still is not done the attempt fails, so a restart commits it again from the final
        checkpoint. Ending here would silently leave the data uncommitted.
        """
        final = await coordinator.trigger("final")
        delay = 0.05
        for _ in range(FINAL_COMMIT_RETRIES):
            pending = [op for task in self.tasks for op in task.operators if op.pending_commits()]
            if not pending:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            for op in pending:
                await op.notify_checkpoint_complete(final.checkpoint_id)
        names = sorted(
            {op.name for task in self.tasks for op in task.operators if op.pending_commits()}
        )
        if names:
            raise TaskFailedError(
                f"the job ended with commits still pending in {', '.join(names)} after "
                f"{FINAL_COMMIT_RETRIES} retries; restarting to commit them from the final checkpoint",
                task=names[0],
                operator=names[0],
            )

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        for task in list(self._background):
            if task is not current:
                task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for subtask in self.tasks:
            try:
                await subtask.close()
            except Exception as exc:
                if self._failure is None and not self.stop_requested:
                    self.fail(exc)
                else:
                    log.debug("closing %s after a failure: %s", subtask.name, exc)
        for _, enumerator in self.coordinator.enumerators.values():
            try:
                await enumerator.close()
            except Exception as exc:
                log.debug("closing an enumerator: %s", exc)


class LocalExecutor:
    """Runs one job; restarts it from its latest checkpoint as the restart strategy allows."""

    def __init__(self, env: StreamEnvironment, graph: JobGraph) -> None:
        self.env = env
        self.graph = graph
        STARTED.add(env)
        install_excepthook()  # an uncaught job error gets a summary above its traceback
        checkpointing = env.checkpointing
        self.storage = CheckpointStorage(checkpointing.storage, checkpointing.retained)
        self.storage.check_writable()
        self.storage.remove_orphans()
        self.metrics = MetricRegistry()
        self.pool = BlockingPool(env.execution.blocking_pool_size)
        self.latest: CompletedCheckpoint | None = None
        self.completed = 0
        self._next_id = self.storage.highest_id() + 1
        self.attempt: Attempt | None = None
        self.status = JobStatus.CREATED
        self.restarts = 0
        self.bounded = all(
            v.head.payload[0].boundedness is Boundedness.BOUNDED
            for v in graph.vertices
            if v.head.kind is NodeKind.SOURCE
        )

    def next_checkpoint_id(self) -> int:
        """The id the next attempt starts counting from."""
        return self._next_id

    def checkpoint_completed(self, completed: CompletedCheckpoint) -> None:
        """Remember the newest completed checkpoint (the restore point after a failure)."""
        self._next_id = max(self._next_id, completed.checkpoint_id + 1)
        if completed.kind != "savepoint":
            self.completed += 1
        if self.latest is None or completed.checkpoint_id > self.latest.checkpoint_id:
            self.latest = completed

    def _initial_restore(self) -> RestoredJob | None:
        source = os.environ.get(RESTORE_ENV) or self.env.checkpointing.restore_from
        if source is None:
            return None
        if source == "latest":
            path = self.storage.latest()
            if path is None:
                return None
        else:
            path = Path(source)
        metadata = read_metadata(path)
        restored = RestoredJob(metadata, path)
        self._next_id = max(self._next_id, restored.checkpoint_id + 1)
        return restored

    def _announce_start(self, restored: RestoredJob | None) -> None:
        """Say whether the job starts fresh or resumes, and from which checkpoint."""
        name = self.graph.name
        if restored is None:
            announce(f"job '{name}' starts fresh (no checkpoint to resume from)")
            return
        kind = restored.metadata.get("kind", "checkpoint")
        announce(f"job '{name}' resumes from {kind} {restored.checkpoint_id} at {restored.path}")
        if kind == "final":
            how = (
                "run it without --restore"
                if os.environ.get(RESTORE_ENV)
                else f"delete the checkpoints in {self.storage.directory} or drop restore_from"
            )
            announce(
                f"job '{name}' already finished: its {kind} checkpoint {restored.checkpoint_id} "
                f"says every source was read to the end, so there is nothing to do (pending "
                f"commits are completed). To start over, {how}."
            )

    async def start(self) -> JobClient:
        """Start the job in the background; returns its client."""
        client = JobClient(self)
        client._task = asyncio.get_running_loop().create_task(
            self._run(client), name=self.graph.name
        )
        return client

    async def _run(self, client: JobClient) -> JobResult:
        execution = self.env.execution
        with tuned_gc(execution.gc_threshold, execution.gc_freeze):
            return await self._run_attempts(client)

    def _raise_if_cancelled(self, client: JobClient) -> None:
        """End the job as cancelled if its client asked to, while no attempt is running."""
        if client._cancelled:
            self.status = JobStatus.CANCELED
            raise JobCancelledError(f"job '{self.graph.name}' was cancelled")

    async def _run_attempts(self, client: JobClient) -> JobResult:
        started = time.monotonic()
        progress = JobProgress(client, self.graph) if self.env.execution.progress else None
        for reporter in self.env.metric_reporters:
            await reporter.open(self.metrics)
        try:
            restored = self._initial_restore()
            if restored is not None:
                restored.check_operators(
                    self.graph, self.env.checkpointing.allow_non_restored_state
                )
            if self.env.execution.progress:
                self._announce_start(restored)
            strategy = self.env.restart_strategy
            strategy.reset()
            number = 0
            while True:
                self._raise_if_cancelled(client)  # before the first attempt or while restarting
                self.attempt = Attempt(self, restored, number)
                self.status = JobStatus.RUNNING
                try:
                    await self.attempt.run()
                    self.status = JobStatus.FINISHED
                    break
                except _Stop:
                    self.status = JobStatus.CANCELED if client._cancelled else JobStatus.FINISHED
                    if client._cancelled:
                        raise JobCancelledError(f"job '{self.graph.name}' was cancelled") from None
                    break
                except Exception as exc:
                    if client._cancelled:
                        self.status = JobStatus.CANCELED
                        raise JobCancelledError(f"job '{self.graph.name}' was cancelled") from exc
                    delay = strategy.next_delay(time.monotonic())
                    if delay is None:
                        self.status = JobStatus.FAILED
                        raise JobFailedError(
                            f"job '{self.graph.name}' failed after {self.restarts} restart(s): {exc}"
                        ) from exc
                    log.warning(
                        "job '%s' attempt %d failed (%s); restarting in %.2f s from %s",
                        self.graph.name,
                        number,
                        exc,
                        delay.total_seconds(),
                        f"checkpoint {self.latest.checkpoint_id}" if self.latest else "the start",
                    )
                    self.status = JobStatus.RESTARTING
                    await asyncio.sleep(delay.total_seconds())
                    if self.latest is not None:
                        restored = RestoredJob(self.latest.metadata, self.latest.path)
                    self.restarts += 1
                    number += 1
        finally:
            if progress is not None:
                progress.finish()
            for reporter in self.env.metric_reporters:
                await reporter.close()
            self.pool.shutdown()
        return JobResult(
            job_name=self.graph.name,
            status=self.status,
            duration_s=time.monotonic() - started,
            restarts=self.restarts,
            checkpoints=self.completed,
            last_checkpoint=self.latest.path if self.latest else None,
            metrics=operator_totals(self.metrics),
        )


_SUBTASK_SCOPE = frozenset({"job", "operator", "subtask"})
"""The scope keys of a subtask's own metric group."""


def operator_totals(metrics: MetricRegistry) -> dict[str, dict[str, float | int | None]]:
    """Metrics summed over subtasks, per operator.

    Only the subtasks' own groups are summed: a child group's metrics (a Kafka partition's, a
    Kinesis shard's) are a breakdown of its subtask's, and counting both would count them twice.
    """
    totals: dict[str, dict[str, float | int | None]] = {}
    for group in metrics.groups():
        name = group.scope.get("operator")
        if name is None or group.scope.keys() != _SUBTASK_SCOPE:
            continue
        entry = totals.setdefault(name, {})
        for key, value in group.snapshot().items():
            if isinstance(value, int | float):
                previous = entry.get(key) or 0
                entry[key] = previous + value
    return totals


def announce(line: str) -> None:
    """One line about the job's lifecycle (start, stop), on stderr beside the progress lines."""
    sys.stderr.write(f"headwater: {line}\n")
    sys.stderr.flush()


class JobClient:
    """Watches and controls a running job."""

    def __init__(self, executor: LocalExecutor) -> None:
        self._executor = executor
        self._task: asyncio.Task[JobResult]
        self._cancelled = False

    @property
    def status(self) -> JobStatus:
        """The job's status now."""
        return self._executor.status

    @property
    def job_name(self) -> str:
        """The job's name."""
        return self._executor.graph.name

    def metrics(self) -> dict[str, dict[str, float | int | None]]:
        """Metrics per operator, summed over subtasks."""
        return operator_totals(self._executor.metrics)

    @property
    def checkpoints(self) -> int:
        """Checkpoints completed so far (savepoints not counted)."""
        return self._executor.completed

    @property
    def last_checkpoint_duration_s(self) -> float | None:
        """How long the newest completed checkpoint took, from trigger to metadata written."""
        latest = self._executor.latest
        return None if latest is None else latest.duration_s

    @property
    def restarts(self) -> int:
        """Restarts after failures so far."""
        return self._executor.restarts

    async def wait(self) -> JobResult:
        """Wait for the job to end; raises :class:`JobFailedError` if it failed."""
        return await asyncio.shield(self._task)

    async def cancel(self) -> None:
        """Cancel the job without a savepoint and wait for it to stop."""
        self._cancelled = True
        attempt = self._executor.attempt
        if attempt is not None:
            attempt.stop()
        with contextlib.suppress(JobCancelledError):
            await asyncio.shield(self._task)

    async def trigger_savepoint(self, path: str | Path) -> Path:
        """Take a savepoint into directory ``path`` (kept until you delete it); returns ``path``."""
        return await self._savepoint(path, stop=False)

    async def stop_with_savepoint(self, path: str | Path | None = None) -> Path:
        """Take a savepoint, then stop the job; restart it later from the path it returns.

        The savepoint is the job's last checkpoint: sources emit nothing after its barrier and
        no checkpoint follows it, so sinks write and commit nothing past it and a job restored
        from it continues exactly where this one stopped. Without ``path`` it goes into the
        checkpoint storage as the newest checkpoint (``chk-<id>``, kind ``savepoint``), so
        ``restore_from="latest"`` resumes from it too.
        """
        saved = await self._savepoint(path, stop=True)
        attempt = self._executor.attempt
        if attempt is not None:
            attempt.stop()
        await asyncio.shield(self._task)
        return saved

    async def _savepoint(self, path: str | Path | None, *, stop: bool) -> Path:
        attempt = self._executor.attempt
        if attempt is None or self.status is not JobStatus.RUNNING:
            raise CheckpointError(f"cannot take a savepoint of a job that is {self.status.value}")
        if path is None and self._executor.storage.directory is None:
            raise CheckpointError(
                "a savepoint without a path needs a checkpoint storage directory "
                "(CheckpointConfig(storage=...))"
            )
        target = None if path is None else Path(path)
        completed = await attempt.coordinator.trigger("savepoint", target, stop=stop)
        assert completed.path is not None
        return completed.path
