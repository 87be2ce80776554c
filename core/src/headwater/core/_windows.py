"""Windows: assigners (tumbling, sliding, session; event or processing time), triggers, functions."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from headwater.core._errors import ConfigurationError

__all__ = [
    "ContinuousEventTimeTrigger",
    "ContinuousProcessingTimeTrigger",
    "CountTrigger",
    "EventTimeSessionWindows",
    "EventTimeTrigger",
    "ProcessWindowFunction",
    "ProcessingTimeSessionWindows",
    "ProcessingTimeTrigger",
    "SlidingEventTimeWindows",
    "SlidingProcessingTimeWindows",
    "TimeWindow",
    "Trigger",
    "TumblingEventTimeWindows",
    "TumblingProcessingTimeWindows",
    "WindowAssigner",
    "WindowResult",
]

K = TypeVar("K")
IN = TypeVar("IN")
OUT = TypeVar("OUT")


def _ms(value: timedelta, what: str, *, allow_zero: bool = False) -> int:
    ms = int(value.total_seconds() * 1000)
    if ms < 0 or (ms == 0 and not allow_zero):
        raise ConfigurationError(f"window: {what} must be positive, got {value}")
    return ms


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The half-open interval ``[start, end)`` in milliseconds."""

    start: int
    end: int

    @property
    def max_timestamp(self) -> int:
        """The last timestamp inside the window; results carry it as their timestamp."""
        return self.end - 1


class WindowAssigner(ABC):
    """Puts each record into zero or more windows."""

    is_event_time: bool = True
    is_session: bool = False

    @abstractmethod
    def assign(self, timestamp: int) -> list[tuple[int, int]]:
        """The ``(start, end)`` of every window that ``timestamp`` belongs to."""


class TumblingEventTimeWindows(WindowAssigner):
    """Fixed-size, non-overlapping windows on event time."""

    def __init__(self, size: int, offset: int) -> None:
        self.size = size
        self.offset = offset

    @classmethod
    def of(cls, size: timedelta, offset: timedelta = timedelta(0)) -> TumblingEventTimeWindows:
        """Windows of ``size``, shifted by ``offset`` from the epoch."""
        return cls(_ms(size, "size"), _ms(offset, "offset", allow_zero=True))

    def assign(self, timestamp: int) -> list[tuple[int, int]]:
        """The one window containing ``timestamp``."""
        start = timestamp - (timestamp - self.offset) % self.size
        return [(start, start + self.size)]


class TumblingProcessingTimeWindows(TumblingEventTimeWindows):
    """Fixed-size, non-overlapping windows on the wall clock."""

    is_event_time = False


class SlidingEventTimeWindows(WindowAssigner):
    """Windows of ``size`` starting every ``slide`` (a record is in ``size / slide`` windows)."""

    def __init__(self, size: int, slide: int, offset: int) -> None:
        if slide > size:
            raise ConfigurationError(
                "window: slide must not exceed size (records would fall in gaps)"
            )
        self.size = size
        self.slide = slide
        self.offset = offset

    @classmethod
    def of(
        cls, size: timedelta, slide: timedelta, offset: timedelta = timedelta(0)
    ) -> SlidingEventTimeWindows:
        """Windows of ``size`` every ``slide``."""
        return cls(_ms(size, "size"), _ms(slide, "slide"), _ms(offset, "offset", allow_zero=True))

    def assign(self, timestamp: int) -> list[tuple[int, int]]:
        """Every window containing ``timestamp``, latest first."""
        last_start = timestamp - (timestamp - self.offset) % self.slide
        return [
            (start, start + self.size)
            for start in range(last_start, timestamp - self.size, -self.slide)
        ]


class SlidingProcessingTimeWindows(SlidingEventTimeWindows):
    """Sliding windows on the wall clock."""

    is_event_time = False


class EventTimeSessionWindows(WindowAssigner):
    """Per-key sessions: records closer than ``gap`` to each other share a window."""

    is_session = True

    def __init__(self, gap: int) -> None:
        self.gap = gap

    @classmethod
    def with_gap(cls, gap: timedelta) -> EventTimeSessionWindows:
        """Sessions that close after ``gap`` without records."""
        return cls(_ms(gap, "gap"))

    def assign(self, timestamp: int) -> list[tuple[int, int]]:
        """The record's own session ``[timestamp, timestamp + gap)``, merged later."""
        return [(timestamp, timestamp + self.gap)]


class ProcessingTimeSessionWindows(EventTimeSessionWindows):
    """Sessions on the wall clock."""

    is_event_time = False


@dataclass(frozen=True)
class Trigger:
    """When a window emits its result. Use the subclasses; the default follows the assigner."""


@dataclass(frozen=True)
class EventTimeTrigger(Trigger):
    """Fire when the watermark passes the end of the window (and again per late record)."""


@dataclass(frozen=True)
class ProcessingTimeTrigger(Trigger):
    """Fire when the wall clock passes the end of the window."""


@dataclass(frozen=True)
class CountTrigger(Trigger):
    """Fire early every ``count`` records of a window, and at its end."""

    count: int

    @classmethod
    def of(cls, count: int) -> CountTrigger:
        """An early result every ``count`` records."""
        if count < 1:
            raise ConfigurationError("CountTrigger: count must be >= 1")
        return cls(count)


@dataclass(frozen=True)
class ContinuousEventTimeTrigger(Trigger):
    """Fire early each time the watermark passes another ``interval`` of the window, and at its end."""

    interval_ms: int

    @classmethod
    def of(cls, interval: timedelta) -> ContinuousEventTimeTrigger:
        """An early result every ``interval`` of event time."""
        return cls(_ms(interval, "trigger interval"))


@dataclass(frozen=True)
class ContinuousProcessingTimeTrigger(Trigger):
    """Fire early every ``interval`` of wall-clock time, and at the window's end."""

    interval_ms: int

    @classmethod
    def of(cls, interval: timedelta) -> ContinuousProcessingTimeTrigger:
        """An early result every ``interval`` of processing time."""
        return cls(_ms(interval, "trigger interval"))


class ProcessWindowFunction(ABC, Generic[K, IN, OUT]):
    """Sees every record of a window at once (the records are kept in state until it fires)."""

    @abstractmethod
    def process(self, key: K, window: TimeWindow, elements: list[IN]) -> Iterable[OUT]:
        """Return the records to emit for one firing of ``window``."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class WindowResult(Generic[K, OUT]):
    """One window's result for one key, with the window's bounds.

    Attributes:
        key: the key the window belongs to.
        start: the window's first instant (UTC).
        end: the instant after the window's last (the window is ``[start, end)``).
        value: the aggregate (a count, a sum, an ``AggregateFunction``'s result...).
    """

    key: K
    start: datetime
    end: datetime
    value: OUT

    @classmethod
    def of(cls, key: K, start_ms: int, end_ms: int, value: OUT) -> WindowResult[K, OUT]:
        """The result for the window ``[start_ms, end_ms)`` in epoch milliseconds."""
        return cls(
            key,
            _EPOCH + timedelta(milliseconds=start_ms),
            _EPOCH + timedelta(milliseconds=end_ms),
            value,
        )

    def as_dict(self) -> dict[str, Any]:
        """``{"key", "start", "end", "value"}``: a row for sinks that take mappings."""
        return {"key": self.key, "start": self.start, "end": self.end, "value": self.value}


@dataclass(frozen=True)
class WindowSpec:
    """Everything the window operator needs (internal)."""

    assigner: WindowAssigner
    trigger: Trigger | None
    allowed_lateness_ms: int
    late_tag: str | None
    kind: str
    """``reduce``, ``aggregate`` or ``process``."""
    function: Any
    with_window: bool = False
    """``reduce``/``aggregate`` results come wrapped in a :class:`WindowResult`."""
