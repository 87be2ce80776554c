"""The split of a Kafka source (one partition) and the checkpointed state of its enumerator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from headwater.core import JsonSerializer, VersionedSerializer

__all__ = [
    "ENUMERATOR_STATE_SERIALIZER",
    "NO_STOPPING_OFFSET",
    "SPLIT_SERIALIZER",
    "EnumeratorState",
    "KafkaPartitionSplit",
]

NO_STOPPING_OFFSET = -1
"""The stopping offset of a split that is read forever."""


@dataclass(frozen=True, slots=True)
class KafkaPartitionSplit:
    """One partition and the range of offsets to read: ``[starting_offset, stopping_offset)``.

    ``starting_offset`` is the next offset to read (in a checkpoint: the first record not yet
    emitted). ``stopping_offset`` is exclusive, or :data:`NO_STOPPING_OFFSET`. Checkpointed: keep
    the format backward compatible (bump the serializer version and read the old one).
    """

    topic: str
    partition: int
    starting_offset: int
    stopping_offset: int = NO_STOPPING_OFFSET

    @property
    def split_id(self) -> str:
        """``topic-partition``, as Kafka names partitions."""
        return f"{self.topic}-{self.partition}"

    @property
    def bounded(self) -> bool:
        """Whether the split has a stopping offset."""
        return self.stopping_offset != NO_STOPPING_OFFSET


@dataclass(frozen=True, slots=True)
class EnumeratorState:
    """What the enumerator checkpoints.

    Attributes:
        assigned: the partitions handed out to readers (their positions are in reader state).
        initial_discovery_done: partitions found after the first discovery are new and start at
            their earliest offset.
        pending: splits found but not yet handed out (their reader has not registered).
    """

    assigned: frozenset[tuple[str, int]]
    initial_discovery_done: bool
    pending: tuple[KafkaPartitionSplit, ...] = ()


SPLIT_SERIALIZER: VersionedSerializer[KafkaPartitionSplit] = JsonSerializer(
    version=1,
    to_json=lambda s: [s.topic, s.partition, s.starting_offset, s.stopping_offset],
    from_json=lambda _v, d: KafkaPartitionSplit(str(d[0]), int(d[1]), int(d[2]), int(d[3])),
)
"""Splits in checkpoints, format 1: ``[topic, partition, starting_offset, stopping_offset]``."""


def _enumerator_state_to_json(state: EnumeratorState) -> dict[str, Any]:
    return {
        "assigned": sorted([t, p] for t, p in state.assigned),
        "initial_discovery_done": state.initial_discovery_done,
        "split_version": SPLIT_SERIALIZER.version,
        "pending": [SPLIT_SERIALIZER.serialize(p).decode() for p in state.pending],
    }


def _enumerator_state_from_json(version: int, data: dict[str, Any]) -> EnumeratorState:
    # Format 1 did not record its splits' version: they were written in split format 1.
    split_version = int(data["split_version"]) if version >= 2 else 1
    return EnumeratorState(
        frozenset((str(t), int(p)) for t, p in data["assigned"]),
        bool(data["initial_discovery_done"]),
        tuple(SPLIT_SERIALIZER.deserialize(split_version, p.encode()) for p in data["pending"]),
    )


ENUMERATOR_STATE_SERIALIZER: VersionedSerializer[EnumeratorState] = JsonSerializer(
    version=2, to_json=_enumerator_state_to_json, from_json=_enumerator_state_from_json
)
"""Enumerator state in checkpoints, format 2: ``assigned``, ``initial_discovery_done``, and the
pending splits with the split format they were written in (``split_version``); format 1 (no
``split_version``, splits in split format 1) is read too."""
