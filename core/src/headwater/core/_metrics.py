"""Metric groups, counters and gauges.

Every operator subtask has a :class:`MetricGroup` scoped ``job / operator / subtask``. Connector
metrics use the FLIP-33 names (``numRecordsIn``, ``numRecordsOut``, ``numBytesIn``,
``numRecordsInErrors``, ``numRecordsSendErrors``, ``pendingRecords``, ...). Counters are plain
integers incremented once per batch, never once per record, so they cost nothing on the hot path.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping

__all__ = ["Counter", "Gauge", "Histogram", "Meter", "MetricGroup", "MetricRegistry"]


class Counter:
    """A monotonically increasing count."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def inc(self, n: int = 1) -> None:
        """Add ``n``."""
        self.count += n

    def __repr__(self) -> str:
        return f"Counter({self.count})"


class Gauge:
    """A value read on demand from a callable."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[], float | int | None]) -> None:
        self._fn = fn

    @property
    def value(self) -> float | int | None:
        """The current value (``None`` when unknown)."""
        return self._fn()


class MetricGroup:
    """A named scope of metrics, e.g. ``{"job": "clicks", "operator": "Map", "subtask": "0"}``."""

    def __init__(self, registry: MetricRegistry, scope: Mapping[str, str]) -> None:
        self._registry = registry
        self.scope: dict[str, str] = dict(scope)
        self.counters: dict[str, Counter] = {}
        self.gauges: dict[str, Gauge] = {}
        self.meters: dict[str, Meter] = {}
        self.histograms: dict[str, Histogram] = {}

    def counter(self, name: str) -> Counter:
        """The counter ``name`` of this group, created on first use."""
        counter = self.counters.get(name)
        if counter is None:
            counter = self.counters[name] = Counter()
        return counter

    def gauge(self, name: str, fn: Callable[[], float | int | None]) -> Gauge:
        """Register (or replace) the gauge ``name`` reading ``fn``."""
        gauge = self.gauges[name] = Gauge(fn)
        return gauge

    def meter(self, name: str) -> Meter:
        """The meter ``name`` of this group, created on first use."""
        meter = self.meters.get(name)
        if meter is None:
            meter = self.meters[name] = Meter()
        return meter

    def histogram(self, name: str) -> Histogram:
        """The histogram ``name`` of this group, created on first use."""
        histogram = self.histograms.get(name)
        if histogram is None:
            histogram = self.histograms[name] = Histogram()
        return histogram

    def add_group(self, key: str, value: str) -> MetricGroup:
        """A child group with one more scope entry (``key=value``)."""
        return self._registry.group({**self.scope, key: value})

    def snapshot(self) -> dict[str, float | int | None]:
        """Every metric of this group by name, read now."""
        values: dict[str, float | int | None] = {k: c.count for k, c in self.counters.items()}
        values.update({k: g.value for k, g in self.gauges.items()})
        for name, meter in self.meters.items():
            values[name] = meter.count
            values[f"{name}PerSecond"] = meter.rate
        for name, histogram in self.histograms.items():
            values[f"{name}_count"] = histogram.count
            for q in (0.5, 0.95, 0.99):
                values[f"{name}_p{int(q * 100)}"] = histogram.quantile(q)
        return values


class MetricRegistry:
    """All metric groups of one job."""

    def __init__(self) -> None:
        self._groups: dict[tuple[tuple[str, str], ...], MetricGroup] = {}

    def group(self, scope: Mapping[str, str]) -> MetricGroup:
        """The group for ``scope``, created on first use."""
        key = tuple(scope.items())
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = MetricGroup(self, scope)
        return group

    def groups(self) -> Iterator[MetricGroup]:
        """Every group registered so far."""
        return iter(list(self._groups.values()))


class Meter:
    """Counts events and reports their rate per second over the last minute."""

    __slots__ = ("_buckets", "count")

    def __init__(self) -> None:
        self.count = 0
        self._buckets: dict[int, int] = {}

    def mark(self, n: int = 1) -> None:
        """Record ``n`` events now."""
        self.count += n
        second = int(time.monotonic())
        self._buckets[second] = self._buckets.get(second, 0) + n
        if len(self._buckets) > 120:
            horizon = second - 60
            self._buckets = {s: c for s, c in self._buckets.items() if s >= horizon}

    @property
    def rate(self) -> float:
        """Events per second over the last 60 full seconds (or fewer, right after the start)."""
        now = int(time.monotonic())
        recent = [c for s, c in self._buckets.items() if now - 60 <= s < now]
        span = min(60, max(1, now - min(self._buckets, default=now)))
        return sum(recent) / span


class Histogram:
    """A distribution of values: a uniform reservoir sample of at most ``size`` values."""

    __slots__ = ("_random", "_size", "count", "values")

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self.count = 0
        self.values: list[float] = []
        self._random = random.Random(0)

    def update(self, value: float) -> None:
        """Record one value."""
        self.count += 1
        if len(self.values) < self._size:
            self.values.append(value)
        else:
            slot = self._random.randrange(self.count)
            if slot < self._size:
                self.values[slot] = value

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1) of the sample, ``None`` when empty."""
        if not self.values:
            return None
        ordered = sorted(self.values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
