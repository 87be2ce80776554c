"""The split of a Kafka source (one partition) and the checkpointed state of its enumerator."""

from __future__ import annotations

from dataclasses import dataclass

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

ENUMERATOR_STATE_SERIALIZER: VersionedSerializer[EnumeratorState] = JsonSerializer(
    version=1,
    to_json=lambda s: {
        "assigned": sorted([t, p] for t, p in s.assigned),
        "initial_discovery_done": s.initial_discovery_done,
        "pending": [SPLIT_SERIALIZER.serialize(p).decode() for p in s.pending],
    },
    from_json=lambda _v, d: EnumeratorState(
        frozenset((str(t), int(p)) for t, p in d["assigned"]),
        bool(d["initial_discovery_done"]),
        tuple(SPLIT_SERIALIZER.deserialize(1, p.encode()) for p in d["pending"]),
    ),
)
"""Enumerator state in checkpoints, format 1."""
