"""The checkpoint coordinator and the split enumerators' contexts."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from headwater.core._errors import CheckpointError
from headwater.core._runtime._context import BlockingPool
from headwater.core._runtime._operators import encode_blob
from headwater.core._runtime._storage import FORMAT_VERSION, CheckpointStorage
from headwater.core._runtime._tasks import SourceTask, Task
from headwater.core._source import Source, SplitEnumerator
from headwater.core._state_codec import CODEC_VERSION, StateValueError, encode_state

if TYPE_CHECKING:
    from headwater.core._runtime._executor import Attempt

__all__ = ["CheckpointCoordinator", "CompletedCheckpoint", "EnumeratorContext"]

log = logging.getLogger("headwater.checkpoints")
R = TypeVar("R")


@dataclass
class CompletedCheckpoint:
    """A checkpoint whose every subtask acknowledged; ``data`` is its metadata document."""

    checkpoint_id: int
    data: bytes
    path: Path | None
    kind: str
    duration_s: float = 0.0
    """From the trigger until the metadata was written."""

    @functools.cached_property
    def metadata(self) -> dict[str, Any]:
        """The metadata, parsed (only needed to restore from it)."""
        parsed: dict[str, Any] = json.loads(self.data)
        return parsed


@dataclass
class _Pending:
    checkpoint_id: int
    kind: str
    savepoint: Path | None
    remaining: set[int]
    operators: dict[str, dict[str, Any]] = field(default_factory=dict)
    enumerators: dict[str, Any] = field(default_factory=dict)
    shared_files: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)
    future: asyncio.Future[CompletedCheckpoint] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def _metadata_document(pending: _Pending, job_name: str) -> bytes:
    """The metadata JSON, splicing in the subtask states serialized at acknowledgement."""
    header = json.dumps(
        {
            "format_version": FORMAT_VERSION,
            "state_codec": CODEC_VERSION,
            "checkpoint_id": pending.checkpoint_id,
            "kind": pending.kind,
            "job_name": job_name,
            "timestamp_ms": int(time.time() * 1000),
            "enumerators": pending.enumerators,
            "shared_files": sorted(pending.shared_files),
        },
        separators=(",", ":"),
    )
    operators = []
    for uid, entry in pending.operators.items():
        head = json.dumps(
            {k: entry[k] for k in ("name", "parallelism", "max_parallelism")},
            separators=(",", ":"),
        )
        subtasks = ",".join(f'"{index}":{raw}' for index, raw in entry["subtasks"].items())
        operators.append(f'{json.dumps(uid)}:{head[:-1]},"subtasks":{{{subtasks}}}}}')
    return f'{header[:-1]},"operators":{{{",".join(operators)}}}}}'.encode()


class EnumeratorContext:
    """The SplitEnumeratorContext of one source: routes assignments into reader mailboxes."""

    def __init__(self, attempt: Attempt, readers: list[SourceTask], pool: BlockingPool) -> None:
        self._attempt = attempt
        self._readers = readers
        self._pool = pool
        self._registered: set[int] = set()

    @property
    def parallelism(self) -> int:
        """The number of readers."""
        return len(self._readers)

    def registered_readers(self) -> frozenset[int]:
        """Readers that registered so far."""
        return frozenset(self._registered)

    def register(self, subtask_index: int) -> None:
        """Mark a reader registered (internal)."""
        self._registered.add(subtask_index)

    def assign_splits(self, assignment: Mapping[int, Sequence[Any]], /) -> None:
        """Queue splits into the readers' mailboxes."""
        for subtask, splits in assignment.items():
            if splits:
                self._readers[subtask].post("splits", list(splits))

    def signal_no_more_splits(self, subtask_index: int, /) -> None:
        """Tell a reader no more splits will come."""
        self._readers[subtask_index].post("no_more_splits")

    def send_event_to_reader(self, subtask_index: int, event: Any, /) -> None:
        """Send a custom event to a reader."""
        self._readers[subtask_index].post("event", event)

    def call_periodically(
        self, fn: Callable[[], Awaitable[None]], interval: timedelta, /
    ) -> asyncio.Task[None]:
        """Run ``fn`` every ``interval``; an exception fails the job; cancel the task to stop."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval.total_seconds())
                await fn()

        return self._attempt.spawn(loop(), "periodic split discovery")

    def run_blocking(self, fn: Callable[..., R], /, *args: Any) -> Awaitable[R]:
        """Run a blocking call on the thread pool."""
        return self._pool.run(fn, *args)


class CheckpointCoordinator:
    """Triggers checkpoints, collects acknowledgements, writes metadata, then notifies completion."""

    def __init__(
        self,
        attempt: Attempt,
        storage: CheckpointStorage,
        next_id: int,
        timeout: timedelta,
        pool: BlockingPool,
        on_complete: Callable[[CompletedCheckpoint], None],
    ) -> None:
        self._attempt = attempt
        self._storage = storage
        self._next_id = next_id
        self._timeout = timeout.total_seconds()
        self._pool = pool
        self._on_complete = on_complete
        self.tasks: list[Task] = []
        self.enumerators: dict[str, tuple[Source[Any, Any, Any], SplitEnumerator[Any, Any]]] = {}
        self.pending: dict[int, _Pending] = {}
        self.last_completed_at = 0.0
        self.stop_checkpoint_id: int | None = None
        """The savepoint of a stop in progress: tasks suspend after its barrier."""

    @property
    def stopping(self) -> bool:
        """Whether a stop with savepoint is in progress: no other checkpoint may follow it."""
        return self.stop_checkpoint_id is not None

    def is_savepoint(self, checkpoint_id: int) -> bool:
        """Whether ``checkpoint_id`` is a savepoint (self-contained: no incremental state)."""
        pending = self.pending.get(checkpoint_id)
        return pending is not None and pending.kind == "savepoint"

    def checkpoint_dir(self, checkpoint_id: int) -> Path | None:
        """Where ``checkpoint_id``'s files go.

        The savepoint's directory, the checkpoint's own under the checkpoint directory, or
        ``None`` (no directory: kept in memory).
        """
        pending = self.pending.get(checkpoint_id)
        if pending is not None and pending.savepoint is not None:
            return pending.savepoint
        return self._storage.checkpoint_dir(checkpoint_id)

    def trigger(
        self, kind: str = "checkpoint", savepoint: Path | None = None, *, stop: bool = False
    ) -> asyncio.Future[CompletedCheckpoint]:
        """Start checkpoint ``kind`` (``checkpoint``, ``savepoint`` or ``final``); returns its completion.

        ``stop`` makes it the job's last one (a stop with savepoint): sources emit nothing after
        its barrier and no other checkpoint is triggered, so nothing past it is flushed or
        committed. Only the final checkpoint of a job whose input ended may still follow.
        """
        if self.stopping and kind != "final":
            raise CheckpointError(f"cannot take a {kind}: the job is stopping with a savepoint")
        checkpoint_id = self._next_id
        self._next_id += 1
        if stop:
            self.stop_checkpoint_id = checkpoint_id
        pending = _Pending(checkpoint_id, kind, savepoint, {id(t) for t in self.tasks})
        for uid, (source, enumerator) in self.enumerators.items():
            pending.enumerators[uid] = encode_blob(
                source.enumerator_state_serializer(), enumerator.snapshot_state(checkpoint_id)
            )
        self.pending[checkpoint_id] = pending
        for task in self.tasks:
            if task.finished:
                self._attempt.spawn(self._snapshot_finished(task, checkpoint_id), task.name)
            elif isinstance(task, SourceTask):
                task.post("trigger", checkpoint_id)
        if kind != "final":
            self._attempt.spawn(self._expire(pending), "checkpoint timeout")
        return pending.future

    async def _snapshot_finished(self, task: Task, checkpoint_id: int) -> None:
        try:
            states = await task.snapshot(checkpoint_id)
            self.acknowledge(checkpoint_id, task, states)
        except Exception as exc:
            failure = task.fail(exc)
            self.fail_checkpoint(checkpoint_id, failure)
            if failure is exc:
                raise
            raise failure from exc

    def fail_checkpoint(self, checkpoint_id: int, error: BaseException) -> None:
        """Abandon a pending checkpoint: whoever waits for it gets a :class:`CheckpointError`."""
        pending = self.pending.pop(checkpoint_id, None)
        if pending is None or pending.future.done():
            return
        failure = CheckpointError(
            f"checkpoint {checkpoint_id} failed: {type(error).__name__}: {error}"
        )
        failure.__cause__ = error
        pending.future.set_exception(failure)
        # Retrieved here, so an abandoned checkpoint nobody awaits logs no "never retrieved".
        pending.future.exception()

    def fail_all(self, error: BaseException) -> None:
        """The attempt failed: every pending checkpoint fails with it (nothing waits forever)."""
        for checkpoint_id in list(self.pending):
            self.fail_checkpoint(checkpoint_id, error)

    def task_finished(self, task: Task) -> None:
        """A task ended its input: it will see no more barriers, so snapshot it directly."""
        for pending in list(self.pending.values()):
            if id(task) in pending.remaining:
                self._attempt.spawn(self._snapshot_finished(task, pending.checkpoint_id), task.name)
        self._attempt.task_finished()

    def acknowledge(
        self, checkpoint_id: int, task: Task, states: dict[str, dict[str, Any]]
    ) -> None:
        """A task's state for ``checkpoint_id``; completes the checkpoint when it is the last."""
        pending = self.pending.get(checkpoint_id)
        if pending is None or id(task) not in pending.remaining:
            return  # expired, or already acknowledged
        pending.remaining.discard(id(task))
        for uid, state in states.items():
            # Serialize now: the operator goes on mutating its live state after the barrier.
            try:
                raw = f'"{base64.b64encode(encode_state(state)).decode()}"'
            except StateValueError as exc:
                raise CheckpointError(
                    f"checkpoint {checkpoint_id}: the state of operator {uid} in task "
                    f"'{task.name}' cannot be written: {exc}"
                ) from exc
            pending.shared_files.update(state.get("keyed_files", ()))
            entry = pending.operators.setdefault(
                uid,
                {
                    "name": task.vertex.name,
                    "parallelism": task.vertex.parallelism,
                    "max_parallelism": task.vertex.max_parallelism,
                    "subtasks": {},
                },
            )
            entry["subtasks"][str(task.subtask_index)] = raw
        if not pending.remaining:
            del self.pending[checkpoint_id]
            self._attempt.spawn(self._complete(pending), "checkpoint completion")

    async def _complete(self, pending: _Pending) -> None:
        try:
            await self._write_and_notify(pending)
        except asyncio.CancelledError:
            pending.future.cancel()
            raise
        except Exception as exc:
            # The checkpoint left ``self.pending`` when its last acknowledgement came, so
            # fail_all() no longer reaches it: whoever awaits it (the final checkpoint, a
            # savepoint) must hear of the failure here, or it waits forever.
            if not pending.future.done():
                pending.future.set_exception(exc)
            raise

    async def _write_and_notify(self, pending: _Pending) -> None:
        data = _metadata_document(pending, self._attempt.job_name)
        path = await self._pool.run(
            self._storage.write, pending.checkpoint_id, data, pending.savepoint
        )
        completed = CompletedCheckpoint(
            pending.checkpoint_id, data, path, pending.kind, time.monotonic() - pending.started
        )
        self.last_completed_at = time.monotonic()
        self._on_complete(completed)
        log.debug("checkpoint %d complete (%s)", pending.checkpoint_id, path)
        # Commit only after the metadata is durable; every task at once, in the background: a
        # slow commit (offsets, a sink's transaction) does not hold back the next checkpoint.
        notified = self._attempt.spawn(
            self._notify_complete(pending.checkpoint_id),
            f"checkpoint {pending.checkpoint_id} completion notifications",
        )
        if pending.kind != "checkpoint":
            # A savepoint or the final checkpoint: the job may stop right after, so its
            # commits are done before its caller goes on.
            await notified
        if not pending.future.done():
            pending.future.set_result(completed)

    async def _notify_complete(self, checkpoint_id: int) -> None:
        """Tell every task and enumerator, concurrently (each task keeps its own order)."""
        await asyncio.gather(
            *(task.notify_checkpoint_complete(checkpoint_id) for task in self.tasks),
            *(e.notify_checkpoint_complete(checkpoint_id) for _, e in self.enumerators.values()),
        )

    async def _expire(self, pending: _Pending) -> None:
        await asyncio.sleep(self._timeout)
        if self.pending.pop(pending.checkpoint_id, None) is not None:
            log.warning("checkpoint %d expired after %.1f s", pending.checkpoint_id, self._timeout)
            if pending.checkpoint_id == self.stop_checkpoint_id:
                # The stop failed: the job goes on running, as it would have without it.
                self.stop_checkpoint_id = None
                for task in self.tasks:
                    task.resume()
            if not pending.future.done():
                pending.future.set_exception(
                    TimeoutError(f"checkpoint {pending.checkpoint_id} expired")
                )
