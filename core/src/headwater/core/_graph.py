"""The logical job graph built by the DataStream API, and its translation into chained tasks."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from headwater.core._errors import ConfigurationError

__all__ = ["Edge", "JobGraph", "JobVertex", "NodeKind", "Partitioning", "Transformation"]


class NodeKind(enum.Enum):
    """What a transformation does."""

    SOURCE = "source"
    MAP = "map"
    FILTER = "filter"
    FLAT_MAP = "flat_map"
    PROCESS = "process"
    REDUCE = "reduce"
    KEYED_PROCESS = "keyed_process"
    WINDOW = "window"
    ASYNC_IO = "async_io"
    BROADCAST_PROCESS = "broadcast_process"
    SINK = "sink"


class Partitioning(enum.Enum):
    """How records move from the subtasks of one operator to those of the next."""

    FORWARD = "forward"
    REBALANCE = "rebalance"
    SHUFFLE = "shuffle"
    BROADCAST = "broadcast"
    CUSTOM = "custom"
    KEY_GROUPS = "key_groups"


@dataclass(frozen=True)
class Edge:
    """A connection into a transformation, with how records are partitioned across it."""

    source: Transformation
    partitioning: Partitioning | None = None
    """``None``: forward when the parallelism matches, rebalance otherwise."""
    key_selector: Callable[[Any], Any] | None = None
    partitioner: Callable[[Any, int], int] | None = None
    tag: str | None = None
    """The side output this edge carries (``None``: the main output)."""
    input_index: int = 0
    """Which input of a two-input operator the edge feeds (1: the broadcast side)."""


@dataclass(eq=False)
class Transformation:
    """One node of the logical graph."""

    id: int
    kind: NodeKind
    name: str
    payload: Any
    inputs: list[Edge] = field(default_factory=list)
    parallelism: int | None = None
    max_parallelism: int | None = None
    uid: str | None = None
    fixed_parallelism: bool = False
    """Sources that cannot run in parallel (a collection) pin their parallelism to 1."""
    key_selector: Callable[[Any], Any] | None = None
    """For keyed operators: the key of each input record."""

    @property
    def operator_uid(self) -> str:
        """The uid that ties this operator's state to checkpoints (user-set or derived)."""
        return self.uid if self.uid is not None else f"{self.id}-{self.kind.value}"


@dataclass(eq=False)
class JobVertex:
    """A chain of transformations that runs as one task per parallel subtask."""

    index: int
    chain: list[Transformation]
    parallelism: int
    max_parallelism: int
    inputs: list[tuple[JobVertex, Edge]] = field(default_factory=list)
    outputs: list[tuple[JobVertex, Edge]] = field(default_factory=list)

    @property
    def head(self) -> Transformation:
        """The first transformation of the chain."""
        return self.chain[0]

    @property
    def name(self) -> str:
        """A readable name: the chained operators' names joined by arrows."""
        return " -> ".join(t.name for t in self.chain)


@dataclass
class JobGraph:
    """Tasks in topological order (every vertex after its inputs)."""

    name: str
    vertices: list[JobVertex]


def resolve_partitioning(edge: Edge, upstream: int, downstream: int) -> Partitioning:
    """The partitioning actually used across ``edge``."""
    if edge.partitioning is None:
        return Partitioning.FORWARD if upstream == downstream else Partitioning.REBALANCE
    if edge.partitioning is Partitioning.FORWARD and upstream != downstream:
        raise ConfigurationError(
            f"forward partitioning needs equal parallelism, but '{edge.source.name}' has "
            f"{upstream} and its successor has {downstream}; use rebalance() instead"
        )
    return edge.partitioning


def build_job_graph(
    name: str, sinks: list[Transformation], default_parallelism: int, max_parallelism: int
) -> JobGraph:
    """Translate the transformations reachable from ``sinks`` into chained job vertices."""
    order: list[Transformation] = []
    seen: set[int] = set()

    def visit(t: Transformation) -> None:
        if t.id in seen:
            return
        seen.add(t.id)
        for edge in t.inputs:
            visit(edge.source)
        order.append(t)

    for sink in sorted(sinks, key=lambda t: t.id):
        visit(sink)

    parallelism = {t.id: _parallelism(t, default_parallelism, max_parallelism) for t in order}
    consumers: dict[int, list[tuple[Transformation, Edge]]] = {t.id: [] for t in order}
    for t in order:
        for edge in t.inputs:
            consumers[edge.source.id].append((t, edge))

    def chainable(up: Transformation, down: Transformation, edge: Edge) -> bool:
        return (
            len(down.inputs) == 1
            and len(consumers[up.id]) == 1
            and parallelism[up.id] == parallelism[down.id]
            and resolve_partitioning(edge, parallelism[up.id], parallelism[down.id])
            is Partitioning.FORWARD
            and down.kind is not NodeKind.SOURCE
            and edge.tag is None
            and down.kind is not NodeKind.ASYNC_IO  # heads its task: completions wake the task
        )

    vertex_of: dict[int, JobVertex] = {}
    vertices: list[JobVertex] = []
    for t in order:
        if len(t.inputs) == 1:
            edge = t.inputs[0]
            up = edge.source
            if chainable(up, t, edge):
                vertex = vertex_of[up.id]
                vertex.chain.append(t)
                vertex_of[t.id] = vertex
                continue
        vertex = JobVertex(
            index=len(vertices),
            chain=[t],
            parallelism=parallelism[t.id],
            max_parallelism=t.max_parallelism or max_parallelism,
        )
        vertices.append(vertex)
        vertex_of[t.id] = vertex
        for edge in t.inputs:
            upstream = vertex_of[edge.source.id]
            resolve_partitioning(edge, upstream.parallelism, vertex.parallelism)
            vertex.inputs.append((upstream, edge))
            upstream.outputs.append((vertex, edge))
    return JobGraph(name=name, vertices=vertices)


def _parallelism(t: Transformation, default: int, max_parallelism: int) -> int:
    p = 1 if t.fixed_parallelism else (t.parallelism or default)
    limit = t.max_parallelism or max_parallelism
    if p > limit:
        raise ConfigurationError(
            f"operator '{t.name}': parallelism {p} exceeds max_parallelism {limit}"
        )
    return p
