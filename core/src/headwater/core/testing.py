"""Test doubles that ship with core: file sinks whose output can be compared record by record.

:class:`FileTwoPhaseSink` is exactly-once: each checkpoint's records go to a hidden in-progress
file, and the committer renames it into place (idempotently). :class:`FileAppendSink` is
at-least-once: it appends and fsyncs at every checkpoint. :func:`read_records` reads what either
made visible. Records are written as JSON lines, so they must be JSON-compatible.

:func:`kill_repeatedly` runs a job's process, SIGKILLs it at random moments and lets a last run
finish: the harness of every test that proves a guarantee by killing the job.
:func:`kill_after_checkpoints` does the same, but each kill waits for new completed checkpoints,
so kills land after the job made progress however long its process takes to start.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from headwater.core._builtins import CollectionSource, CollectSink, RangeSplit
from headwater.core._metrics import MetricRegistry
from headwater.core._runtime._context import BlockingPool, OperatorContext
from headwater.core._runtime._executor import JobClient
from headwater.core._runtime._storage import list_checkpoints
from headwater.core._serialization import JsonSerializer, VersionedSerializer
from headwater.core._sink import (
    CommitRequest,
    Committer,
    CommittingSinkWriter,
    DeliveryGuarantee,
    Sink,
    SinkWriter,
    TwoPhaseCommittingSink,
    WriterInitContext,
)
from headwater.core._source import (
    InputStatus,
    ReaderOutput,
    SourceReader,
    SourceReaderContext,
    SourceSplit,
)
from typing_extensions import override

__all__ = [
    "EmitWatermark",
    "FileAppendSink",
    "FileTwoPhaseSink",
    "GatedSink",
    "KillReport",
    "ScriptedSource",
    "SlowCommitSink",
    "ThrottledReader",
    "Timestamped",
    "kill_after_checkpoints",
    "kill_repeatedly",
    "operator_context",
    "read_records",
    "run_cli",
    "wait_for_metrics",
]

_IN_PROGRESS = ".in-progress"


@dataclass(frozen=True, slots=True)
class KillReport:
    """What :func:`kill_repeatedly` did: the kills that landed, and how the last run ended."""

    kills: int
    returncode: int
    stderr: str

    def check(self, kills: int) -> None:
        """Raise ``AssertionError`` unless all ``kills`` landed and the last run exited 0."""
        if self.kills != kills:
            raise AssertionError(
                f"the job finished after {self.kills} of {kills} kills: slow it down, or the "
                f"test proves less than it says"
            )
        if self.returncode != 0:
            raise AssertionError(f"the last run exited {self.returncode}: {self.stderr[-3000:]}")


def kill_repeatedly(
    command: Sequence[str],
    *,
    kills: int,
    uptime: tuple[float, float] = (0.5, 1.5),
    restart_command: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    seed: int | None = None,
    started: Callable[[float], bool] | None = None,
    start_timeout: float = 120.0,
) -> KillReport:
    """Run ``command``, SIGKILL it ``kills`` times at random moments, then let a last run finish.

    Each killed run lives a random time in ``uptime`` (seconds, from the start of its process, or
    with ``started`` from the moment ``started(run_start_wall_clock)`` first returns true: e.g.
    the run's first checkpoint exists, so that kills land in a working job however long the
    process takes to import and start on a loaded machine). A run that has not started within
    ``start_timeout`` seconds, or ends before, is not killed: it ends the loop as the last run.
    Runs after a kill use ``restart_command`` (default: ``command``), e.g. to restore with another
    parallelism. A run that ends on its own before its kill ends the loop early: the report's
    ``kills`` then says how many landed (a test asserts it, so a job too fast for its kills fails
    loudly instead of proving nothing). The last run gets ``timeout`` seconds and is killed after.
    """
    rng = random.Random(seed)

    def still_running_after_uptime(process: subprocess.Popen[bytes]) -> bool:
        since = time.time()
        if started is not None and not _wait_started(process, started, since, start_timeout):
            return False
        try:
            process.wait(rng.uniform(*uptime))
        except subprocess.TimeoutExpired:
            return True
        return False

    return _kill_loop(command, kills, still_running_after_uptime, restart_command, env, timeout)


def kill_after_checkpoints(
    command: Sequence[str],
    checkpoint_dir: str | Path,
    *,
    kills: int,
    checkpoints: tuple[int, int] = (1, 4),
    delay: tuple[float, float] = (0.0, 0.3),
    restart_command: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    seed: int | None = None,
) -> KillReport:
    """Run ``command``, SIGKILL it ``kills`` times after new checkpoints, then let a last run finish.

    Kills follow the job's progress, not the clock: each run is killed once ``checkpoint_dir``
    holds a random number in ``checkpoints`` of completed checkpoints newer than the newest one
    when the run started, plus a random ``delay`` (seconds), so some kills fall between a
    checkpoint's completion and what the job does after it (commits, acknowledgements). On a
    loaded machine a job process can take seconds to start; a clock-based kill
    (:func:`kill_repeatedly`) may then land before the first checkpoint and prove nothing.

    ``restart_command``, ``env``, ``seed`` and the report are as for :func:`kill_repeatedly`: a
    run that ends on its own before its kill ends the loop early. A run that completes no new
    checkpoint within ``timeout`` seconds is killed and raises ``AssertionError`` with its
    stderr; the last run gets ``timeout`` seconds and is killed after.
    """
    rng = random.Random(seed)
    directory = Path(checkpoint_dir)

    def still_running_after_checkpoints(process: subprocess.Popen[bytes]) -> bool:
        target = _newest_checkpoint(directory) + rng.randint(*checkpoints)
        deadline = time.monotonic() + timeout
        while _newest_checkpoint(directory) < target:
            if process.poll() is not None:
                return False
            if time.monotonic() > deadline:
                process.kill()
                _, stderr = process.communicate()
                raise AssertionError(
                    f"no checkpoint {target} in {directory} within {timeout} s: "
                    f"{stderr.decode(errors='replace')[-3000:]}"
                )
            time.sleep(0.02)
        time.sleep(rng.uniform(*delay))
        return process.poll() is None

    return _kill_loop(
        command, kills, still_running_after_checkpoints, restart_command, env, timeout
    )


def _kill_loop(
    command: Sequence[str],
    kills: int,
    wait_for_kill: Callable[[subprocess.Popen[bytes]], bool],
    restart_command: Sequence[str] | None,
    env: Mapping[str, str] | None,
    timeout: float,
) -> KillReport:
    """Start runs, SIGKILLing each once ``wait_for_kill`` says so, until ``kills`` or a run ends.

    ``wait_for_kill(process)`` returns True when the run is to be killed now, False when it ended.
    """
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    first = list(command)
    restarted = list(restart_command or command)
    killed = 0
    while True:
        argv = restarted if killed else first
        process = subprocess.Popen(
            argv, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        if killed < kills and wait_for_kill(process):
            process.send_signal(signal.SIGKILL)
            process.wait()
            if process.stderr is not None:
                process.stderr.close()
            killed += 1
            continue
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        return KillReport(killed, process.returncode, stderr.decode(errors="replace"))


def _wait_started(
    process: subprocess.Popen[bytes], started: Callable[[float], bool], since: float, timeout: float
) -> bool:
    """Poll ``started(since)`` until true; false if the process ended first or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if started(since):
            return True
        time.sleep(0.05)
    return False


def _newest_checkpoint(directory: Path) -> int:
    """The id of the newest completed checkpoint in ``directory`` (0 if none)."""
    found = list_checkpoints(directory)
    return found[-1][0] if found else 0


def read_records(directory: str | Path) -> list[Any]:
    """Every record in the visible files of ``directory`` (committed parts and appended files)."""
    records: list[Any] = []
    for path in sorted(Path(directory).glob("*.jsonl")):
        with open(path, encoding="utf-8") as f:
            records.extend(json.loads(line) for line in f if line.strip())
    return records


def _append(path: Path, lines: str, sync: bool) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(lines)
        if sync:
            f.flush()
            os.fsync(f.fileno())


def _encode(records: Sequence[Any]) -> str:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)


class _TwoPhaseWriter(CommittingSinkWriter[Any, dict[str, str]]):
    def __init__(self, directory: Path, context: WriterInitContext) -> None:
        self._directory = directory
        self._context = context
        self._run = f"{context.subtask_index}-{uuid.uuid4().hex[:12]}"
        self._sequence = 0
        self._pending: list[str] = []
        self._current: Path | None = None

    async def write_batch(self, records: Sequence[Any]) -> None:
        self._pending.append(_encode(records))

    async def flush(self, end_of_input: bool) -> None:
        if not self._pending:
            return
        if self._current is None:
            self._sequence += 1
            self._current = self._directory / _IN_PROGRESS / f"{self._run}-{self._sequence}.tmp"
        lines, self._pending = "".join(self._pending), []
        await self._context.run_blocking(_append, self._current, lines, True)

    async def prepare_commit(self) -> list[dict[str, str]]:
        await self.flush(False)
        if self._current is None:
            return []
        staged, self._current = self._current, None
        final = self._directory / f"part-{self._run}-{self._sequence}.jsonl"
        return [{"staged": str(staged), "final": str(final)}]


class _RenameCommitter(Committer[dict[str, str]]):
    def __init__(self, context: WriterInitContext) -> None:
        self._context = context

    async def commit(self, requests: Sequence[CommitRequest[dict[str, str]]]) -> None:
        for request in requests:
            staged = Path(request.committable["staged"])
            final = Path(request.committable["final"])
            if staged.exists():
                await self._context.run_blocking(os.replace, staged, final)
            elif final.exists():
                request.signal_already_committed()
            else:
                request.signal_failed_with_known_reason(
                    FileNotFoundError(f"neither {staged} nor {final} exists")
                )


class FileTwoPhaseSink(TwoPhaseCommittingSink[Any, dict[str, str]]):
    """Exactly-once JSON-lines files in ``directory``: a part file per subtask and checkpoint."""

    def __init__(self, directory: str | Path) -> None:
        self._directory = Path(directory)

    @override
    def create_writer(
        self, context: WriterInitContext
    ) -> CommittingSinkWriter[Any, dict[str, str]]:
        (self._directory / _IN_PROGRESS).mkdir(parents=True, exist_ok=True)
        return _TwoPhaseWriter(self._directory, context)

    @override
    def create_committer(self, context: WriterInitContext) -> Committer[dict[str, str]]:
        return _RenameCommitter(context)

    @override
    def committable_serializer(self) -> VersionedSerializer[dict[str, str]]:
        return JsonSerializer(version=1, to_json=dict, from_json=lambda _v, d: dict(d))


class _AppendWriter(SinkWriter[Any]):
    def __init__(self, path: Path, context: WriterInitContext) -> None:
        self._path = path
        self._context = context
        self._pending: list[str] = []

    async def write_batch(self, records: Sequence[Any]) -> None:
        self._pending.append(_encode(records))

    async def flush(self, end_of_input: bool) -> None:
        lines, self._pending = "".join(self._pending), []
        if lines:
            await self._context.run_blocking(_append, self._path, lines, True)


class FileAppendSink(Sink[Any]):
    """At-least-once JSON lines appended to ``directory/part-<subtask>.jsonl``, synced per checkpoint."""

    def __init__(self, directory: str | Path) -> None:
        self._directory = Path(directory)

    @override
    @property
    def delivery_guarantee(self) -> DeliveryGuarantee:
        return DeliveryGuarantee.AT_LEAST_ONCE

    @override
    def create_writer(self, context: WriterInitContext) -> SinkWriter[Any]:
        self._directory.mkdir(parents=True, exist_ok=True)
        return _AppendWriter(self._directory / f"part-{context.subtask_index}.jsonl", context)


@dataclass(frozen=True)
class EmitWatermark:
    """A step of a :class:`ScriptedSource`: emit the watermark ``timestamp``."""

    timestamp: int


@dataclass(frozen=True)
class Timestamped:
    """A step of a :class:`ScriptedSource`: emit ``value`` with the event time ``timestamp``."""

    value: Any
    timestamp: int


class _ScriptedReader(SourceReader[Any, RangeSplit]):
    def __init__(self, steps: Sequence[Any], context: SourceReaderContext) -> None:
        self._steps = steps
        self._context = context
        self._split: RangeSplit | None = None
        self._done = False
        self._available: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._available.set_result(None)

    async def start(self) -> None:
        self._context.send_split_request()

    def add_splits(self, splits: Sequence[RangeSplit]) -> None:
        self._split = splits[0]

    def notify_no_more_splits(self) -> None:
        self._done = True

    def is_available(self) -> asyncio.Future[None]:
        return self._available

    def poll_next(self, output: ReaderOutput[Any]) -> InputStatus:
        split = self._split
        if split is None:
            return InputStatus.END_OF_INPUT if self._done else InputStatus.NOTHING_AVAILABLE
        position = split.position
        while position < split.end:
            step = self._steps[position]
            position += 1
            if isinstance(step, EmitWatermark):
                output.emit_watermark(step.timestamp)
                self._split = replace(split, position=position)
                return InputStatus.NOTHING_AVAILABLE  # flushes the records before the watermark
            if isinstance(step, Timestamped):
                output.collect(step.value, step.timestamp)
            else:
                output.collect(step)
        self._split = None
        self._context.send_split_request()
        return InputStatus.NOTHING_AVAILABLE

    def snapshot_state(self, checkpoint_id: int) -> list[RangeSplit]:
        return [self._split] if self._split is not None else []


class ScriptedSource(CollectionSource[Any]):
    """A bounded, single-split source that plays ``steps`` in order, for exact event-time tests.

    Steps are plain values, :class:`Timestamped` values and :class:`EmitWatermark` markers.
    """

    def __init__(self, steps: Sequence[Any]) -> None:
        super().__init__(list(steps))
        self._steps = list(steps)

    @override
    def create_reader(self, context: SourceReaderContext) -> SourceReader[Any, RangeSplit]:
        return _ScriptedReader(self._steps, context)


def operator_context(
    *,
    subtask_index: int = 0,
    parallelism: int = 1,
    max_parallelism: int = 128,
    attempt: int = 0,
    restored_checkpoint_id: int | None = None,
    operator_name: str = "test",
    operator_uid: str = "test",
    job_name: str = "test",
    blocking_pool_size: int = 4,
) -> OperatorContext:
    """A runtime context for unit tests of readers, writers and functions outside a job.

    It is a SourceReaderContext, a WriterInitContext and a RuntimeContext at once; its metrics live
    in a fresh registry (``context.metric_group``); ``run_blocking`` uses a small thread pool.
    """
    return OperatorContext(
        operator_name=operator_name,
        operator_uid=operator_uid,
        job_name=job_name,
        subtask_index=subtask_index,
        parallelism=parallelism,
        max_parallelism=max_parallelism,
        metric_group=MetricRegistry().group(
            {"job": job_name, "operator": operator_name, "subtask": str(subtask_index)}
        ),
        pool=BlockingPool(blocking_pool_size),
        attempt=attempt,
        restored_checkpoint_id=restored_checkpoint_id,
        restored=None,
    )


def run_cli(
    *args: str, cwd: str | Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run the ``headwater`` command (``python -m headwater.core._cli``) in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "headwater.core._cli", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


class SlowCommitSink(CollectSink[Any]):
    """A :class:`CollectSink` whose every commit takes ``delay`` seconds.

    A job keeps running that long after a checkpoint's barrier, so tests can see what a job does
    between a (stop's) savepoint and its completion.
    """

    def __init__(self, delay: float = 0.2) -> None:
        super().__init__()
        self._delay = delay

    @override
    def create_committer(self, context: WriterInitContext) -> Committer[str]:
        inner = super().create_committer(context)
        delay = self._delay

        class _Slow(Committer[str]):
            async def commit(self, requests: Sequence[CommitRequest[str]]) -> None:
                await asyncio.sleep(delay)
                await inner.commit(requests)

        return _Slow()


class GatedSink(CollectSink[Any]):
    """A :class:`CollectSink` whose writers take no record until :attr:`gate` is set.

    The job backs up behind it, so tests can watch a source fall behind (lag metrics) and catch
    up once the gate opens. Create it inside the running event loop's thread.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        """Set it to let records through."""

    @override
    def create_writer(self, context: WriterInitContext) -> CommittingSinkWriter[Any, str]:
        return _GatedWriter(super().create_writer(context), self.gate)


class _GatedWriter(CommittingSinkWriter[Any, str]):
    def __init__(self, inner: CommittingSinkWriter[Any, str], gate: asyncio.Event) -> None:
        self._inner = inner
        self._gate = gate

    async def write_batch(self, records: Sequence[Any]) -> None:
        await self._gate.wait()
        await self._inner.write_batch(records)

    async def flush(self, end_of_input: bool) -> None:
        await self._inner.flush(end_of_input)

    def snapshot_state(self, checkpoint_id: int) -> list[Any]:
        return self._inner.snapshot_state(checkpoint_id)

    async def prepare_commit(self) -> list[str]:
        return await self._inner.prepare_commit()

    async def close(self) -> None:
        await self._inner.close()


async def wait_for_metrics(
    client: JobClient,
    operator: str,
    condition: Callable[[Mapping[str, Any]], bool],
    *,
    timeout: float = 60.0,
) -> Mapping[str, Any]:
    """Poll a running job's metrics of ``operator`` until ``condition`` holds; return them.

    Raises:
        AssertionError: ``condition`` did not hold within ``timeout`` seconds (the last metrics
            are in the message).
    """
    metrics: Mapping[str, Any] = {}
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        metrics = client.metrics().get(operator, {})
        if condition(metrics):
            return metrics
        await asyncio.sleep(0.05)
    raise AssertionError(f"metrics of {operator!r} never met the condition: {dict(metrics)}")


T = TypeVar("T")
SplitT = TypeVar("SplitT", bound=SourceSplit)


class _CountingOutput:
    """A ReaderOutput counting what passes through it and through its split outputs (``total``).

    A reader base emits through per-split outputs it creates once per split and keeps, so they
    count into the total they were created with.
    """

    def __init__(self, output: ReaderOutput[Any], total: list[int] | None = None) -> None:
        self.output = output
        self.total = total if total is not None else [0]

    def collect(self, record: Any, timestamp: int | None = None, /) -> None:
        self.total[0] += 1
        self.output.collect(record, timestamp)

    def collect_batch(
        self, records: Sequence[Any], timestamps: Sequence[int | None] | None = None, /
    ) -> None:
        self.total[0] += len(records)
        self.output.collect_batch(records, timestamps)

    def split_output(self, split_id: str, /) -> _CountingOutput:
        return _CountingOutput(self.output.split_output(split_id), self.total)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.output, name)


class ThrottledReader(SourceReader[T, SplitT], Generic[T, SplitT]):
    """Delegates to ``reader`` but emits at most ``rate`` records per second (tests only).

    For tests that must stop or kill a job in the middle of its input: the pace is kept without
    blocking the event loop (``poll_next`` answers ``NOTHING_AVAILABLE`` and ``is_available``
    completes when the next record is due). Records are counted through the reader's per-split
    outputs too. Use it from a source's ``create_reader``::

        class SlowSource(KafkaSource[bytes]):
            def create_reader(self, context):
                return ThrottledReader(super().create_reader(context), rate=200)
    """

    def __init__(self, reader: SourceReader[T, SplitT], rate: float) -> None:
        self.reader = reader
        self.rate = rate
        self.started = time.monotonic()
        self._counting: _CountingOutput | None = None

    @property
    def emitted(self) -> int:
        """Records emitted so far."""
        return 0 if self._counting is None else self._counting.total[0]

    def _wait(self) -> float:
        return (self.emitted / self.rate) - (time.monotonic() - self.started)

    async def start(self) -> None:
        """Start the pace and the reader."""
        self.started = time.monotonic()
        await self.reader.start()

    def poll_next(self, output: ReaderOutput[T]) -> InputStatus:
        """The reader's next records, unless they are not due yet."""
        if self._wait() > 0:
            return InputStatus.NOTHING_AVAILABLE
        if self._counting is None:  # one for the reader's life: the reader keeps split outputs
            self._counting = _CountingOutput(output)
        return self.reader.poll_next(cast("ReaderOutput[T]", self._counting))

    def is_available(self) -> asyncio.Future[None]:
        """The reader's availability, or a future completing when the next record is due."""
        wait = self._wait()
        if wait <= 0:
            return self.reader.is_available()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        loop.call_later(wait, _set_if_pending, future)
        return future

    def add_splits(self, splits: Sequence[SplitT]) -> None:
        """Delegated."""
        self.reader.add_splits(splits)

    def notify_no_more_splits(self) -> None:
        """Delegated."""
        self.reader.notify_no_more_splits()

    def snapshot_state(self, checkpoint_id: int) -> list[SplitT]:
        """Delegated."""
        return self.reader.snapshot_state(checkpoint_id)

    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        """Delegated."""
        await self.reader.notify_checkpoint_complete(checkpoint_id)

    def handle_source_event(self, event: Any) -> None:
        """Delegated."""
        self.reader.handle_source_event(event)

    async def close(self) -> None:
        """Delegated."""
        await self.reader.close()


def _set_if_pending(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
