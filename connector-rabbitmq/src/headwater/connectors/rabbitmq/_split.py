"""The split of a RabbitMQ source (one consumer of one queue) and its enumerator's state."""

from __future__ import annotations

from dataclasses import dataclass

from headwater.core import JsonSerializer, VersionedSerializer

__all__ = [
    "ENUMERATOR_STATE_SERIALIZER",
    "SPLIT_SERIALIZER",
    "EnumeratorState",
    "RabbitMQQueueSplit",
]


@dataclass(frozen=True, slots=True)
class RabbitMQQueueSplit:
    """One consumer of one queue, with the ids of the messages it has not acknowledged yet.

    A queue has no position: the broker keeps unacknowledged messages and redelivers them after a
    failure. What a checkpoint must keep is ``unacked_ids``: the ids of every message emitted (or
    dropped as a repeat) whose acknowledgement was not yet sent when the checkpoint was taken. A
    restored reader drops redeliveries carrying these ids (exactly-once). Empty under
    at-least-once. Checkpointed: keep the format backward compatible.
    """

    queue: str
    consumer: int = 0
    unacked_ids: tuple[str, ...] = ()

    @property
    def split_id(self) -> str:
        """``queue#consumer``."""
        return f"{self.queue}#{self.consumer}"


@dataclass(frozen=True, slots=True)
class EnumeratorState:
    """The splits not handed out yet (the others are in reader state)."""

    unassigned: tuple[RabbitMQQueueSplit, ...]


SPLIT_SERIALIZER: VersionedSerializer[RabbitMQQueueSplit] = JsonSerializer(
    version=1,
    to_json=lambda s: [s.queue, s.consumer, list(s.unacked_ids)],
    from_json=lambda _v, d: RabbitMQQueueSplit(str(d[0]), int(d[1]), tuple(map(str, d[2]))),
)
"""Splits in checkpoints, format 1: ``[queue, consumer, unacked_ids]``."""

ENUMERATOR_STATE_SERIALIZER: VersionedSerializer[EnumeratorState] = JsonSerializer(
    version=1,
    to_json=lambda s: [[u.queue, u.consumer, list(u.unacked_ids)] for u in s.unassigned],
    from_json=lambda _v, d: EnumeratorState(
        tuple(RabbitMQQueueSplit(str(q), int(c), tuple(map(str, ids))) for q, c, ids in d)
    ),
)
"""Enumerator state in checkpoints, format 1: the unassigned splits."""
