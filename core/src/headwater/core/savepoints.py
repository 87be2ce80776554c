"""Reading the state of a checkpoint or savepoint as Python values (without running the job).

::

    from headwater.core.savepoints import read_checkpoint

    savepoint = read_checkpoint("/savepoints/sp-1")
    for operator in savepoint.operators():
        print(operator.uid, operator.name, operator.parallelism)
    totals = dict(savepoint.keyed_state("totals", ValueStateDescriptor("total")))
    splits = [s for state in savepoint.operator_state("source") for s in state.get("splits", [])]

Keyed state is read from its files a chunk at a time, so reading it takes little memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headwater.core import _state
from headwater.core._errors import CheckpointError
from headwater.core._runtime._restore import RestoredJob
from headwater.core._runtime._storage import read_metadata
from headwater.core._state import _SHAPES, KeyedStateBackend, StateTable
from headwater.core._state_codec import decode_state
from headwater.core._state_files import read_chunks

__all__ = ["CheckpointReader", "OperatorInfo", "read_checkpoint"]


@dataclass(frozen=True)
class OperatorInfo:
    """An operator with state in a checkpoint.

    Args:
        uid: the operator's uid (how a restore matches it).
        name: the operator's name.
        parallelism: how many subtasks wrote its state.
        max_parallelism: the number of key groups of its keyed state.
    """

    uid: str
    name: str
    parallelism: int
    max_parallelism: int | None


class CheckpointReader:
    """The state of one checkpoint or savepoint (use :func:`read_checkpoint`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._job = RestoredJob(read_metadata(path), path)
        metadata = self._job.metadata
        self.checkpoint_id: int = metadata["checkpoint_id"]
        """The checkpoint's id."""
        self.kind: str = metadata.get("kind", "checkpoint")
        """``checkpoint``, ``savepoint`` or ``final``."""
        self.job_name: str = metadata.get("job_name", "")
        """The name of the job that took it."""

    def operators(self) -> list[OperatorInfo]:
        """The operators with state, in the order the checkpoint lists them."""
        return [
            OperatorInfo(uid, entry["name"], entry["parallelism"], entry.get("max_parallelism"))
            for uid, entry in self._job.metadata["operators"].items()
        ]

    def operator_state(self, uid: str) -> list[dict[str, Any]]:
        """Operator ``uid``'s state per subtask, without its keyed state tables.

        Each dict may hold ``splits`` (a source's serialized splits), ``list`` and ``union``
        (operator list states by name), ``broadcast``, ``writer`` and ``committables`` (a
        sink's), and ``keyed`` (windows and timers by key group).
        """
        return [
            {k: v for k, v in state.items() if k not in _KEYED_FILES} for state in self._states(uid)
        ]

    def keyed_state(self, uid: str, state: Any) -> Iterator[tuple[Any, Any]]:
        """``(key, value)`` of keyed state ``state`` of operator ``uid``, read a chunk at a time.

        ``state`` is the state's descriptor (whose TTL and serializer say how its values are
        stored) or its name (values written by the state codec, without a TTL). A running
        ``reduce`` keeps its values in state ``"reduce"``. Expired entries are left out. The
        entries of a chain of incremental files are merged in memory (one state's at a time);
        those of a full checkpoint or a savepoint are streamed.
        """
        table = _table(state)
        now = _state._now_ms()
        for old in self._states(uid):
            for states in old.get("keyed", {}).values():
                for raw_key, raw_value in states.get(table.name, []):
                    key, value, expires = table.restored_value(raw_key, raw_value)
                    if expires is None or expires > now:
                        yield key, value
            files = self._job.keyed_files(old)
            chunks = (c for file in files for c in read_chunks(file) if c[1] == table.name)
            if len(files) == 1:  # a full file: every key once
                for _, _, entries in chunks:
                    yield from _decoded(table, entries, now)
            else:
                merged: dict[bytes, bytes | None] = {}
                for _, _, entries in chunks:
                    merged.update((k, v) for k, v in entries)
                yield from _decoded(table, merged.items(), now)

    def keyed_entry_count(self, uid: str) -> int:
        """How many keyed entries (of every state, windows and timers included) ``uid`` has."""
        count = 0
        for old in self._states(uid):
            count += sum(
                len(e) for states in old.get("keyed", {}).values() for e in states.values()
            )
            files = self._job.keyed_files(old)
            if len(files) == 1:  # a full file: every key once
                count += sum(len(entries) for file in files for _, _, entries in read_chunks(file))
                continue
            live: dict[tuple[str, bytes], bool] = {}
            for file in files:
                for _, name, entries in read_chunks(file):
                    live.update(((name, k), v is not None) for k, v in entries)
            count += sum(live.values())
        return count

    def state_bytes(self, uid: str) -> int:
        """How many bytes operator ``uid``'s state takes: its metadata entries and keyed files."""
        entry = self._job.metadata["operators"].get(uid)
        if entry is None:
            raise CheckpointError(f"checkpoint {self.checkpoint_id} has no operator {uid!r}")
        size = 0
        for raw in entry["subtasks"].values():
            size += len(raw) * 3 // 4 if isinstance(raw, str) else len(json.dumps(raw))
        seen: set[Path] = set()
        for old in self._states(uid):
            for file in self._job.keyed_files(old):
                if isinstance(file, bytes):
                    size += len(file)
                elif file not in seen and file.exists():
                    seen.add(file)
                    size += file.stat().st_size
        return size

    def _states(self, uid: str) -> list[dict[str, Any]]:
        entry = self._job.metadata["operators"].get(uid)
        if entry is None:
            raise CheckpointError(f"checkpoint {self.checkpoint_id} has no operator {uid!r}")
        return self._job.subtask_states(uid, entry)


_KEYED_FILES = ("keyed_file", "keyed_files", "keyed_blob")


def _table(state: Any) -> StateTable:
    """A table that decodes the values of ``state`` (a descriptor or a name) as it stores them."""
    if isinstance(state, str):
        return KeyedStateBackend(1).table(state)
    shape = _SHAPES.get(type(state), "value")
    return KeyedStateBackend(1).table(state.name, state.ttl, state.serializer, shape)


def _decoded(
    table: StateTable, entries: Iterable[Sequence[Any]], now: int
) -> Iterator[tuple[Any, Any]]:
    for raw_key, raw_value in entries:
        if raw_value is not None:
            value, expires = table.decode_value(raw_value)
            if expires is None or expires > now:
                yield decode_state(raw_key), value


def read_checkpoint(path: str | Path) -> CheckpointReader:
    """The state of the checkpoint or savepoint at ``path`` (its directory or its metadata file)."""
    return CheckpointReader(Path(path))
