"""The DataStream API: a fluent, typed builder of the logical job graph."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from headwater.core._aggregations import Avg, Count, Field, Max, Min, Sum
from headwater.core._dead_letters import DEAD_LETTER_TAG
from headwater.core._errors import ConfigurationError
from headwater.core._functions import (
    BroadcastProcessFunction,
    KeyedProcessFunction,
    OutputTag,
    ProcessFunction,
)
from headwater.core._graph import Edge, NodeKind, Partitioning, Transformation
from headwater.core._sink import Sink
from headwater.core._state import AggregateFunction
from headwater.core._windows import (
    ProcessWindowFunction,
    Trigger,
    WindowAssigner,
    WindowResult,
    WindowSpec,
)

if TYPE_CHECKING:
    from headwater.core._environment import StreamEnvironment

__all__ = [
    "BroadcastConnectedStream",
    "DataStream",
    "DataStreamSink",
    "KeyedStream",
    "WindowedStream",
]

T = TypeVar("T")
"""The type of the stream's records."""
R = TypeVar("R")
K = TypeVar("K")
B = TypeVar("B")


class DataStream(Generic[T]):
    """A stream of records of type ``T``; every method returns a new stream (the graph grows)."""

    def __init__(self, env: StreamEnvironment, edges: list[Edge]) -> None:
        self._env = env
        self._edges = edges

    # -- operators -------------------------------------------------------------------------
    def map(self, fn: Callable[[T], R], *, name: str = "Map") -> DataStream[R]:
        """Apply ``fn`` to every record."""
        return self._add(NodeKind.MAP, name, fn)

    def filter(self, predicate: Callable[[T], Any], *, name: str = "Filter") -> DataStream[T]:
        """Keep the records for which ``predicate`` is true."""
        return self._add(NodeKind.FILTER, name, predicate)

    def flat_map(self, fn: Callable[[T], Iterable[R]], *, name: str = "FlatMap") -> DataStream[R]:
        """Replace every record by the records ``fn`` returns for it (zero or more)."""
        return self._add(NodeKind.FLAT_MAP, name, fn)

    def process(self, fn: ProcessFunction[T, R], *, name: str = "Process") -> DataStream[R]:
        """Apply a :class:`ProcessFunction` (any number of outputs, operator state)."""
        if not isinstance(fn, ProcessFunction):
            raise ConfigurationError(
                f"process(): expected a ProcessFunction, got {type(fn).__name__}"
            )
        return self._add(NodeKind.PROCESS, name, fn)

    def union(self, *others: DataStream[T]) -> DataStream[T]:
        """Merge this stream with ``others`` (same record type); no order across inputs."""
        edges = list(self._edges)
        for other in others:
            if other._env is not self._env:
                raise ConfigurationError("union(): streams belong to different environments")
            edges.extend(other._edges)
        return DataStream(self._env, edges)

    # -- partitioning ----------------------------------------------------------------------
    def forward(self) -> DataStream[T]:
        """Send each subtask's records to the same subtask downstream (equal parallelism)."""
        return self._partition(Partitioning.FORWARD)

    def rebalance(self) -> DataStream[T]:
        """Spread records round-robin (by batch) over the downstream subtasks."""
        return self._partition(Partitioning.REBALANCE)

    def shuffle(self) -> DataStream[T]:
        """Send each record to a random downstream subtask."""
        return self._partition(Partitioning.SHUFFLE)

    def broadcast(self) -> DataStream[T]:
        """Send every record to every downstream subtask."""
        return self._partition(Partitioning.BROADCAST)

    def connect(self, broadcast: DataStream[B]) -> BroadcastConnectedStream[T, B]:
        """Join this stream with a stream every subtask sees whole (rules, configuration).

        Finish with :meth:`BroadcastConnectedStream.process` and a
        :class:`~headwater.core.BroadcastProcessFunction`.
        """
        if broadcast._env is not self._env:
            raise ConfigurationError("connect(): streams belong to different environments")
        return BroadcastConnectedStream(self, broadcast)

    def partition_custom(
        self, partitioner: Callable[[K, int], int], key_selector: Callable[[T], K]
    ) -> DataStream[T]:
        """Send each record to ``partitioner(key_selector(record), num_partitions)``."""
        return DataStream(
            self._env,
            [
                replace(
                    e,
                    partitioning=Partitioning.CUSTOM,
                    key_selector=key_selector,
                    partitioner=partitioner,
                )
                for e in self._edges
            ],
        )

    def key_by(self, key_selector: Callable[[T], K]) -> KeyedStream[T, K]:
        """Partition by key: all records with equal keys go to the same subtask (by key group)."""
        return KeyedStream(
            self._env,
            [
                replace(e, partitioning=Partitioning.KEY_GROUPS, key_selector=key_selector)
                for e in self._edges
            ],
            key_selector,
        )

    # -- per-operator settings ---------------------------------------------------------------
    def set_parallelism(self, parallelism: int) -> DataStream[T]:
        """Set the parallelism of the operator that produces this stream."""
        t = self._single("set_parallelism")
        if parallelism < 1:
            raise ConfigurationError(
                f"operator '{t.name}': parallelism must be >= 1, got {parallelism}"
            )
        if t.fixed_parallelism and parallelism != 1:
            raise ConfigurationError(f"operator '{t.name}' cannot run in parallel")
        t.parallelism = parallelism
        return self

    def set_max_parallelism(self, max_parallelism: int) -> DataStream[T]:
        """Set the number of key groups of the operator that produces this stream."""
        t = self._single("set_max_parallelism")
        if max_parallelism < 1:
            raise ConfigurationError(f"operator '{t.name}': max_parallelism must be >= 1")
        t.max_parallelism = max_parallelism
        return self

    def name(self, name: str) -> DataStream[T]:
        """Rename the operator that produces this stream."""
        self._single("name").name = name
        return self

    def uid(self, uid: str) -> DataStream[T]:
        """Tie the operator's state to ``uid`` across versions of the job (set it on stateful operators)."""
        t = self._single("uid")
        for other in self._env._transformations:
            if other is not t and other.uid == uid:
                raise ConfigurationError(f"uid '{uid}' is used by two operators")
        t.uid = uid
        return self

    def get_side_output(self, tag: OutputTag[R]) -> DataStream[R]:
        """The records the operator producing this stream emitted to the side output ``tag``."""
        return DataStream(self._env, [replace(e, tag=tag.name) for e in self._edges])

    def dead_letters(self) -> DataStream[Any]:
        """The records this source could not read, as a stream (sink it to any connector).

        A connector reports a bad record here when its error policy says so (connector-base's
        ``DeadLetterOnError()`` without a collector: a ``DeadLetter`` with the raw payload, the
        error and the position). The letters are checkpointed like any other output: with a
        transactional sink, a restore neither duplicates nor loses one. Only a source's stream
        has dead letters.
        """
        source = self._single("dead_letters")
        if source.kind is not NodeKind.SOURCE or any(e.tag is not None for e in self._edges):
            raise ConfigurationError(
                f"dead_letters(): only a source's stream has dead letters, not {source.name!r}'s"
            )
        return DataStream(self._env, [replace(e, tag=DEAD_LETTER_TAG) for e in self._edges])

    # -- sinks -----------------------------------------------------------------------------
    def sink_to(self, sink: Sink[T], *, name: str | None = None) -> DataStreamSink:
        """Write the stream to ``sink``."""
        if not isinstance(sink, Sink):
            raise ConfigurationError(f"sink_to(): expected a Sink, got {type(sink).__name__}")
        t = self._env._new_transformation(
            NodeKind.SINK, name or f"Sink: {type(sink).__name__}", sink, self._edges
        )
        self._env._sinks.append(t)
        return DataStreamSink(t)

    def print(self, prefix: str = "") -> DataStreamSink:
        """Print every record to standard output."""
        from headwater.core._builtins import PrintSink

        return self.sink_to(PrintSink(prefix), name="Print")

    def execute_and_collect(self, job_name: str = "collect") -> list[T]:
        """Run the job (it must be bounded) and return every record of this stream, in arrival order."""
        from headwater.core._builtins import CollectSink

        sink: CollectSink[T] = CollectSink()
        self.sink_to(sink, name="Collect")
        self._env.execute(job_name)
        return sink.results()

    # -- internals -------------------------------------------------------------------------
    def _add(self, kind: NodeKind, name: str, payload: Any, key: Any = None) -> DataStream[Any]:
        t = self._env._new_transformation(kind, name, payload, self._edges)
        t.key_selector = key
        return DataStream(self._env, [Edge(t)])

    def _partition(self, partitioning: Partitioning) -> DataStream[T]:
        return DataStream(self._env, [replace(e, partitioning=partitioning) for e in self._edges])

    def _single(self, what: str) -> Transformation:
        sources = {e.source.id: e.source for e in self._edges}
        if len(sources) != 1:
            raise ConfigurationError(f"{what}() applies to one operator; this stream is a union")
        return next(iter(sources.values()))


class KeyedStream(DataStream[T], Generic[T, K]):
    """A stream partitioned by key, for keyed state."""

    def __init__(
        self, env: StreamEnvironment, edges: list[Edge], key_selector: Callable[[T], K]
    ) -> None:
        super().__init__(env, edges)
        self._key_selector = key_selector

    def reduce(self, fn: Callable[[T, T], T], *, name: str = "Reduce") -> DataStream[T]:
        """Fold each record into the running value of its key and emit the new running value.

        The running values are keyed state (written with the state codec, so they keep their
        types), checkpointed per key group and redistributed when the job is restored with another
        parallelism.
        """
        return self._add(NodeKind.REDUCE, name, fn, key=self._key_selector)

    def process(
        self,
        fn: KeyedProcessFunction[T, R] | ProcessFunction[T, R],
        *,
        name: str = "KeyedProcess",
    ) -> DataStream[R]:
        """Apply a :class:`KeyedProcessFunction` (keyed state, timers, side outputs)."""
        if isinstance(fn, ProcessFunction):
            return super().process(fn, name=name)
        if not isinstance(fn, KeyedProcessFunction):
            raise ConfigurationError(
                f"process(): expected a KeyedProcessFunction, got {type(fn).__name__}"
            )
        return self._add(NodeKind.KEYED_PROCESS, name, fn, key=self._key_selector)

    def window(self, assigner: WindowAssigner) -> WindowedStream[T, K]:
        """Group each key's records into windows (tumbling, sliding or session)."""
        if not isinstance(assigner, WindowAssigner):
            raise ConfigurationError(
                f"window(): expected a WindowAssigner, got {type(assigner).__name__}"
            )
        return WindowedStream(self, assigner)


class WindowedStream(Generic[T, K]):
    """A keyed stream grouped into windows; finish it with reduce, aggregate or process."""

    def __init__(self, keyed: KeyedStream[T, K], assigner: WindowAssigner) -> None:
        self._keyed = keyed
        self._assigner = assigner
        self._trigger: Trigger | None = None
        self._lateness_ms = 0
        self._late_tag: str | None = None

    def trigger(self, trigger: Trigger) -> WindowedStream[T, K]:
        """Fire early as well (CountTrigger, ContinuousEventTimeTrigger, ...)."""
        if not isinstance(trigger, Trigger):
            raise ConfigurationError(f"trigger(): expected a Trigger, got {type(trigger).__name__}")
        self._trigger = trigger
        return self

    def allowed_lateness(self, lateness: timedelta) -> WindowedStream[T, K]:
        """Keep windows this long after they fire; a late record updates and re-fires its window."""
        if lateness < timedelta(0):
            raise ConfigurationError("allowed_lateness(): must be >= 0")
        self._lateness_ms = int(lateness.total_seconds() * 1000)
        return self

    def side_output_late_data(self, tag: OutputTag[T]) -> WindowedStream[T, K]:
        """Send records too late for their window to the side output ``tag`` instead of dropping them."""
        self._late_tag = tag.name
        return self

    @overload
    def reduce(
        self,
        fn: Callable[[T, T], T],
        *,
        name: str = ...,
        with_window: Literal[False] = False,
    ) -> DataStream[T]: ...

    @overload
    def reduce(
        self, fn: Callable[[T, T], T], *, name: str = ..., with_window: Literal[True]
    ) -> DataStream[WindowResult[K, T]]: ...

    def reduce(
        self, fn: Callable[[T, T], T], *, name: str = "WindowReduce", with_window: bool = False
    ) -> DataStream[Any]:
        """Emit, per window and key, the records folded with ``fn`` (one value kept per window).

        With ``with_window=True`` each result is a :class:`WindowResult` (key, start, end, value).
        """
        if not callable(fn):
            raise ConfigurationError(f"reduce(): expected a function, got {type(fn).__name__}")
        return self._build("reduce", fn, name, with_window)

    @overload
    def aggregate(
        self,
        fn: AggregateFunction[T, Any, R],
        *,
        name: str = ...,
        with_window: Literal[False] = False,
    ) -> DataStream[R]: ...

    @overload
    def aggregate(
        self, fn: AggregateFunction[T, Any, R], *, name: str = ..., with_window: Literal[True]
    ) -> DataStream[WindowResult[K, R]]: ...

    def aggregate(
        self,
        fn: AggregateFunction[T, Any, R],
        *,
        name: str = "WindowAggregate",
        with_window: bool = False,
    ) -> DataStream[Any]:
        """Emit, per window and key, the result of an incremental :class:`AggregateFunction`.

        With ``with_window=True`` each result is a :class:`WindowResult` (key, start, end, value).
        """
        if not isinstance(fn, AggregateFunction):
            raise ConfigurationError(
                f"aggregate(): expected an AggregateFunction, got {type(fn).__name__}"
            )
        return self._build("aggregate", fn, name, with_window)

    def count(self, *, name: str = "WindowCount") -> DataStream[WindowResult[K, int]]:
        """Emit, per window and key, the number of records as a :class:`WindowResult`."""
        return self._build("aggregate", Count(), name, True)

    def sum(
        self, field: Field = None, *, name: str = "WindowSum"
    ) -> DataStream[WindowResult[K, Any]]:
        """Emit, per window and key, the sum of ``field`` as a :class:`WindowResult`.

        ``field`` is a mapping key or attribute name, a tuple index, a function of the record, or
        ``None`` for the record itself. Values keep their type (ints, Decimals, timedeltas).
        """
        return self._build("aggregate", Sum(field), name, True)

    def min(
        self, field: Field = None, *, name: str = "WindowMin"
    ) -> DataStream[WindowResult[K, Any]]:
        """Emit, per window and key, the smallest ``field`` (see :meth:`sum`) as a :class:`WindowResult`."""
        return self._build("aggregate", Min(field), name, True)

    def max(
        self, field: Field = None, *, name: str = "WindowMax"
    ) -> DataStream[WindowResult[K, Any]]:
        """Emit, per window and key, the largest ``field`` (see :meth:`sum`) as a :class:`WindowResult`."""
        return self._build("aggregate", Max(field), name, True)

    def avg(
        self, field: Field = None, *, name: str = "WindowAvg"
    ) -> DataStream[WindowResult[K, Any]]:
        """Emit, per window and key, the mean of ``field`` (see :meth:`sum`) as a :class:`WindowResult`."""
        return self._build("aggregate", Avg(field), name, True)

    def process(
        self, fn: ProcessWindowFunction[K, T, R], *, name: str = "WindowProcess"
    ) -> DataStream[R]:
        """Emit what ``fn`` returns for each window's records (kept in state until it fires)."""
        if not isinstance(fn, ProcessWindowFunction):
            raise ConfigurationError(
                f"process(): expected a ProcessWindowFunction, got {type(fn).__name__}"
            )
        return self._build("process", fn, name)

    def _build(self, kind: str, fn: Any, name: str, with_window: bool = False) -> DataStream[Any]:
        spec = WindowSpec(
            assigner=self._assigner,
            trigger=self._trigger,
            allowed_lateness_ms=self._lateness_ms,
            late_tag=self._late_tag,
            kind=kind,
            function=fn,
            with_window=with_window,
        )
        return self._keyed._add(NodeKind.WINDOW, name, spec, key=self._keyed._key_selector)


class BroadcastConnectedStream(Generic[T, B]):
    """A stream connected with a broadcast stream."""

    def __init__(self, main: DataStream[T], broadcast: DataStream[B]) -> None:
        self._main = main
        self._broadcast = broadcast

    def process(
        self, fn: BroadcastProcessFunction[T, B, R], *, name: str = "BroadcastProcess"
    ) -> DataStream[R]:
        """Apply ``fn``: main records read the broadcast state, broadcast records update it."""
        if not isinstance(fn, BroadcastProcessFunction):
            raise ConfigurationError(
                f"process(): expected a BroadcastProcessFunction, got {type(fn).__name__}"
            )
        edges = list(self._main._edges) + [
            replace(e, partitioning=Partitioning.BROADCAST, input_index=1)
            for e in self._broadcast._edges
        ]
        t = self._main._env._new_transformation(NodeKind.BROADCAST_PROCESS, name, fn, edges)
        return DataStream(self._main._env, [Edge(t)])


class DataStreamSink:
    """The handle of a sink in the graph, for per-operator settings."""

    def __init__(self, transformation: Transformation) -> None:
        self._t = transformation

    def set_parallelism(self, parallelism: int) -> DataStreamSink:
        """Set the sink's parallelism."""
        if parallelism < 1:
            raise ConfigurationError(f"sink '{self._t.name}': parallelism must be >= 1")
        self._t.parallelism = parallelism
        return self

    def name(self, name: str) -> DataStreamSink:
        """Rename the sink."""
        self._t.name = name
        return self

    def uid(self, uid: str) -> DataStreamSink:
        """Tie the sink's state (buffered entries, pending committables) to ``uid``."""
        self._t.uid = uid
        return self
