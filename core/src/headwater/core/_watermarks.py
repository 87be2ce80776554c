"""Watermark strategies: how event timestamps are read and watermarks generated at a source."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, Protocol, TypeVar

from headwater.core._errors import ConfigurationError

__all__ = ["WatermarkAlignment", "WatermarkGenerator", "WatermarkStrategy"]

T = TypeVar("T")

MIN_WATERMARK = -(2**63)
"""The watermark before any event."""


class WatermarkGenerator(Protocol):
    """Tracks event timestamps of one source output and proposes watermarks."""

    def on_events(self, max_timestamp: int, /) -> None:
        """A batch whose largest event timestamp is ``max_timestamp`` was emitted."""
        ...

    def current_watermark(self) -> int | None:
        """The watermark to emit now (``None``: nothing yet)."""
        ...


class _BoundedOutOfOrderness:
    __slots__ = ("_delay_ms", "_max")

    def __init__(self, delay_ms: int) -> None:
        self._delay_ms = delay_ms
        self._max: int | None = None

    def on_events(self, max_timestamp: int, /) -> None:
        if self._max is None or max_timestamp > self._max:
            self._max = max_timestamp

    def current_watermark(self) -> int | None:
        return None if self._max is None else self._max - self._delay_ms - 1


@dataclass(frozen=True)
class WatermarkAlignment:
    """Sources in one group may not run further ahead than ``max_drift`` of the slowest."""

    group: str
    max_drift: timedelta
    update_interval: timedelta


class WatermarkStrategy(Generic[T]):
    """How a source assigns event timestamps and generates watermarks.

    Use the constructors :meth:`no_watermarks`, :meth:`for_monotonous_timestamps` and
    :meth:`for_bounded_out_of_orderness`, then :meth:`with_timestamp_assigner`,
    :meth:`with_idleness` and :meth:`with_watermark_alignment`.
    """

    def __init__(
        self,
        generator_factory: Callable[[], WatermarkGenerator] | None,
        timestamp_assigner: Callable[[T, int | None], int] | None = None,
        emit_interval: timedelta = timedelta(milliseconds=200),
        idle_timeout: timedelta | None = None,
        alignment: WatermarkAlignment | None = None,
    ) -> None:
        if emit_interval <= timedelta(0):
            raise ConfigurationError("watermark strategy: emit_interval must be positive")
        if idle_timeout is not None and idle_timeout <= timedelta(0):
            raise ConfigurationError("watermark strategy: idle_timeout must be positive")
        self.generator_factory = generator_factory
        self.timestamp_assigner = timestamp_assigner
        self.emit_interval = emit_interval
        self.idle_timeout = idle_timeout
        self.alignment = alignment

    def _with(self, **changes: Any) -> WatermarkStrategy[T]:
        strategy: WatermarkStrategy[T] = copy.copy(self)
        for name, value in changes.items():
            setattr(strategy, name, value)
        return strategy

    @classmethod
    def no_watermarks(cls) -> WatermarkStrategy[Any]:
        """Records keep whatever timestamps the source gives them; no watermarks are generated."""
        return cls(None)

    @classmethod
    def for_monotonous_timestamps(cls) -> WatermarkStrategy[Any]:
        """Timestamps never decrease: the watermark follows the largest timestamp seen."""
        return cls(lambda: _BoundedOutOfOrderness(0))

    @classmethod
    def for_bounded_out_of_orderness(cls, max_delay: timedelta) -> WatermarkStrategy[Any]:
        """Records arrive at most ``max_delay`` later than records with larger timestamps."""
        if max_delay < timedelta(0):
            raise ConfigurationError("watermark strategy: max_delay must be >= 0")
        delay_ms = int(max_delay.total_seconds() * 1000)
        return cls(lambda: _BoundedOutOfOrderness(delay_ms))

    def with_timestamp_assigner(
        self, assigner: Callable[[T, int | None], int]
    ) -> WatermarkStrategy[T]:
        """Read each record's event timestamp (ms) with ``assigner(record, source_timestamp)``."""
        return self._with(timestamp_assigner=assigner)

    def with_emit_interval(self, interval: timedelta) -> WatermarkStrategy[T]:
        """Emit watermarks at most every ``interval`` (default 200 ms)."""
        if interval <= timedelta(0):
            raise ConfigurationError("watermark strategy: emit_interval must be positive")
        return self._with(emit_interval=interval)

    def with_idleness(self, timeout: timedelta) -> WatermarkStrategy[T]:
        """A split (or reader) without records for ``timeout`` stops holding back the watermark."""
        if timeout <= timedelta(0):
            raise ConfigurationError("watermark strategy: idle timeout must be positive")
        return self._with(idle_timeout=timeout)

    def with_watermark_alignment(
        self,
        group: str,
        max_drift: timedelta,
        update_interval: timedelta = timedelta(seconds=1),
    ) -> WatermarkStrategy[T]:
        """Pause splits (or whole readers) whose watermark runs ahead of the group's slowest.

        Sources sharing ``group`` are aligned: none emits records for event time beyond the
        group's minimum watermark plus ``max_drift``; readers that give per-split outputs get
        ``pause_or_resume_splits`` calls, others are not polled while ahead.
        """
        if max_drift <= timedelta(0) or update_interval <= timedelta(0):
            raise ConfigurationError(
                "watermark alignment: max_drift and update_interval must be positive"
            )
        return self._with(alignment=WatermarkAlignment(group, max_drift, update_interval))
