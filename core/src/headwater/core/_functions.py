"""User functions and the runtime context they see.

``map``, ``filter`` and ``flat_map`` take plain callables. :class:`ProcessFunction` is the general
form: it can emit any number of records per input and keep operator state that is checkpointed and
redistributed when the job is restored with another parallelism.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from headwater.core._metrics import MetricGroup

__all__ = [
    "BroadcastContext",
    "BroadcastProcessFunction",
    "KeyedContext",
    "KeyedProcessFunction",
    "KeyedRuntimeContext",
    "ListState",
    "OutputTag",
    "ProcessFunction",
    "ReadOnlyBroadcastContext",
    "RuntimeContext",
    "TimerService",
]

IN = TypeVar("IN")
"""The type of the records a function consumes."""
OUT = TypeVar("OUT")
"""The type of the records a function produces."""
BC = TypeVar("BC")
"""The type of the records of a broadcast stream."""
R = TypeVar("R")


class ListState:
    """Operator state: a list of values (of the types the state codec writes) kept in every checkpoint.

    On restore with another parallelism, the items of a *list* state are dealt round-robin over the
    new subtasks; the items of a *union* list state are given, all of them, to every subtask.
    """

    __slots__ = ("items",)

    def __init__(self, items: list[Any] | None = None) -> None:
        self.items: list[Any] = items if items is not None else []

    def get(self) -> list[Any]:
        """The current items (the live list)."""
        return self.items

    def update(self, items: Iterable[Any]) -> None:
        """Replace every item."""
        self.items = list(items)

    def add(self, item: Any) -> None:
        """Append one item."""
        self.items.append(item)

    def clear(self) -> None:
        """Remove every item."""
        self.items = []


class RuntimeContext(Protocol):
    """What an operator's function sees of the runtime."""

    @property
    def operator_name(self) -> str:
        """The operator's name."""
        ...

    @property
    def subtask_index(self) -> int:
        """The index of this subtask, from 0."""
        ...

    @property
    def parallelism(self) -> int:
        """The operator's parallelism."""
        ...

    @property
    def max_parallelism(self) -> int:
        """The number of key groups of keyed state."""
        ...

    @property
    def metric_group(self) -> MetricGroup:
        """The metric group of this operator and subtask."""
        ...

    def get_list_state(self, name: str) -> ListState:
        """Operator list state ``name`` (restored if the job was restored)."""
        ...

    def get_union_list_state(self, name: str) -> ListState:
        """Operator union list state ``name`` (restored if the job was restored)."""
        ...

    def run_blocking(self, fn: Callable[..., R], /, *args: Any) -> Awaitable[R]:
        """Run a blocking call on the job's bounded thread pool."""
        ...


class ProcessFunction(ABC, Generic[IN, OUT]):
    """A function over each record that may emit zero or more records and keep operator state."""

    def open(self, context: RuntimeContext) -> None:
        """Called once per subtask before the first record; get state handles here."""

    @abstractmethod
    def process_element(self, value: IN) -> Iterable[OUT]:
        """Return (or yield) the records to emit for ``value``."""

    def snapshot_state(self, checkpoint_id: int) -> None:
        """Called before the operator's state handles are written into checkpoint ``checkpoint_id``."""

    def close(self) -> None:
        """Called once when the subtask ends normally."""


@dataclass(frozen=True)
class OutputTag(Generic[OUT]):
    """Names a side output: records an operator emits next to its main output.

    Read it with :meth:`DataStream.get_side_output`.
    """

    name: str


class TimerService(Protocol):
    """Timers of the current key. Timers are checkpointed and fire at most once per (key, time)."""

    def current_watermark(self) -> int:
        """The operator's current event-time watermark (ms)."""
        ...

    def current_processing_time(self) -> int:
        """The wall clock (ms since the epoch)."""
        ...

    def register_event_time_timer(self, timestamp: int) -> None:
        """Call ``on_timer`` once the watermark passes ``timestamp``."""
        ...

    def register_processing_time_timer(self, timestamp: int) -> None:
        """Call ``on_timer`` once the wall clock passes ``timestamp``."""
        ...

    def delete_event_time_timer(self, timestamp: int) -> None:
        """Remove an event-time timer of the current key."""
        ...

    def delete_processing_time_timer(self, timestamp: int) -> None:
        """Remove a processing-time timer of the current key."""
        ...


class KeyedContext(Protocol):
    """What a :class:`KeyedProcessFunction` sees while it handles one record or timer."""

    @property
    def current_key(self) -> Any:
        """The key of the record or timer being handled."""
        ...

    @property
    def timestamp(self) -> int | None:
        """The record's event timestamp, or the timer's time."""
        ...

    @property
    def timer_service(self) -> TimerService:
        """Timers of the current key."""
        ...

    def output(self, tag: OutputTag[Any], value: Any) -> None:
        """Emit ``value`` to the side output ``tag``."""
        ...


class KeyedRuntimeContext(RuntimeContext, Protocol):
    """The runtime context of a keyed operator: it also hands out keyed state."""

    def get_state(self, descriptor: Any) -> Any:
        """The keyed state handle for a state descriptor (see ``headwater.core.ValueStateDescriptor``)."""
        ...


class KeyedProcessFunction(ABC, Generic[IN, OUT]):
    """A function over a keyed stream with keyed state and timers."""

    def open(self, context: KeyedRuntimeContext) -> None:
        """Called once per subtask before the first record; get state handles here."""

    @abstractmethod
    def process_element(self, value: IN, ctx: KeyedContext) -> Iterable[OUT]:
        """Return (or yield) the records to emit for ``value``."""

    def on_timer(self, timestamp: int, ctx: KeyedContext) -> Iterable[OUT]:
        """A timer of ``ctx.current_key`` fired; return the records to emit."""
        return ()

    def close(self) -> None:
        """Called once when the subtask ends normally."""


class BroadcastContext(Protocol):
    """What a :class:`BroadcastProcessFunction` sees; broadcast state is writable only here."""

    def broadcast_state(self, name: str) -> dict[str, Any]:
        """The broadcast state ``name``: a dict with string keys, the same in every subtask."""
        ...


class ReadOnlyBroadcastContext(Protocol):
    """What :meth:`BroadcastProcessFunction.process_element` sees."""

    def broadcast_state(self, name: str) -> Mapping[str, Any]:
        """The broadcast state ``name``, read-only."""
        ...


class BroadcastProcessFunction(ABC, Generic[IN, BC, OUT]):
    """Processes a stream with the help of state built from a broadcast stream (rules, config).

    Every subtask receives every broadcast record and must update its broadcast state the same way,
    so the state is the same everywhere (it is checkpointed once and given to every subtask on
    restore). There is no order between the two inputs.
    """

    def open(self, context: RuntimeContext) -> None:
        """Called once per subtask before the first record."""

    @abstractmethod
    def process_element(self, value: IN, ctx: ReadOnlyBroadcastContext) -> Iterable[OUT]:
        """Return the records to emit for a record of the main input."""

    @abstractmethod
    def process_broadcast_element(self, value: BC, ctx: BroadcastContext) -> Iterable[OUT]:
        """Update broadcast state from a broadcast record; return records to emit."""
