"""Loading a checkpoint and redistributing its state over the subtasks of the new job."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from headwater.core._errors import CheckpointError, SerializationError
from headwater.core._graph import JobGraph, NodeKind
from headwater.core._keygroups import key_group_range
from headwater.core._runtime._storage import SHARED_DIR
from headwater.core._state_codec import decode_state

__all__ = ["RestoredJob", "decode_subtask_state", "redistribute"]


class RestoredJob:
    """The state of a checkpoint, spread over the subtasks of the job being started."""

    def __init__(self, metadata: dict[str, Any], path: Path | None) -> None:
        self.checkpoint_id: int = metadata["checkpoint_id"]
        self.metadata = metadata
        self.path = path
        self._decoded: dict[str, list[dict[str, Any]]] = {}

    def enumerator_state(self, uid: str) -> dict[str, Any] | None:
        """The serialized enumerator state of the source ``uid``."""
        blob: dict[str, Any] | None = self.metadata["enumerators"].get(uid)
        return blob

    def check_operators(self, graph: JobGraph, allow_non_restored: bool) -> None:
        """Refuse state for operators the job no longer has (unless allowed)."""
        known = {t.operator_uid for v in graph.vertices for t in v.chain}
        unknown = sorted(set(self.metadata["operators"]) - known)
        if unknown and not allow_non_restored:
            names = ", ".join(
                f"{uid} ({self.metadata['operators'][uid]['name']})" for uid in unknown
            )
            raise CheckpointError(
                f"checkpoint {self.checkpoint_id} has state for operators this job does not have: "
                f"{names}. Give operators stable uid()s, or set allow_non_restored_state=True"
            )

    def subtask_state(
        self, uid: str, kind: NodeKind, subtask: int, parallelism: int, max_parallelism: int
    ) -> dict[str, Any] | None:
        """The state subtask ``subtask`` of ``parallelism`` gets for operator ``uid``."""
        entry = self.metadata["operators"].get(uid)
        if entry is None:
            return None
        old = self.subtask_states(uid, entry)
        keyed = any("keyed" in state for state in old)
        if keyed and entry.get("max_parallelism") != max_parallelism:
            raise CheckpointError(
                f"operator {uid} ({entry['name']}): checkpoint has max_parallelism "
                f"{entry.get('max_parallelism')}, the job {max_parallelism}; keyed state is "
                f"spread over max_parallelism key groups and cannot be redistributed across "
                f"that change (set the job's max_parallelism to {entry.get('max_parallelism')})"
            )
        result = redistribute(old, subtask, parallelism, max_parallelism)
        if keyed:
            owned = key_group_range(subtask, max_parallelism, parallelism)
            sources = [
                self.keyed_files(state)
                for i, state in enumerate(old)
                if _overlap(key_group_range(i, max_parallelism, len(old)), owned)
            ]
            if any(sources):
                result["keyed_sources"] = [chain for chain in sources if chain]
        return result

    def keyed_files(self, state: dict[str, Any]) -> list[Path | bytes]:
        """The keyed-state files of one old subtask's state, in the order they apply."""
        if "keyed_blob" in state:
            return [state["keyed_blob"]]
        if "keyed_file" in state or "keyed_files" in state:
            if self.path is None:
                raise CheckpointError(
                    f"checkpoint {self.checkpoint_id}: keyed state files, but no checkpoint directory"
                )
            directory = self.path if self.path.is_dir() else self.path.parent
            if "keyed_file" in state:
                return [directory / state["keyed_file"]]
            return [directory.parent / SHARED_DIR / name for name in state["keyed_files"]]
        return []

    def subtask_states(self, uid: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
        """The states of the checkpoint's subtasks of ``uid``, decoded (once per operator)."""
        states = self._decoded.get(uid)
        if states is None:
            raw = [entry["subtasks"].get(str(i), {}) for i in range(entry["parallelism"])]
            try:
                states = [decode_subtask_state(state) for state in raw]
            except (SerializationError, ValueError) as exc:
                raise CheckpointError(
                    f"checkpoint {self.checkpoint_id}: the state of operator {uid} "
                    f"({entry['name']}) cannot be restored: {exc}"
                ) from exc
            self._decoded[uid] = states
        return states


def _overlap(a: range, b: range) -> bool:
    return a.start < b.stop and b.start < a.stop


def decode_subtask_state(state: Any) -> dict[str, Any]:
    """One subtask's state: JSON values (format 1), or the state codec's bytes (format 2).

    Keyed state tables of format 2 are in keyed-state files (``keyed_file``, ``keyed_files``) or
    their bytes (``keyed_blob``): see :meth:`RestoredJob.keyed_files`.
    """
    if isinstance(state, dict):
        return state  # format 1
    decoded: dict[str, Any] = decode_state(base64.b64decode(state))
    return decoded


def redistribute(
    old: list[dict[str, Any]], subtask: int, parallelism: int, max_parallelism: int
) -> dict[str, Any]:
    """Spread the per-subtask states ``old`` over ``parallelism`` subtasks; the share of ``subtask``.

    List-like entries (splits, list state, writer state, committables) keep their subtask when the
    parallelism is unchanged and are dealt round-robin otherwise; union list state goes whole to
    every subtask; keyed state goes by key-group range.
    """
    same = len(old) == parallelism
    result: dict[str, Any] = {}

    def deal(items: list[Any]) -> list[Any]:
        return items[subtask::parallelism]

    for key in ("splits", "writer", "committables"):
        if same:
            if key in old[subtask]:
                result[key] = old[subtask][key]
        else:
            merged = [item for state in old for item in state.get(key, [])]
            if merged:
                result[key] = deal(merged)
    names = {name for state in old for name in state.get("list", {})}
    if names:
        result["list"] = {
            name: old[subtask].get("list", {}).get(name, [])
            if same
            else deal([i for state in old for i in state.get("list", {}).get(name, [])])
            for name in names
        }
    union_names = {name for state in old for name in state.get("union", {})}
    if union_names:
        result["union"] = {
            name: [i for state in old for i in state.get("union", {}).get(name, [])]
            for name in union_names
        }
    broadcast = next((state["broadcast"] for state in old if "broadcast" in state), None)
    if broadcast is not None:
        result["broadcast"] = broadcast  # identical in every subtask: any copy serves all
    if any("keyed" in state for state in old):
        owned = key_group_range(subtask, max_parallelism, parallelism)
        result["keyed"] = {
            int(kg): entries
            for state in old
            for kg, entries in state.get("keyed", {}).items()
            if int(kg) in owned
        }
    return result
