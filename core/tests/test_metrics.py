"""Metrics: FLIP-33 names, task times, meters and histograms, and the Prometheus endpoint over HTTP."""

import asyncio
import random
import urllib.request
from datetime import timedelta

from headwater.core import (
    DataGenSource,
    DiscardingSink,
    LoggingReporter,
    PrometheusReporter,
    StreamEnvironment,
    WatermarkStrategy,
)
from headwater.core._metrics import Histogram, Meter, MetricRegistry


def test_histogram_quantiles_and_meter_counts() -> None:
    h = Histogram(size=100)
    for v in range(1, 1001):
        h.update(float(v))
    assert h.count == 1000 and len(h.values) == 100
    p50 = h.quantile(0.5)
    assert p50 is not None and 300 <= p50 <= 700
    m = Meter()
    m.mark(5)
    m.mark()
    assert m.count == 6
    group = MetricRegistry().group({"job": "j", "operator": "o", "subtask": "0"})
    group.histogram("latency").update(3.0)
    group.meter("events").mark(2)
    snap = group.snapshot()
    assert snap["latency_count"] == 1 and snap["latency_p50"] == 3.0 and snap["events"] == 2


def event(index: int, rng: random.Random) -> dict[str, int]:
    return {"id": index, "ts": 1_700_000_000_000 + index}


def test_prometheus_endpoint_serves_flip33_metrics_while_the_job_runs() -> None:
    reporter = PrometheusReporter(port=0)

    async def main() -> str:
        env = StreamEnvironment(metric_reporters=[reporter, LoggingReporter(timedelta(seconds=60))])
        strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
            lambda e, _t: e["ts"]
        )
        env.from_source(DataGenSource(event, rows_per_second=5_000), strategy, name="events").map(
            lambda e: e, name="ident"
        ).sink_to(DiscardingSink(), name="discard")
        client = await env.execute_async("scraped")
        await asyncio.sleep(0.6)
        url = f"http://127.0.0.1:{reporter.port}/metrics"
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(url, timeout=5).read().decode()
        )
        await client.cancel()
        return body

    body = asyncio.run(main())
    lines = {line.split("{")[0] for line in body.splitlines() if not line.startswith("#")}
    for name in (
        "headwater_numRecordsIn",
        "headwater_numRecordsOut",
        "headwater_currentEmitEventTimeLag",
        "headwater_watermarkLag",
        "headwater_accumulatedBusyTimeMs",
        "headwater_accumulatedIdleTimeMs",
        "headwater_accumulatedBackPressuredTimeMs",
    ):
        assert name in lines, name
    records_out = [
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("headwater_numRecordsOut{") and 'operator="events"' in line
    ]
    assert records_out and records_out[0] > 0


def test_operator_totals_sum_subtasks_not_their_child_groups() -> None:
    from headwater.core._runtime._executor import operator_totals

    registry = MetricRegistry()
    for subtask, lags in (("0", [3, 4]), ("1", [5])):
        group = registry.group({"job": "j", "operator": "source", "subtask": subtask})
        group.gauge("pendingRecords", lambda lags=lags: sum(lags))
        for partition, lag in enumerate(lags):
            child = group.add_group("partition", str(partition))
            child.gauge("pendingRecords", lambda lag=lag: lag)
    assert operator_totals(registry) == {"source": {"pendingRecords": 12}}
