"""Shards of Kinesis and DynamoDB streams as splits: positions, lineage, checkpoint formats.

Both services shard a stream the same way: a shard has at most two parents (a split has one, a
merge two), a closed shard ends (``NextShardIterator`` is ``None``) and its records come before
its children's records of the same key. The sources keep that order by reading a shard only
after all its known parents were read to their end.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from headwater.core import JsonSerializer, VersionedSerializer

__all__ = [
    "ENUMERATOR_STATE_SERIALIZER",
    "SPLIT_SERIALIZER",
    "EnumeratorState",
    "Shard",
    "ShardSplit",
    "StartingPosition",
]

PositionKind = Literal[
    "TRIM_HORIZON", "LATEST", "AT_TIMESTAMP", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"
]


@dataclass(frozen=True, slots=True)
class StartingPosition:
    """Where reading a shard starts (a ``ShardIteratorType`` and its argument).

    ``value`` is the sequence number for the ``*_SEQUENCE_NUMBER`` kinds and the timestamp in
    milliseconds (as a string) for ``AT_TIMESTAMP``.
    """

    kind: PositionKind
    value: str | None = None

    @classmethod
    def after(cls, sequence_number: str) -> StartingPosition:
        """Right after the record with ``sequence_number`` (how checkpoints resume)."""
        return cls("AFTER_SEQUENCE_NUMBER", sequence_number)


@dataclass(frozen=True, slots=True)
class Shard:
    """A shard as discovery lists it.

    Attributes:
        shard_id: the shard's id.
        parent_ids: its parents (``ParentShardId``, ``AdjacentParentShardId``), if any.
        hash_key_range: ``(starting, ending)`` hash keys, inclusive (Kinesis only).
    """

    shard_id: str
    parent_ids: tuple[str, ...] = ()
    hash_key_range: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class ShardSplit:
    """One shard of one stream and where to read it from. Checkpointed: keep the format compatible.

    Attributes:
        stream_arn: the stream.
        shard_id: the shard (the split id).
        starting_position: where the next read starts; in a checkpoint, right after the last
            record emitted.
        parent_ids: the shard's parents, read to their end before this split was assigned.
        hash_key_range: the shard's hash keys (for the assigner), if the service has them.
        finished: a marker kept in reader checkpoints: the shard was read to its end, and the
            enumerator may not know yet (it is told again after a restore).
    """

    stream_arn: str
    shard_id: str
    starting_position: StartingPosition
    parent_ids: tuple[str, ...] = ()
    hash_key_range: tuple[int, int] | None = None
    finished: bool = False

    @property
    def split_id(self) -> str:
        """The shard id."""
        return self.shard_id

    def resumed_after(self, sequence_number: str) -> ShardSplit:
        """A copy positioned right after ``sequence_number``."""
        return dataclasses.replace(self, starting_position=StartingPosition.after(sequence_number))


def _split_to_json(s: ShardSplit) -> dict[str, Any]:
    return {
        "stream": s.stream_arn,
        "shard": s.shard_id,
        "position": [s.starting_position.kind, s.starting_position.value],
        "parents": list(s.parent_ids),
        "hash_keys": None if s.hash_key_range is None else [str(k) for k in s.hash_key_range],
        "finished": s.finished,
    }


def _split_from_json(_version: int, d: dict[str, Any]) -> ShardSplit:
    hash_keys = d["hash_keys"]
    return ShardSplit(
        stream_arn=str(d["stream"]),
        shard_id=str(d["shard"]),
        starting_position=StartingPosition(d["position"][0], d["position"][1]),
        parent_ids=tuple(str(p) for p in d["parents"]),
        hash_key_range=None if hash_keys is None else (int(hash_keys[0]), int(hash_keys[1])),
        finished=bool(d["finished"]),
    )


SPLIT_SERIALIZER: VersionedSerializer[ShardSplit] = JsonSerializer(
    version=1, to_json=_split_to_json, from_json=_split_from_json
)
"""Splits in checkpoints, format 1 (a JSON object; hash keys as decimal strings)."""


@dataclass(frozen=True, slots=True)
class EnumeratorState:
    """What the enumerator checkpoints.

    Attributes:
        pending: splits discovered and not yet assigned (waiting for their parents or readers).
        assigned: ids of shards handed to readers and not yet read to their end (their positions
            are in reader state).
        finished: ids of shards read to their end (their children may be read).
        last_seen_shard_id: the greatest shard id discovered, where incremental discovery resumes.
        initial_discovery_done: shards discovered later are new and are read from their start.
    """

    pending: tuple[ShardSplit, ...] = ()
    assigned: frozenset[str] = frozenset()
    finished: frozenset[str] = frozenset()
    last_seen_shard_id: str | None = None
    initial_discovery_done: bool = False


ENUMERATOR_STATE_SERIALIZER: VersionedSerializer[EnumeratorState] = JsonSerializer(
    version=1,
    to_json=lambda s: {
        "pending": [_split_to_json(p) for p in s.pending],
        "assigned": sorted(s.assigned),
        "finished": sorted(s.finished),
        "last_seen": s.last_seen_shard_id,
        "initial_done": s.initial_discovery_done,
    },
    from_json=lambda v, d: EnumeratorState(
        pending=tuple(_split_from_json(v, p) for p in d["pending"]),
        assigned=frozenset(d["assigned"]),
        finished=frozenset(d["finished"]),
        last_seen_shard_id=d["last_seen"],
        initial_discovery_done=bool(d["initial_done"]),
    ),
)
"""Enumerator state in checkpoints, format 1."""
