"""Keyed state: value, list, map, reducing and aggregating state with TTL, kept per key group.

A keyed operator (after ``key_by``) sets the current key before it calls the user's function; state
handles read and write the entry of that key. The backend snapshots its entries grouped by key
group, so a job restored with another parallelism hands every key group to its new owner. Keys and
values must be JSON-compatible (they are written into checkpoints without pickle).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from headwater.core._errors import ConfigurationError
from headwater.core._keygroups import key_group_for

__all__ = [
    "AggregateFunction",
    "AggregatingState",
    "AggregatingStateDescriptor",
    "KeyedListState",
    "ListStateDescriptor",
    "MapState",
    "MapStateDescriptor",
    "ReducingState",
    "ReducingStateDescriptor",
    "StateTtlConfig",
    "ValueState",
    "ValueStateDescriptor",
]

V = TypeVar("V")
IN = TypeVar("IN")
ACC = TypeVar("ACC")
OUT = TypeVar("OUT")
K = TypeVar("K")

_ABSENT = object()


@dataclass(frozen=True, kw_only=True)
class StateTtlConfig:
    """Time-to-live of keyed state entries (processing time).

    Args:
        ttl: how long an entry lives after it was last written (or read, see ``update_on_read``).
        update_on_read: reading an entry also restarts its time to live.
    """

    ttl: timedelta
    update_on_read: bool = False

    def __post_init__(self) -> None:
        if self.ttl <= timedelta(0):
            raise ConfigurationError(f"state TTL must be positive, got {self.ttl}")


class AggregateFunction(ABC, Generic[IN, ACC, OUT]):
    """An incremental aggregation: an accumulator that records are added to."""

    @abstractmethod
    def create_accumulator(self) -> ACC:
        """A new, empty accumulator (JSON-compatible: it is checkpointed)."""

    @abstractmethod
    def add(self, value: IN, accumulator: ACC) -> ACC:
        """The accumulator with ``value`` added (may update it in place and return it)."""

    @abstractmethod
    def get_result(self, accumulator: ACC) -> OUT:
        """The result for an accumulator."""

    def merge(self, a: ACC, b: ACC) -> ACC:
        """Two accumulators merged into one (needed by session windows)."""
        raise NotImplementedError(f"{type(self).__name__} does not support merging")


@dataclass(frozen=True)
class ValueStateDescriptor(Generic[V]):
    """A single value per key."""

    name: str
    default: Any = None
    ttl: StateTtlConfig | None = None


@dataclass(frozen=True)
class ListStateDescriptor(Generic[V]):
    """A list of values per key."""

    name: str
    ttl: StateTtlConfig | None = None


@dataclass(frozen=True)
class MapStateDescriptor(Generic[K, V]):
    """A map per key (map keys must be strings to survive JSON checkpoints unchanged)."""

    name: str
    ttl: StateTtlConfig | None = None


@dataclass(frozen=True)
class ReducingStateDescriptor(Generic[V]):
    """A value per key that added values are folded into with ``reduce``."""

    name: str
    reduce: Callable[[Any, Any], Any]
    ttl: StateTtlConfig | None = None


@dataclass(frozen=True)
class AggregatingStateDescriptor(Generic[IN, ACC, OUT]):
    """An accumulator per key that added values go into through an :class:`AggregateFunction`."""

    name: str
    aggregate: AggregateFunction[Any, Any, Any]
    ttl: StateTtlConfig | None = None


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Table:
    """The entries of one named state: key -> value, or key -> [value, expires_at_ms] with TTL."""

    __slots__ = ("entries", "name", "ttl_ms", "update_on_read")

    def __init__(self, name: str, ttl: StateTtlConfig | None) -> None:
        self.name = name
        self.entries: dict[Any, Any] = {}
        self.ttl_ms = int(ttl.ttl.total_seconds() * 1000) if ttl else None
        self.update_on_read = bool(ttl and ttl.update_on_read)

    def get(self, key: Any) -> Any:
        entry = self.entries.get(key, _ABSENT)
        if entry is _ABSENT or self.ttl_ms is None:
            return entry
        if entry[1] <= _now_ms():
            del self.entries[key]
            return _ABSENT
        if self.update_on_read:
            entry[1] = _now_ms() + self.ttl_ms
        return entry[0]

    def put(self, key: Any, value: Any) -> None:
        if self.ttl_ms is None:
            self.entries[key] = value
        else:
            self.entries[key] = [value, _now_ms() + self.ttl_ms]

    def remove(self, key: Any) -> None:
        self.entries.pop(key, None)

    def live_items(self) -> Iterator[tuple[Any, Any]]:
        if self.ttl_ms is None:
            yield from self.entries.items()
            return
        now = _now_ms()
        for key, (value, expires) in list(self.entries.items()):
            if expires > now:
                yield key, [value, expires]
            else:
                del self.entries[key]


class KeyedStateBackend:
    """All keyed state of one operator subtask; handles read the entry of :attr:`current_key`."""

    def __init__(self, max_parallelism: int) -> None:
        self.max_parallelism = max_parallelism
        self.current_key: Any = None
        self._tables: dict[str, _Table] = {}
        self._restored: dict[str, list[list[Any]]] = {}

    def table(self, name: str, ttl: StateTtlConfig | None) -> _Table:
        """The table of state ``name`` (restored entries included)."""
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = _Table(name, ttl)
            for key, value in self._restored.pop(name, []):
                table.entries[_hashable(key)] = value
        return table

    def restore(self, keyed: dict[str, dict[str, list[list[Any]]]]) -> None:
        """Load the entries of the key groups this subtask owns."""
        for groups in keyed.values():
            for name, entries in groups.items():
                self._restored.setdefault(name, []).extend(entries)

    def restored_entries(self, name: str) -> list[list[Any]]:
        """Entries of ``name`` not yet claimed by a state handle (for operators' own tables)."""
        return self._restored.pop(name, [])

    def snapshot(self, extra: dict[str, list[tuple[Any, Any]]] | None = None) -> dict[str, Any]:
        """Every live entry grouped by key group: ``{key_group: {state: [[key, value], ...]}}``."""
        groups: dict[str, dict[str, list[Any]]] = {}
        mp = self.max_parallelism
        tables: dict[str, Any] = {name: t.live_items() for name, t in self._tables.items()}
        if extra:
            tables.update({name: iter(items) for name, items in extra.items()})
        for name, items in tables.items():
            for key, value in items:
                group = groups.setdefault(str(key_group_for(key, mp)), {})
                group.setdefault(name, []).append([key, value])
        # State not touched since the restore is kept as it was.
        for name, entries in self._restored.items():
            for key, value in entries:
                group = groups.setdefault(str(key_group_for(_hashable(key), mp)), {})
                group.setdefault(name, []).append([key, value])
        return groups

    # -- handles ---------------------------------------------------------------------------
    def get_state(self, descriptor: Any) -> Any:
        """The handle for ``descriptor`` (value, list, map, reducing or aggregating)."""
        table = self.table(descriptor.name, descriptor.ttl)
        handle_type = _HANDLES.get(type(descriptor))
        if handle_type is None:
            raise ConfigurationError(f"unknown state descriptor {type(descriptor).__name__}")
        return handle_type(self, table, descriptor)


def _hashable(key: Any) -> Any:
    """JSON turns tuples into lists; keys come back as tuples."""
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


class _Handle:
    __slots__ = ("_backend", "_descriptor", "_table")

    def __init__(self, backend: KeyedStateBackend, table: _Table, descriptor: Any) -> None:
        self._backend = backend
        self._table = table
        self._descriptor = descriptor

    def clear(self) -> None:
        """Remove the current key's entry."""
        self._table.remove(self._backend.current_key)


class ValueState(_Handle, Generic[V]):
    """One value for the current key."""

    def value(self) -> V:
        """The current key's value, or the descriptor's default."""
        v = self._table.get(self._backend.current_key)
        result: V = self._descriptor.default if v is _ABSENT else v
        return result

    def update(self, value: V) -> None:
        """Set the current key's value."""
        self._table.put(self._backend.current_key, value)


class KeyedListState(_Handle, Generic[V]):
    """A list of values for the current key."""

    def get(self) -> list[V]:
        """The current key's values (empty if none)."""
        v = self._table.get(self._backend.current_key)
        return [] if v is _ABSENT else list(v)

    def add(self, value: V) -> None:
        """Append a value."""
        self._table.put(self._backend.current_key, [*self.get(), value])

    def update(self, values: list[V]) -> None:
        """Replace the values."""
        self._table.put(self._backend.current_key, list(values))


class MapState(_Handle, Generic[K, V]):
    """A map for the current key."""

    def _map(self) -> dict[Any, Any]:
        v = self._table.get(self._backend.current_key)
        return {} if v is _ABSENT else v

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value of ``key`` in the current key's map."""
        return self._map().get(key, default)

    def put(self, key: K, value: V) -> None:
        """Set ``key`` in the current key's map."""
        m = self._map()
        m[key] = value
        self._table.put(self._backend.current_key, m)

    def remove(self, key: K) -> None:
        """Remove ``key`` from the current key's map."""
        m = self._map()
        m.pop(key, None)
        self._table.put(self._backend.current_key, m)

    def contains(self, key: K) -> bool:
        """Whether the current key's map has ``key``."""
        return key in self._map()

    def items(self) -> list[tuple[K, V]]:
        """Every entry of the current key's map."""
        return list(self._map().items())


class ReducingState(_Handle, Generic[V]):
    """A value for the current key that added values are reduced into."""

    def get(self) -> V | None:
        """The reduced value (``None`` if nothing was added)."""
        v = self._table.get(self._backend.current_key)
        return None if v is _ABSENT else v

    def add(self, value: V) -> None:
        """Fold ``value`` in."""
        current = self._table.get(self._backend.current_key)
        new = value if current is _ABSENT else self._descriptor.reduce(current, value)
        self._table.put(self._backend.current_key, new)


class AggregatingState(_Handle, Generic[IN, OUT]):
    """An accumulator for the current key, fed through an :class:`AggregateFunction`."""

    def get(self) -> OUT | None:
        """The aggregate's result (``None`` if nothing was added)."""
        acc = self._table.get(self._backend.current_key)
        return None if acc is _ABSENT else self._descriptor.aggregate.get_result(acc)

    def add(self, value: IN) -> None:
        """Add ``value`` to the accumulator."""
        agg = self._descriptor.aggregate
        acc = self._table.get(self._backend.current_key)
        if acc is _ABSENT:
            acc = agg.create_accumulator()
        self._table.put(self._backend.current_key, agg.add(value, acc))


_HANDLES: dict[type, type[_Handle]] = {
    ValueStateDescriptor: ValueState,
    ListStateDescriptor: KeyedListState,
    MapStateDescriptor: MapState,
    ReducingStateDescriptor: ReducingState,
    AggregatingStateDescriptor: AggregatingState,
}
