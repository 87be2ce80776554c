"""Rolling policies: when a part file is closed and a new one started.

Bulk formats (Parquet, Avro) roll at every checkpoint whatever the policy says: their files are
only valid once closed. Row formats can also roll by size, age and inactivity, so a part file can
span checkpoints (its length travels in the checkpoint).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import timedelta

from headwater.core import ConfigurationError

__all__ = ["DefaultRollingPolicy", "OnCheckpointRollingPolicy", "PartFileInfo", "RollingPolicy"]


@dataclass(frozen=True, slots=True)
class PartFileInfo:
    """What a rolling policy knows about the open part file of a bucket."""

    bucket: str
    size: int
    """Bytes written so far."""
    created_ms: int
    """When it was opened (wall clock, ms)."""
    last_updated_ms: int
    """When records were last written into it (wall clock, ms)."""


class RollingPolicy(ABC):
    """Decides when to close the open part file of a bucket."""

    @abstractmethod
    def should_roll_on_checkpoint(self, part: PartFileInfo) -> bool:
        """Close the file at this checkpoint (it is then committed when the checkpoint completes)."""

    @abstractmethod
    def should_roll_on_event(self, part: PartFileInfo) -> bool:
        """Close the file after the records just written (checked once per batch)."""

    @abstractmethod
    def should_roll_on_processing_time(self, part: PartFileInfo, now_ms: int) -> bool:
        """Close the file because of its age or inactivity (checked per batch and checkpoint)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DefaultRollingPolicy(RollingPolicy):
    """Roll by size, age and inactivity (Flink's ``DefaultRollingPolicy``).

    Args:
        max_part_size: roll when a file reaches this many bytes.
        rollover_interval: roll a file this long after it was opened.
        inactivity_interval: roll a file that got no records for this long.
    """

    max_part_size: int = 128 * 1024 * 1024
    rollover_interval: timedelta = timedelta(minutes=1)
    inactivity_interval: timedelta = timedelta(minutes=1)

    def __post_init__(self) -> None:
        if self.max_part_size <= 0:
            raise ConfigurationError("DefaultRollingPolicy: max_part_size must be positive")
        for name in ("rollover_interval", "inactivity_interval"):
            if getattr(self, name) <= timedelta(0):
                raise ConfigurationError(f"DefaultRollingPolicy: {name} must be positive")

    def should_roll_on_checkpoint(self, part: PartFileInfo) -> bool:
        """Only when the file is already full."""
        return part.size >= self.max_part_size

    def should_roll_on_event(self, part: PartFileInfo) -> bool:
        """When the file is full."""
        return part.size >= self.max_part_size

    def should_roll_on_processing_time(self, part: PartFileInfo, now_ms: int) -> bool:
        """When the file is old enough or idle long enough."""
        return now_ms - part.created_ms >= self.rollover_interval / timedelta(
            milliseconds=1
        ) or now_ms - part.last_updated_ms >= self.inactivity_interval / timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class OnCheckpointRollingPolicy(RollingPolicy):
    """Roll at every checkpoint (and only then): one file per bucket and checkpoint."""

    def should_roll_on_checkpoint(self, part: PartFileInfo) -> bool:
        """Always."""
        return True

    def should_roll_on_event(self, part: PartFileInfo) -> bool:
        """Never."""
        return False

    def should_roll_on_processing_time(self, part: PartFileInfo, now_ms: int) -> bool:
        """Never."""
        return False
