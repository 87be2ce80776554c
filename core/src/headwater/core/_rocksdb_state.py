"""Keyed state on disk: one embedded RocksDB database (rocksdict) per keyed operator subtask.

A state's entries are stored under ``state tag + key group + key`` (the tag is the state's name
with its length), values as the state codec's bytes (with an 8-byte expiry prefix under a TTL).
Writes are buffered and go to the database in one write batch; a record batch's reads of a running
``reduce`` are one multi-get. The database is a working copy: checkpoints hold the entries
themselves, so a restore rebuilds it (at any parallelism) and closing the subtask deletes it.
"""

from __future__ import annotations

import shutil
import struct
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from headwater.core import _state
from headwater.core._keygroups import key_group_for
from headwater.core._state import (
    _ABSENT,
    KeyedStateBackend,
    RawEntry,
    StateTable,
    StateTtlConfig,
    _ValueCodec,
)
from headwater.core._state_codec import encode_state
from headwater.core._state_files import Chunk
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteOptions

__all__ = ["RocksDBStore", "RocksDBTable"]

_GROUP = struct.Struct(">H")
_EXPIRY = struct.Struct(">q")
_FLUSH_AT = 4096
"""Buffered writes that trigger a write batch."""
_WRITE_BUFFER = 16 << 20
"""Bytes of one memtable (two at most per database)."""
_BLOCK_CACHE = 16 << 20
"""Bytes of the database's block cache."""


def _options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(_WRITE_BUFFER)
    options.set_max_write_buffer_number(2)
    table = BlockBasedOptions()
    table.set_block_cache(Cache(_BLOCK_CACHE))
    table.set_bloom_filter(10, False)
    options.set_block_based_table_factory(table)
    return options


class RocksDBStore:
    """The database of one operator subtask, in a fresh directory under ``root``."""

    def __init__(self, root: Path, label: str) -> None:
        self.path = root / f"{label}-{uuid.uuid4().hex[:12]}"
        self.path.mkdir(parents=True, exist_ok=True)
        self.db: Any = Rdict(str(self.path), options=_options())  # rocksdict's stubs are loose
        # No write-ahead log: the database is a working copy that checkpoints, not RocksDB,
        # make durable (a restore rebuilds it).
        write_options = WriteOptions()
        write_options.disable_wal = True  # type: ignore[assignment,method-assign] # a property at run time
        self.db.set_write_options(write_options)
        self.pending: dict[bytes, bytes | None] = {}

    def table(
        self, backend: KeyedStateBackend, name: str, ttl: StateTtlConfig | None, codec: _ValueCodec
    ) -> RocksDBTable:
        """The table of state ``name``."""
        return RocksDBTable(backend, name, ttl, codec, self)

    def read(self, key: bytes) -> bytes | None:
        """The stored bytes of ``key`` (buffered writes first)."""
        if key in self.pending:
            return self.pending[key]
        value: bytes | None = self.db.get(key)
        return value

    def read_many(self, keys: list[bytes]) -> list[bytes | None]:
        """:meth:`read` of many keys in one multi-get."""
        pending = self.pending
        missing = [k for k in keys if k not in pending]
        found = dict(zip(missing, self.db.get(missing), strict=True)) if missing else {}
        return [pending[k] if k in pending else found[k] for k in keys]

    def write(self, key: bytes, value: bytes | None) -> None:
        """Buffer a write (``None`` deletes)."""
        self.pending[key] = value
        if len(self.pending) >= _FLUSH_AT:
            self.flush()

    def write_many(self, items: list[tuple[bytes, bytes]]) -> None:
        """Write ``items`` in one write batch, after the buffered writes."""
        self.flush()
        batch = WriteBatch(raw_mode=True)
        put = batch.put
        for key, value in items:
            put(key, value)
        self.db.write(batch)

    def flush(self) -> None:
        """Send buffered writes in one write batch."""
        if not self.pending:
            return
        batch = WriteBatch(raw_mode=True)
        for key, value in self.pending.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self.db.write(batch)
        self.pending = {}

    def snapshot_chunks(self, ttl_ms: dict[str, int | None]) -> Iterator[Chunk]:
        """Every stored entry, as of now, read lazily from a database snapshot.

        The snapshot is taken at once; the returned iterator may be consumed on another thread
        while the operator goes on writing. Entries of a state in ``ttl_ms`` with a TTL that have
        expired are left out.
        """
        self.flush()
        return _snapshot_chunks(self.db.snapshot(), ttl_ms, _state._now_ms())

    def restore_chunks(self, chunks: Iterable[Chunk]) -> None:
        """Write restored chunks (``None`` values delete), one write batch per chunk."""
        self.flush()
        for group, name, entries in chunks:
            prefix = _tag(name) + _GROUP.pack(group)
            batch = WriteBatch(raw_mode=True)
            for key, value in entries:
                if value is None:
                    batch.delete(prefix + key)
                else:
                    batch.put(prefix + key, value)
            self.db.write(batch)

    def close(self) -> None:
        """Close and delete the database."""
        self.pending = {}
        self.db.close()
        shutil.rmtree(self.path, ignore_errors=True)


class RocksDBTable(StateTable):
    """The entries of one state in a :class:`RocksDBStore`."""

    def __init__(
        self,
        backend: KeyedStateBackend,
        name: str,
        ttl: StateTtlConfig | None,
        codec: _ValueCodec,
        store: RocksDBStore,
    ) -> None:
        super().__init__(backend, name, ttl, codec)
        self._db = store
        self.tag = _tag(name)
        self._batch_keys: dict[Any, bytes] = {}
        """The keys of the batch between :meth:`batch` and :meth:`commit`, with their db keys."""

    def _key(self, key: Any) -> bytes:
        group = key_group_for(key, self.backend.max_parallelism)
        return self.tag + _GROUP.pack(group) + encode_state(key)

    def _write(self, db_key: bytes, value: bytes | None) -> None:
        self._db.write(db_key, value)
        if self.changed is not None:
            self.changed.add(db_key)

    def _live(self, db_key: bytes, data: bytes | None) -> Any:
        if data is None:
            return _ABSENT
        value, expires = self.decode_value(data)
        if expires is None:
            return value
        now = _state._now_ms()
        if expires <= now:
            self._write(db_key, None)
            return _ABSENT
        if self.update_on_read:
            self._write(db_key, _EXPIRY.pack(now + (self.ttl_ms or 0)) + data[8:])
        return value

    def get(self, key: Any) -> Any:
        db_key = self._key(key)
        return self._live(db_key, self._db.read(db_key))

    def store(self, key: Any, value: Any) -> None:
        expires = None if self.ttl_ms is None else _state._now_ms() + self.ttl_ms
        self._write(self._key(key), self.encode_value(value, expires))

    def remove(self, key: Any) -> None:
        self._write(self._key(key), None)

    def batch(self, keys: list[Any]) -> dict[Any, Any]:
        db_keys = self._batch_keys = {k: self._key(k) for k in keys}
        values: dict[Any, Any] = {}
        found = self._db.read_many(list(db_keys.values()))
        for (key, db_key), data in zip(db_keys.items(), found, strict=True):
            if data is not None:
                value = self._live(db_key, data)
                if value is not _ABSENT:
                    values[key] = value
        return values

    def commit(self, values: dict[Any, Any], keys: list[Any]) -> None:
        expires = None if self.ttl_ms is None else _state._now_ms() + self.ttl_ms
        encode = self.encode_value
        items = [(db_key, encode(values[key], expires)) for key, db_key in self._batch_keys.items()]
        self._batch_keys = {}
        self._db.write_many(items)
        if self.changed is not None:
            self.changed.update(db_key for db_key, _ in items)

    def restore(self, entries: list[RawEntry]) -> None:
        for group, raw_key, raw_value in entries:
            if type(raw_key) is bytes:
                self._write(self.tag + _GROUP.pack(group) + raw_key, raw_value)
            else:  # a 0.1 checkpoint: JSON values
                key, value, expires = self.restored_value(raw_key, raw_value)
                self._write(self._key(key), self.encode_value(value, expires))

    def snapshot(self, full: bool) -> Iterator[tuple[int, bytes, bytes | None]]:
        """The entries changed since the last snapshot (a full one is :meth:`RocksDBStore.snapshot_chunks`)."""
        if full:
            raise ValueError("a full snapshot of RocksDB state is RocksDBStore.snapshot_chunks()")
        offset = len(self.tag)
        changed = self.changed or set()
        self.changed = set() if self.changed is not None else None
        self._db.flush()
        keys = list(changed)
        now = _state._now_ms()
        for db_key, data in zip(keys, self._db.db.get(keys), strict=True):
            group = _GROUP.unpack_from(db_key, offset)[0]
            expired = (
                data is not None and self.ttl_ms is not None and _EXPIRY.unpack_from(data)[0] <= now
            )
            yield group, db_key[offset + 2 :], None if expired else data


def _tag(name: str) -> bytes:
    """The prefix of state ``name``'s keys: its length, then its UTF-8 bytes."""
    encoded = name.encode()
    return struct.pack(">H", len(encoded)) + encoded


_CHUNK = 4096
"""Entries per chunk of a full snapshot."""


def _snapshot_chunks(snapshot: Any, ttl_ms: dict[str, int | None], now: int) -> Iterator[Chunk]:
    tag = b""
    name = ""
    ttl: int | None = None
    group = -1
    entries: list[list[Any]] = []
    for db_key, data in snapshot.items():
        if not db_key.startswith(tag) or not tag:
            if entries:
                yield group, name, entries
                entries = []
            size = _GROUP.unpack_from(db_key)[0]
            tag = db_key[: 2 + size]
            name = tag[2:].decode()
            ttl = ttl_ms.get(name)
            group = -1
        offset = len(tag)
        key_group = _GROUP.unpack_from(db_key, offset)[0]
        if key_group != group or len(entries) >= _CHUNK:
            if entries:
                yield group, name, entries
                entries = []
            group = key_group
        if ttl is not None and _EXPIRY.unpack_from(data)[0] <= now:
            continue
        entries.append([db_key[offset + 2 :], data])
    if entries:
        yield group, name, entries
