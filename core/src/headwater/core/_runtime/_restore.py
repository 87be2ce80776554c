"""Loading a checkpoint and redistributing its state over the subtasks of the new job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from headwater.core._errors import CheckpointError
from headwater.core._graph import JobGraph, NodeKind
from headwater.core._keygroups import key_group_range

__all__ = ["RestoredJob", "redistribute"]


class RestoredJob:
    """The state of a checkpoint, spread over the subtasks of the job being started."""

    def __init__(self, metadata: dict[str, Any], path: Path | None) -> None:
        self.checkpoint_id: int = metadata["checkpoint_id"]
        self.metadata = metadata
        self.path = path

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
        old = [entry["subtasks"].get(str(i), {}) for i in range(entry["parallelism"])]
        if kind is NodeKind.REDUCE and entry.get("max_parallelism") != max_parallelism:
            raise CheckpointError(
                f"operator {uid}: checkpoint has max_parallelism {entry.get('max_parallelism')}, "
                f"the job {max_parallelism}; keyed state cannot be redistributed across that change"
            )
        return redistribute(old, subtask, parallelism, max_parallelism)


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
        owned = {str(kg) for kg in key_group_range(subtask, max_parallelism, parallelism)}
        result["keyed"] = {
            kg: entries
            for state in old
            for kg, entries in state.get("keyed", {}).items()
            if kg in owned
        }
    return result
