"""The split of a {{title}} source (one partition, from a position) and the checkpointed states.

Splits and enumerator states are checkpointed: their serializers are versioned. When a field is
added, raise the version and give a migration from the old JSON (``dataclass_serializer``).
"""

from __future__ import annotations

from dataclasses import dataclass

from headwater.connectors.base import DataclassSerializer, dataclass_serializer

__all__ = [
    "ENUMERATOR_STATE_SERIALIZER",
    "SPLIT_SERIALIZER",
    "{{class_prefix}}EnumeratorState",
    "{{class_prefix}}Split",
    "{{class_prefix}}SplitState",
]


@dataclass(frozen=True, slots=True)
class {{class_prefix}}Split:
    """One partition of a log, read from ``position`` (to ``stop`` when the source is bounded)."""

    log: str
    partition: int
    position: int = 0
    """The position of the next record to read."""
    stop: int | None = None
    """Where a bounded read ends (``None``: never)."""

    @property
    def split_id(self) -> str:
        """``log-partition``."""
        return f"{self.log}-{self.partition}"


@dataclass(slots=True)
class {{class_prefix}}SplitState:
    """A split being read: the position after the last record emitted."""

    split: {{class_prefix}}Split
    position: int


@dataclass(frozen=True, slots=True)
class {{class_prefix}}EnumeratorState:
    """The enumerator's checkpoint: splits not handed out yet and partitions already assigned."""

    pending: tuple[{{class_prefix}}Split, ...] = ()
    assigned: tuple[int, ...] = ()
    discovered: bool = False


SPLIT_SERIALIZER: DataclassSerializer[{{class_prefix}}Split] = dataclass_serializer(
    {{class_prefix}}Split, version=1
)
"""Splits in checkpoints (format 1)."""
ENUMERATOR_STATE_SERIALIZER: DataclassSerializer[{{class_prefix}}EnumeratorState] = (
    dataclass_serializer({{class_prefix}}EnumeratorState, version=1)
)
"""Enumerator states in checkpoints (format 1)."""
