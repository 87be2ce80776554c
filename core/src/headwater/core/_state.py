"""Keyed state: value, list, map, reducing and aggregating state with TTL, kept per key group.

A keyed operator (after ``key_by``) sets the current key before it calls the user's function; state
handles read and write the entry of that key. The backend snapshots its entries grouped by key
group, so a job restored with another parallelism hands every key group to its new owner. Keys and
values go through the state codec (:mod:`headwater.core._state_codec`), or through the serializer a
descriptor names; a value the codec cannot write fails when it is written to state.

Entries live in a table per state: in a Python dict (:meth:`StateBackend.memory`, the default) or
in an embedded RocksDB database on disk (:meth:`StateBackend.rocksdb`).
"""

from __future__ import annotations

import itertools
import struct
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from headwater.core._errors import ConfigurationError, SerializationError
from headwater.core._keygroups import key_group_for, stable_hash
from headwater.core._serialization import VersionedSerializer
from headwater.core._state_codec import StateValueError, decode_state, encode_state
from headwater.core._state_files import Chunk, read_chunks

if TYPE_CHECKING:
    from headwater.core._rocksdb_state import RocksDBStore

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
    "StateBackend",
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
        """A new, empty accumulator (it is checkpointed through the state codec)."""

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
    """A single value per key.

    Args:
        name: the state's name (unique per operator; it is how a restore finds the state).
        default: what :meth:`ValueState.value` returns for a key without a value.
        ttl: entries expire this long after they were written (``None``: never).
        serializer: writes the value instead of the state codec (its version is stored with the
            data); ``None`` uses the codec.
    """

    name: str
    default: Any = None
    ttl: StateTtlConfig | None = None
    serializer: VersionedSerializer[Any] | None = None


@dataclass(frozen=True)
class ListStateDescriptor(Generic[V]):
    """A list of values per key.

    Args:
        name: the state's name (unique per operator; it is how a restore finds the state).
        ttl: entries expire this long after they were written (``None``: never).
        serializer: writes each element instead of the state codec (its version is stored with the
            data); ``None`` uses the codec.
    """

    name: str
    ttl: StateTtlConfig | None = None
    serializer: VersionedSerializer[Any] | None = None


@dataclass(frozen=True)
class MapStateDescriptor(Generic[K, V]):
    """A map per key (map keys may be any value the state codec writes, e.g. tuples or ints).

    Args:
        name: the state's name (unique per operator; it is how a restore finds the state).
        ttl: entries expire this long after they were written (``None``: never).
        serializer: writes each map value (map keys go through the codec) instead of the state codec (its version is stored with the
            data); ``None`` uses the codec.
    """

    name: str
    ttl: StateTtlConfig | None = None
    serializer: VersionedSerializer[Any] | None = None


@dataclass(frozen=True)
class ReducingStateDescriptor(Generic[V]):
    """A value per key that added values are folded into with ``reduce``.

    Args:
        name: the state's name (unique per operator; it is how a restore finds the state).
        reduce: folds an added value into the current one.
        ttl: entries expire this long after they were written (``None``: never).
        serializer: writes the reduced value instead of the state codec (its version is stored with the
            data); ``None`` uses the codec.
    """

    name: str
    reduce: Callable[[Any, Any], Any]
    ttl: StateTtlConfig | None = None
    serializer: VersionedSerializer[Any] | None = None


@dataclass(frozen=True)
class AggregatingStateDescriptor(Generic[IN, ACC, OUT]):
    """An accumulator per key that added values go into through an :class:`AggregateFunction`.

    Args:
        name: the state's name (unique per operator; it is how a restore finds the state).
        aggregate: creates the accumulator, adds values to it and computes the result.
        ttl: entries expire this long after they were written (``None``: never).
        serializer: writes the accumulator instead of the state codec (its version is stored with the
            data); ``None`` uses the codec.
    """

    name: str
    aggregate: AggregateFunction[Any, Any, Any]
    ttl: StateTtlConfig | None = None
    serializer: VersionedSerializer[Any] | None = None


@dataclass(frozen=True)
class StateBackend:
    """Where a job's keyed state lives (:meth:`memory`, the default, or :meth:`rocksdb`).

    Both keep the same API, TTL and key groups; checkpoints of either restore into either.

    Args:
        kind: ``"memory"`` or ``"rocksdb"``.
        path: the directory RocksDB databases are created in (one per keyed operator subtask,
            removed when the subtask closes).
    """

    kind: str = "memory"
    path: Path | None = None

    @classmethod
    def memory(cls) -> StateBackend:
        """Keyed state in Python dicts: fastest, bounded by memory."""
        return cls("memory")

    @classmethod
    def rocksdb(cls, path: str | Path) -> StateBackend:
        """Keyed state in embedded RocksDB databases under ``path``: bounded by disk.

        Needs the ``rocksdb`` extra (``pip install headwater-core[rocksdb]``).
        """
        try:
            import rocksdict  # noqa: F401
        except ImportError as exc:
            raise ConfigurationError(
                "StateBackend.rocksdb() needs rocksdict: pip install 'headwater-core[rocksdb]'"
            ) from exc
        return cls("rocksdb", Path(path))

    def __post_init__(self) -> None:
        if self.kind not in ("memory", "rocksdb"):
            raise ConfigurationError(f"state backend: unknown kind {self.kind!r}")
        if self.kind == "rocksdb" and self.path is None:
            raise ConfigurationError("state backend: rocksdb needs a path")


def _now_ms() -> int:
    return int(time.time() * 1000)


_EXPIRY = struct.Struct(">q")


class _ValueCodec:
    """Values of one state to bytes: the state codec, or the serializer its descriptor names.

    A descriptor's serializer writes the value of value, reducing and aggregating state, each
    element of list state and each value of map state (map keys go through the state codec).
    """

    __slots__ = ("_serializer", "_shape")

    def __init__(self, serializer: VersionedSerializer[Any] | None, shape: str = "value") -> None:
        self._serializer = serializer
        self._shape = shape

    def encode(self, value: Any) -> bytes:
        s = self._serializer
        if s is None:
            return encode_state(value)
        if self._shape == "list":
            return encode_state([s.version, [s.serialize(v) for v in value]])
        if self._shape == "map":
            return encode_state([s.version, [[k, s.serialize(v)] for k, v in value.items()]])
        return encode_state([s.version, s.serialize(value)])

    def encode_item(self, item: Any) -> bytes:
        """One list element or map value."""
        s = self._serializer
        return encode_state(item) if s is None else s.serialize(item)

    def decode(self, data: bytes) -> Any:
        s = self._serializer
        if s is None:
            return decode_state(data)
        version, payload = decode_state(data)
        if self._shape == "list":
            return [s.deserialize(version, v) for v in payload]
        if self._shape == "map":
            return {k: s.deserialize(version, v) for k, v in payload}
        return s.deserialize(version, payload)


RawEntry = tuple[int, Any, Any]
"""A restored entry: ``(key_group, key, value)``, either both bytes (state codec) or JSON values
(checkpoints of release 0.1, whose tuples came back as lists)."""


def _hashable(key: Any) -> Any:
    """JSON turned tuples into lists; keys of 0.1 checkpoints come back as tuples."""
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


class StateTable(ABC):
    """The entries of one named state, whatever holds them.

    Values with a TTL are stored with their expiry time; in bytes as an 8-byte expiry prefix.
    """

    def __init__(
        self, backend: KeyedStateBackend, name: str, ttl: StateTtlConfig | None, codec: _ValueCodec
    ) -> None:
        self.backend = backend
        self.name = name
        self.codec = codec
        self.ttl_ms = int(ttl.ttl.total_seconds() * 1000) if ttl else None
        self.update_on_read = bool(ttl and ttl.update_on_read)
        self.changed: set[Any] | None = set() if backend.track_changes else None
        """The keys written since the last snapshot (``None``: not tracked)."""

    def check(self, value: Any) -> None:
        """Fail now (not at the next checkpoint) if ``value`` cannot be written to this state."""
        try:
            self.codec.encode(value)
        except StateValueError as exc:
            raise self.unsupported(exc) from exc

    def check_item(self, item: Any, key: Any = _ABSENT) -> None:
        """:meth:`check` for one list element, or one map entry (``key`` and ``item``)."""
        try:
            self.codec.encode_item(item)
            if key is not _ABSENT:
                encode_state(key)
        except (StateValueError, TypeError, ValueError) as exc:
            raise self.unsupported(StateValueError(str(exc))) from exc

    def unsupported(self, exc: StateValueError) -> StateValueError:
        """``exc`` naming the operator and this state."""
        return StateValueError(
            f"operator '{self.backend.operator}': state '{self.name}' cannot hold the value: {exc}"
        )

    def encode_value(self, value: Any, expires: int | None) -> bytes:
        """A stored value as bytes (with its expiry time when the state has a TTL)."""
        try:
            data = self.codec.encode(value)
        except StateValueError as exc:
            raise self.unsupported(exc) from exc
        return data if expires is None else _EXPIRY.pack(expires) + data

    def decode_value(self, data: bytes) -> tuple[Any, int | None]:
        """``(value, expires)`` of stored bytes."""
        try:
            if self.ttl_ms is None:
                return self.codec.decode(data), None
            return self.codec.decode(data[8:]), _EXPIRY.unpack_from(data)[0]
        except SerializationError as exc:
            raise SerializationError(
                f"operator '{self.backend.operator}': state '{self.name}' cannot be restored: {exc}"
            ) from exc

    def restored_value(self, key: Any, value: Any) -> tuple[Any, Any, int | None]:
        """``(key, value, expires)`` of a restored entry (bytes, or JSON of a 0.1 checkpoint)."""
        if type(key) is bytes:
            return decode_state(key), *self.decode_value(value)
        if self.ttl_ms is None:
            return _hashable(key), value, None
        return _hashable(key), value[0], value[1]

    @abstractmethod
    def get(self, key: Any) -> Any:
        """The live value of ``key``, or ``_ABSENT``."""

    @abstractmethod
    def store(self, key: Any, value: Any) -> None:
        """Set ``key``'s value (already checked, or checked by encoding)."""

    def put(self, key: Any, value: Any) -> None:
        """Check and set ``key``'s value."""
        self.check(value)
        self.store(key, value)

    @abstractmethod
    def remove(self, key: Any) -> None:
        """Remove ``key``."""

    @abstractmethod
    def batch(self, keys: list[Any]) -> dict[Any, Any]:
        """The values of ``keys`` as a dict a loop over one record batch reads and writes."""

    @abstractmethod
    def commit(self, values: dict[Any, Any], keys: list[Any]) -> None:
        """Write back what a batch loop changed in the dict :meth:`batch` returned."""

    @abstractmethod
    def restore(self, entries: list[RawEntry]) -> None:
        """Load restored entries."""

    @abstractmethod
    def snapshot(self, full: bool) -> Iterator[tuple[int, bytes, bytes | None]]:
        """``(key_group, key, value)`` of live entries, in bytes.

        ``full``: every live entry; otherwise those changed since the last snapshot (``None`` for
        removed ones).
        """


class MemoryTable(StateTable):
    """Entries in a dict: ``key -> value``, or ``key -> [value, expires_at_ms]`` with a TTL."""

    def __init__(
        self, backend: KeyedStateBackend, name: str, ttl: StateTtlConfig | None, codec: _ValueCodec
    ) -> None:
        super().__init__(backend, name, ttl, codec)
        self.entries: dict[Any, Any] = {}

    def get(self, key: Any) -> Any:
        entry = self.entries.get(key, _ABSENT)
        if entry is _ABSENT or self.ttl_ms is None:
            return entry
        if entry[1] <= _now_ms():
            self.remove(key)
            return _ABSENT
        if self.update_on_read:
            entry[1] = _now_ms() + self.ttl_ms
            if self.changed is not None:
                self.changed.add(key)
        return entry[0]

    def store(self, key: Any, value: Any) -> None:
        if self.ttl_ms is None:
            self.entries[key] = value
        else:
            self.entries[key] = [value, _now_ms() + self.ttl_ms]
        if self.changed is not None:
            self.changed.add(key)

    def remove(self, key: Any) -> None:
        self.entries.pop(key, None)
        if self.changed is not None:
            self.changed.add(key)

    def batch(self, keys: list[Any]) -> dict[Any, Any]:
        return self.entries  # the loop works on the live dict

    def commit(self, values: dict[Any, Any], keys: list[Any]) -> None:
        written = set(keys)
        for key in written:
            self.check(values[key])
        if self.changed is not None:
            self.changed.update(written)

    def restore(self, entries: list[RawEntry]) -> None:
        for _, raw_key, raw_value in entries:
            key, value, expires = self.restored_value(raw_key, raw_value)
            self.entries[key] = value if expires is None else [value, expires]

    def snapshot(self, full: bool) -> Iterator[tuple[int, bytes, bytes | None]]:
        mp = self.backend.max_parallelism
        now = _now_ms()
        changed, keys = self.changed, None
        if not full and changed is not None:
            keys = list(changed)
        if changed is not None:
            self.changed = set()
        if keys is None and self.ttl_ms is None:  # the common full snapshot: one tight loop
            encode = self.codec.encode
            try:
                for key, value in self.entries.items():
                    yield stable_hash(key) % mp, encode_state(key), encode(value)
            except StateValueError as exc:
                raise self.unsupported(exc) from exc
            return
        for key in self.entries if keys is None else keys:
            entry = self.entries.get(key, _ABSENT)
            group = key_group_for(key, mp)
            if entry is _ABSENT:
                if keys is not None:
                    yield group, encode_state(key), None
            elif self.ttl_ms is None:
                yield group, encode_state(key), self.encode_value(entry, None)
            elif entry[1] > now:
                yield group, encode_state(key), self.encode_value(entry[0], entry[1])


class KeyedStateBackend:
    """All keyed state of one operator subtask; handles read the entry of :attr:`current_key`.

    Args:
        max_parallelism: the number of key groups.
        operator: the operator's name (for errors).
        store: a RocksDB database to keep entries in; ``None`` keeps them in dicts.
        track_changes: remember changed keys, so :meth:`snapshot` can write only those.
    """

    def __init__(
        self,
        max_parallelism: int,
        *,
        operator: str = "",
        store: RocksDBStore | None = None,
        track_changes: bool = False,
    ) -> None:
        self.max_parallelism = max_parallelism
        self.operator = operator
        self.store = store
        self.track_changes = track_changes
        self.current_key: Any = None
        self._tables: dict[str, StateTable] = {}
        self._restored: dict[str, list[RawEntry]] = {}

    def table(
        self,
        name: str,
        ttl: StateTtlConfig | None = None,
        serializer: VersionedSerializer[Any] | None = None,
        shape: str = "value",
    ) -> StateTable:
        """The table of state ``name`` (restored entries included).

        ``shape`` (``value``, ``list`` or ``map``) says what a descriptor's ``serializer`` writes.
        """
        table = self._tables.get(name)
        if table is None:
            codec = _ValueCodec(serializer, shape)
            if self.store is None:
                table = MemoryTable(self, name, ttl, codec)
            else:
                table = self.store.table(self, name, ttl, codec)
            table.restore(self._restored.pop(name, []))
            self._tables[name] = table
        return table

    def restore(self, keyed: dict[Any, dict[str, list[Any]]]) -> None:
        """Load the entries of the key groups this subtask owns: ``{key_group: {state: entries}}``."""
        for group, states in keyed.items():
            for name, entries in states.items():
                self._restored.setdefault(name, []).extend((int(group), k, v) for k, v in entries)

    def restore_files(self, sources: list[list[Path | bytes]], groups: range | None = None) -> None:
        """Load the entries of ``groups`` (all: ``None``) from keyed-state files (blocking).

        Each source is one old subtask's chain of files (a full one, then incremental ones), applied
        in order. On RocksDB the entries stream into the database, a chunk at a time.
        """
        chunks = (
            chunk for chain in sources for file in chain for chunk in read_chunks(file, groups)
        )
        if self.store is not None:
            self.store.restore_chunks(chunks)
            return
        merged: dict[str, dict[bytes, tuple[int, bytes | None]]] = {}
        for group, name, entries in chunks:
            table = merged.setdefault(name, {})
            for key, value in entries:
                table[key] = (group, value)
        for name, table in merged.items():
            restored = self._restored.setdefault(name, [])
            restored.extend((g, k, v) for k, (g, v) in table.items() if v is not None)

    def restored_entries(self, name: str) -> list[tuple[Any, Any]]:
        """Restored ``(key, value)`` of ``name`` for operators' own state (windows, timers)."""
        return [
            (decode_state(k), decode_state(v)) if type(k) is bytes else (_hashable(k), v)
            for _, k, v in self._restored.pop(name, [])
        ]

    def snapshot(self, full: bool = True) -> Iterable[Chunk]:
        """Entries as chunks of one key group and state: ``(key_group, state, [[key, value], ...])``.

        ``full`` takes every live entry; otherwise only those changed since the last snapshot
        (removed ones with value ``None``). State not claimed by a handle since the restore is
        written as it was restored. The snapshot is taken now; on RocksDB a full one is read
        lazily from a database snapshot, so it can be written on the pool while records go on.
        """
        groups: dict[tuple[int, str], list[list[Any]]] = {}
        if full:
            for name, entries in self._restored.items():
                for group, key, value in entries:
                    entry = [key, value]
                    if type(key) is not bytes:  # a 0.1 checkpoint: JSON values
                        entry = [encode_state(_hashable(key)), encode_state(value)]
                    groups.setdefault((group, name), []).append(entry)
        if self.store is not None and full:
            for table in self._tables.values():
                if table.changed is not None:
                    table.changed = set()  # this snapshot has them all
            ttls = {name: table.ttl_ms for name, table in self._tables.items()}
            rows = [(g, name, entries) for (g, name), entries in groups.items()]
            return itertools.chain(rows, self.store.snapshot_chunks(ttls))
        if self.store is not None:
            self.store.flush()
        for name, table in self._tables.items():
            for group, key, value in table.snapshot(full):
                groups.setdefault((group, name), []).append([key, value])
        return [(g, name, entries) for (g, name), entries in groups.items()]

    def close(self) -> None:
        """Release the database (if any)."""
        if self.store is not None:
            self.store.close()

    # -- handles ---------------------------------------------------------------------------
    def get_state(self, descriptor: Any) -> Any:
        """The handle for ``descriptor`` (value, list, map, reducing or aggregating)."""
        handle_type = _HANDLES.get(type(descriptor))
        if handle_type is None:
            raise ConfigurationError(f"unknown state descriptor {type(descriptor).__name__}")
        shape = _SHAPES.get(type(descriptor), "value")
        table = self.table(descriptor.name, descriptor.ttl, descriptor.serializer, shape)
        return handle_type(self, table, descriptor)


def encode_entries(
    entries: dict[str, list[tuple[Any, Any]]], max_parallelism: int
) -> dict[int, dict[str, list[list[bytes]]]]:
    """Operators' own keyed entries (windows, timers) in the shape of :meth:`KeyedStateBackend.snapshot`."""
    groups: dict[int, dict[str, list[list[bytes]]]] = {}
    for name, items in entries.items():
        for key, value in items:
            group = groups.setdefault(key_group_for(key, max_parallelism), {})
            group.setdefault(name, []).append([encode_state(key), encode_state(value)])
    return groups


class _Handle:
    __slots__ = ("_backend", "_descriptor", "_table")

    def __init__(self, backend: KeyedStateBackend, table: StateTable, descriptor: Any) -> None:
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
        self._table.check_item(value)
        self._table.store(self._backend.current_key, [*self.get(), value])

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
        self._table.check_item(value, key)
        m = self._map()
        m[key] = value
        self._table.store(self._backend.current_key, m)

    def remove(self, key: K) -> None:
        """Remove ``key`` from the current key's map."""
        m = self._map()
        m.pop(key, None)
        self._table.store(self._backend.current_key, m)

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

_SHAPES: dict[type, str] = {ListStateDescriptor: "list", MapStateDescriptor: "map"}
