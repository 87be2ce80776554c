"""StreamEnvironment: the entry point that builds a job and runs it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from headwater.core._config import CheckpointConfig, NoRestart, RestartStrategy
from headwater.core._datastream import DataStream
from headwater.core._errors import ConfigurationError, JobCancelledError
from headwater.core._graph import Edge, JobGraph, NodeKind, Transformation, build_job_graph
from headwater.core._reporters import MetricReporter
from headwater.core._settings import check_duration, check_int, check_type
from headwater.core._sink import DeliveryGuarantee, Sink
from headwater.core._source import Boundedness, Source
from headwater.core._state import StateBackend
from headwater.core._watermarks import WatermarkStrategy

if TYPE_CHECKING:
    from headwater.core._runtime._executor import JobClient, JobResult

__all__ = ["ExecutionConfig", "StreamEnvironment"]

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class ExecutionConfig:
    """Runtime knobs of the local executor.

    Args:
        batch_size: most records per batch sent between tasks.
        batch_linger: the longest a source holds a partial batch before sending it.
        channel_capacity: batches buffered per channel before the sender waits (backpressure).
        blocking_pool_size: threads for blocking client calls (``run_blocking``).
        progress: show records, rates, backpressure and checkpoints per operator on stderr while
            the job runs (live on a terminal, plain lines elsewhere) and a summary table when it
            ends (default: on when the job runs under ``headwater run``).
        gc_threshold: the young-generation threshold of Python's cyclic garbage collector while
            jobs run in the process (CPython's default is 700); ``None`` leaves the collector alone.
            Records die by reference counting; fewer collection passes save CPU per record.
        gc_freeze: move the objects alive when the first job starts (imports, set-up) out of the
            collector's sight while jobs run, so full collections do not scan them again and again.
    """

    batch_size: int = 1000
    batch_linger: timedelta = timedelta(milliseconds=5)
    channel_capacity: int = 8
    blocking_pool_size: int = field(default_factory=lambda: min(32, (os.cpu_count() or 1) * 4))
    progress: bool = field(
        default_factory=lambda: os.environ.get("HEADWATER_PROGRESS") in ("1", "plain")
    )
    gc_threshold: int | None = 50_000
    gc_freeze: bool = True

    def __post_init__(self) -> None:
        owner = "ExecutionConfig"
        for name in ("batch_size", "channel_capacity", "blocking_pool_size"):
            check_int(owner, name, getattr(self, name), minimum=1)
        check_int(owner, "gc_threshold", self.gc_threshold, minimum=1, optional=True)
        linger = check_duration(owner, "batch_linger", self.batch_linger)
        object.__setattr__(self, "batch_linger", linger)  # a duration string, normalized
        check_type(owner, "progress", self.progress, bool)
        check_type(owner, "gc_freeze", self.gc_freeze, bool)


CREATED: list[StreamEnvironment] = []
"""Environments built while ``headwater run module:function`` calls the function (only then:
it clears the list after), to report one built but not run."""

_collect_created = False


class StreamEnvironment:
    """Builds a streaming job with the DataStream API and runs it.

    Example::

        env = StreamEnvironment(parallelism=2)
        env.from_collection(range(10)).map(lambda x: x * 2).print()
        env.execute("doubles")
    """

    def __init__(
        self,
        *,
        parallelism: int = 1,
        max_parallelism: int = 128,
        checkpointing: CheckpointConfig | None = None,
        restart_strategy: RestartStrategy | None = None,
        execution: ExecutionConfig | None = None,
        metric_reporters: Sequence[MetricReporter] = (),
        state_backend: StateBackend | None = None,
    ) -> None:
        owner = "StreamEnvironment"
        check_int(owner, "parallelism", parallelism, minimum=1)
        check_int(owner, "max_parallelism", max_parallelism, minimum=1, maximum=32768)
        if parallelism > max_parallelism:
            raise ConfigurationError(
                f"{owner}: parallelism ({parallelism}) exceeds max_parallelism ({max_parallelism})"
            )
        check_type(owner, "checkpointing", checkpointing, CheckpointConfig, optional=True)
        check_type(owner, "restart_strategy", restart_strategy, RestartStrategy, optional=True)
        check_type(owner, "execution", execution, ExecutionConfig, optional=True)
        check_type(owner, "state_backend", state_backend, StateBackend, optional=True)
        for reporter in metric_reporters:
            check_type(owner, "metric_reporters[]", reporter, MetricReporter)
        self.parallelism = parallelism
        self.max_parallelism = max_parallelism
        self.checkpointing = checkpointing or CheckpointConfig()
        self.restart_strategy = restart_strategy or NoRestart()
        self.execution = execution or ExecutionConfig()
        self.metric_reporters = list(metric_reporters)
        self.state_backend = state_backend or StateBackend.memory()
        self._transformations: list[Transformation] = []
        self._sinks: list[Transformation] = []
        if _collect_created:
            CREATED.append(self)

    # -- sources ---------------------------------------------------------------------------
    def from_source(
        self,
        source: Source[T, Any, Any],
        watermark_strategy: WatermarkStrategy[T] | None = None,
        name: str | None = None,
    ) -> DataStream[T]:
        """A stream read from a FLIP-27 ``source``."""
        if not isinstance(source, Source):
            raise ConfigurationError(
                f"from_source(): expected a Source, got {type(source).__name__}"
            )
        t = self._new_transformation(
            NodeKind.SOURCE,
            name or f"Source: {type(source).__name__}",
            (source, watermark_strategy or WatermarkStrategy.no_watermarks()),
            [],
        )
        return DataStream(self, [Edge(t)])

    def from_collection(
        self, collection: Sequence[T] | Iterable[T], name: str = "Collection"
    ) -> DataStream[T]:
        """A bounded stream of the given records (materialized once; not parallel)."""
        from headwater.core._builtins import CollectionSource

        stream = self.from_source(CollectionSource(list(collection)), name=name)
        stream._single("from_collection").fixed_parallelism = True
        return stream

    def from_iterable(self, iterable: Iterable[T], name: str = "Iterable") -> DataStream[T]:
        """A bounded stream of a re-iterable (after a restore it is iterated again and the read part skipped)."""
        from headwater.core._builtins import IterableSource

        stream = self.from_source(IterableSource(iterable), name=name)
        stream._single("from_iterable").fixed_parallelism = True
        return stream

    # -- execution -------------------------------------------------------------------------
    def build(self, job_name: str = "headwater job") -> JobGraph:
        """Validate the job and translate it into tasks (done by ``execute`` too)."""
        if not self._sinks:
            raise ConfigurationError("the job has no sink; add one with sink_to() or print()")
        graph = build_job_graph(job_name, self._sinks, self.parallelism, self.max_parallelism)
        self._check_guarantees()
        return graph

    def execute(self, job_name: str = "headwater job") -> JobResult:
        """Run the job until it ends (bounded) or fails; returns its result.

        Ctrl-C (SIGINT) or SIGTERM stop it gracefully: with a savepoint into the checkpoint
        storage when there is one, then :class:`JobInterruptedError` says where it went; a second
        signal ends the process at once. Must not be called from a running event loop; use
        :meth:`execute_async` there (which leaves signals to its caller).
        """
        graph = self.build(job_name)
        from headwater.core._runtime._executor import LocalExecutor
        from headwater.core._runtime._interrupt import GracefulStop

        async def run() -> JobResult:
            client = await LocalExecutor(self, graph).start()
            stop = GracefulStop(client, self.checkpointing.storage)
            with stop.installed():
                try:
                    result = await client.wait()
                except JobCancelledError:
                    await stop.finish()  # raises JobInterruptedError if a signal cancelled it
                    raise
                await stop.finish()
            return result

        return asyncio.run(run())

    async def execute_async(self, job_name: str = "headwater job") -> JobClient:
        """Start the job on the running event loop and return a client to watch and control it."""
        graph = self.build(job_name)
        from headwater.core._runtime._executor import LocalExecutor

        return await LocalExecutor(self, graph).start()

    # -- internals -------------------------------------------------------------------------
    def _new_transformation(
        self, kind: NodeKind, name: str, payload: Any, inputs: list[Edge]
    ) -> Transformation:
        t = Transformation(
            id=len(self._transformations),
            kind=kind,
            name=name,
            payload=payload,
            inputs=list(inputs),
        )
        self._transformations.append(t)
        return t

    def _check_guarantees(self) -> None:
        for t in self._sinks:
            t.payload.check_checkpointing(self.checkpointing)
        for t in self._transformations:
            if t.kind is NodeKind.SOURCE:
                t.payload[0].check_checkpointing(self.checkpointing)
        unbounded = [
            t.name
            for t in self._transformations
            if t.kind is NodeKind.SOURCE and t.payload[0].boundedness is not Boundedness.BOUNDED
        ]
        if not unbounded or self.checkpointing.interval is not None:
            return
        for t in self._sinks:
            sink: Sink[Any] = t.payload
            if sink.delivery_guarantee is not DeliveryGuarantee.NONE:
                raise ConfigurationError(
                    f"sink '{t.name}' is configured for {sink.delivery_guarantee.value}, which needs "
                    f"checkpoints with an unbounded source ({', '.join(unbounded)}): set "
                    f"checkpointing=CheckpointConfig(interval=...) or use DeliveryGuarantee.NONE"
                )
