"""Metric reporters: a logging reporter, and a Prometheus endpoint (extra ``headwater-core[prometheus]``)."""

from __future__ import annotations

import asyncio
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from headwater.core._errors import ConfigurationError
from headwater.core._metrics import MetricRegistry

__all__ = ["LoggingReporter", "MetricReporter", "PrometheusReporter"]


class MetricReporter(ABC):
    """Publishes a job's metrics while it runs."""

    @abstractmethod
    async def open(self, registry: MetricRegistry) -> None:
        """Start reporting ``registry`` (called on the job's event loop when the job starts)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop reporting (called when the job ends)."""


class LoggingReporter(MetricReporter):
    """Logs every metric group at ``interval`` on the ``headwater.metrics`` logger."""

    def __init__(self, interval: timedelta = timedelta(seconds=10)) -> None:
        if interval <= timedelta(0):
            raise ConfigurationError("LoggingReporter: interval must be positive")
        self._interval = interval.total_seconds()
        self._task: asyncio.Task[None] | None = None
        self._log = logging.getLogger("headwater.metrics")

    async def open(self, registry: MetricRegistry) -> None:
        """Start the periodic log task."""

        async def report() -> None:
            while True:
                await asyncio.sleep(self._interval)
                self.report(registry)

        self._task = asyncio.get_running_loop().create_task(report())

    def report(self, registry: MetricRegistry) -> None:
        """Log every group once now."""
        for group in registry.groups():
            scope = ".".join(group.scope.values())
            values = " ".join(f"{k}={v}" for k, v in sorted(group.snapshot().items()))
            self._log.info("%s %s", scope, values)

    async def close(self) -> None:
        """Stop logging (and log one last time)."""
        if self._task is not None:
            self._task.cancel()


_INVALID = re.compile(r"[^a-zA-Z0-9_:]")


class PrometheusReporter(MetricReporter):
    """Serves every metric at ``http://host:port/metrics`` as Prometheus gauges.

    Names are ``headwater_<metric>`` (FLIP-33 names kept, e.g. ``headwater_numRecordsIn``) with the
    labels ``job``, ``operator`` and ``subtask``. Needs ``pip install headwater-core[prometheus]``.
    """

    def __init__(self, port: int = 9249, host: str = "127.0.0.1") -> None:
        try:
            import prometheus_client  # noqa: F401
        except ImportError as exc:
            raise ConfigurationError(
                "PrometheusReporter needs the prometheus extra: pip install 'headwater-core[prometheus]'"
            ) from exc
        if not 0 <= port <= 65535:
            raise ConfigurationError(
                f"PrometheusReporter: port must be within [0, 65535], got {port}"
            )
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: Any = None
        self._registry: Any = None

    async def open(self, registry: MetricRegistry) -> None:
        """Start the HTTP endpoint on a background thread."""
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.core import GaugeMetricFamily

        class Collector:
            def collect(self) -> Iterator[GaugeMetricFamily]:
                families: dict[str, GaugeMetricFamily] = {}
                for group in registry.groups():
                    labels = [group.scope.get(k, "") for k in ("job", "operator", "subtask")]
                    for name, value in group.snapshot().items():
                        if not isinstance(value, int | float):
                            continue
                        metric = "headwater_" + _INVALID.sub("_", name)
                        family = families.get(metric)
                        if family is None:
                            family = families[metric] = GaugeMetricFamily(
                                metric, name, labels=["job", "operator", "subtask"]
                            )
                        family.add_metric(labels, float(value))
                yield from families.values()

        self._registry = CollectorRegistry()
        self._registry.register(Collector())
        self._server, self._thread = start_http_server(self.port, self.host, self._registry)
        self.port = self._server.server_port

    async def close(self) -> None:
        """Stop the HTTP endpoint."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
