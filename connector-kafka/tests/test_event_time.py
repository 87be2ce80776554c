"""Event time through the Kafka source: per-partition watermarks, no on-time record dropped, alignment.

Each partition's records are in event-time order (or out of order within the strategy's bound),
but partitions progress at different event-time speeds. Window results are compared with the
same counts computed directly from the input. Timestamps are relative to now: the test broker
applies time retention by record timestamp within seconds (see SERVICES.md).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from headwater.connectors.kafka import (
    KafkaRecord,
    KafkaSource,
    KafkaSourceOptions,
    Latest,
    PartitionOffset,
    SpecificOffsets,
)
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import (
    CheckpointConfig,
    CollectSink,
    OutputTag,
    StreamEnvironment,
    TumblingEventTimeWindows,
    WatermarkStrategy,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from .kafka_helpers import create_topic

WINDOW_MS = 10_000

Event = tuple[int, int]
"""(partition, event timestamp ms), as the source decodes a record."""


def epoch_ms_an_hour_ago() -> int:
    """A window-aligned start of event time an hour ago (kept by the broker's retention)."""
    start = int(time.time() * 1000) - 3_600_000
    return start - start % WINDOW_MS


async def produce_partitions(bootstrap: str, topic: str, stamps: list[list[int]]) -> None:
    """Write partition ``p``'s timestamps ``stamps[p]`` (in that order) as records of ``p``."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, f"{p}:{i}".encode(), partition=p, timestamp_ms=ts)
            for p, partition_stamps in enumerate(stamps)
            for i, ts in enumerate(partition_stamps)
        ]
        for future in futures:
            await future
    finally:
        await producer.stop()


def decode(record: KafkaRecord) -> Event:
    return (record.partition, record.timestamp)


def window_counts(
    bootstrap: str,
    topic: str,
    *,
    parallelism: int,
    out_of_orderness: timedelta,
    max_records_per_fetch: int = 500,
) -> tuple[Counter[tuple[int, int]], list[Event]]:
    """Run Kafka -> 10 s tumbling event-time windows counting per partition; (counts, late records)."""
    source = KafkaSource(
        KafkaSourceOptions(
            bootstrap_servers=bootstrap,
            topics=[topic],
            stopping_offsets=Latest(),
            max_records_per_fetch=max_records_per_fetch,
        ),
        record_deserializer=decode,
    )
    strategy: WatermarkStrategy[Any] = WatermarkStrategy.for_bounded_out_of_orderness(
        out_of_orderness
    ).with_emit_interval(timedelta(milliseconds=1))  # as often as possible: the bug's best chance
    env = StreamEnvironment(parallelism=parallelism)
    late = OutputTag[Any]("late")
    windows = (
        env.from_source(source, strategy)
        .map(lambda e: (e[0], e[1] - e[1] % WINDOW_MS, 1))
        .key_by(lambda e: e[0])
        .window(TumblingEventTimeWindows.of(timedelta(milliseconds=WINDOW_MS)))
        .side_output_late_data(late)
        .reduce(lambda a, b: (a[0], a[1], a[2] + b[2]))
    )
    counts: CollectSink[tuple[int, int, int]] = CollectSink()
    late_records: CollectSink[Any] = CollectSink()
    windows.sink_to(counts)
    windows.get_side_output(late).sink_to(late_records)
    env.execute("kafka event time")
    got: Counter[tuple[int, int]] = Counter()
    for partition, window, count in counts.results():
        assert (partition, window) not in got, f"window {window} of {partition} fired twice"
        got[(partition, window)] = count
    return got, [(p, ts) for p, ts, _ in late_records.results()]


def expected_counts(stamps: list[list[int]]) -> Counter[tuple[int, int]]:
    """The same counts computed directly from the input."""
    return Counter(
        (p, ts - ts % WINDOW_MS) for p, partition in enumerate(stamps) for ts in partition
    )


@pytest.mark.parametrize("parallelism", [1, 2])
async def test_two_partitions_at_different_event_time_progress(
    kafka_service: RunningService, unique_name: str, parallelism: int
) -> None:
    """The issue's case: 'a' on partition 0 and 'b' on partition 1, 5,000 in-order records each.

    On the reader-wide watermark, the partition ahead pushed the watermark past the other one's
    records: a=1000 instead of 5000. Partition 1 starts 30 s ahead, so one reader always sees it.
    """
    await create_topic(kafka_service.address, unique_name, 2)
    start = epoch_ms_an_hour_ago()
    stamps = [[start + 10 * i for i in range(5000)], [start + 30_000 + 10 * i for i in range(5000)]]
    await produce_partitions(kafka_service.address, unique_name, stamps)
    got, late = await asyncio.to_thread(
        window_counts,
        kafka_service.address,
        unique_name,
        parallelism=parallelism,
        out_of_orderness=timedelta(seconds=2),
    )
    assert late == []
    totals = Counter[int]()
    for (partition, _), count in got.items():
        totals[partition] += count
    assert totals == {0: 5000, 1: 5000}
    assert got == expected_counts(stamps)


@st.composite
def skewed_partitions(draw: st.DrawFn) -> tuple[int, list[list[int]]]:
    """1-8 partitions, each in event-time order up to 1.5 s (bound: 2 s), offset by up to 3 minutes."""
    partitions = draw(st.integers(1, 8))
    parallelism = draw(st.integers(1, 4))
    start = epoch_ms_an_hour_ago()
    stamps = []
    for _ in range(partitions):
        skew = draw(st.integers(0, 180_000))
        step = draw(st.integers(1, 200))
        count = draw(st.integers(0, 300))
        jitter = draw(st.lists(st.integers(0, 1500), min_size=count, max_size=count))
        stamps.append([start + skew + i * step + j for i, j in enumerate(jitter)])
    return parallelism, stamps


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
    phases=[
        Phase.explicit,
        Phase.generate,
    ],  # a failure is reported as found: shrinking takes minutes
)
@given(case=skewed_partitions())
def test_window_results_equal_direct_computation(
    kafka_service: RunningService, case: tuple[int, list[list[int]]]
) -> None:
    """Random partition counts, parallelism, skews and out-of-orderness within the bound:
    the windows equal the counts computed from the input, and no record is late."""
    parallelism, stamps = case
    topic = f"event-time-{uuid.uuid4().hex[:12]}"
    asyncio.run(create_topic(kafka_service.address, topic, len(stamps)))
    asyncio.run(produce_partitions(kafka_service.address, topic, stamps))
    got, late = window_counts(
        kafka_service.address,
        topic,
        parallelism=parallelism,
        out_of_orderness=timedelta(seconds=2),
        max_records_per_fetch=50,
    )
    assert late == []
    assert got == expected_counts(stamps)


async def produce_in_rounds(
    bootstrap: str, topic: str, stamps: list[list[int]], rounds: int
) -> None:
    """Write the partitions' records live, a slice of each per round, so a reader sees them
    arrive side by side (records already in the topic are fetched partition by partition)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1)
    await producer.start()
    try:
        for r in range(rounds):
            futures = [
                await producer.send(topic, b"x", partition=p, timestamp_ms=ts)
                for p, partition_stamps in enumerate(stamps)
                for ts in partition_stamps[
                    r * len(partition_stamps) // rounds : (r + 1) * len(partition_stamps) // rounds
                ]
            ]
            for future in futures:
                await future
            await asyncio.sleep(0.01)
    finally:
        await producer.stop()


async def largest_lead(
    bootstrap: str, topic: str, stamps: list[list[int]], *, aligned: bool
) -> int:
    """Read both partitions with one reader while they are written; the largest event-time lead
    of partition 1 over partition 0 while partition 0 had records to come, right after the source."""
    await create_topic(bootstrap, topic, 2)
    source = KafkaSource(
        KafkaSourceOptions(
            bootstrap_servers=bootstrap,
            topics=[topic],
            stopping_offsets=SpecificOffsets(
                offsets=[
                    PartitionOffset(topic=topic, partition=p, offset=len(s))
                    for p, s in enumerate(stamps)
                ]
            ),
            max_records_per_fetch=20,
        ),
        record_deserializer=decode,
    )
    strategy: WatermarkStrategy[Any] = WatermarkStrategy.for_monotonous_timestamps()
    strategy = strategy.with_emit_interval(timedelta(milliseconds=10))
    if aligned:
        strategy = strategy.with_watermark_alignment(
            "partitions", timedelta(seconds=5), timedelta(milliseconds=20)
        )
    env = StreamEnvironment(parallelism=1)
    sink: CollectSink[Event] = CollectSink()
    env.from_source(source, strategy).sink_to(sink)
    client = await env.execute_async("kafka alignment")
    await produce_in_rounds(bootstrap, topic, stamps, rounds=50)
    result = await client.wait()
    assert result.status.value == "finished", result
    events = sink.results()
    assert sorted(events) == sorted(
        (p, ts) for p, partition in enumerate(stamps) for ts in partition
    )
    newest = [stamps[0][0], stamps[1][0]]
    last_slow = stamps[0][-1]
    lead = 0
    for partition, ts in events:
        newest[partition] = max(newest[partition], ts)
        if newest[0] < last_slow:
            lead = max(lead, newest[1] - newest[0])
    return lead


async def test_alignment_pauses_the_partition_that_runs_ahead(
    kafka_service: RunningService, unique_name: str
) -> None:
    """Both partitions are written side by side; partition 1 runs 10x faster in event time.

    With alignment (max drift 5 s) its lead over partition 0 stays near the drift (the slack:
    fetches of 20 records, 2 s of its event time each, in flight when it is paused); without
    alignment it runs minutes ahead (up to the whole 270 s difference).
    """
    start = epoch_ms_an_hour_ago()
    stamps = [[start + 10 * i for i in range(3000)], [start + 100 * i for i in range(3000)]]
    bootstrap = kafka_service.address
    unaligned = await largest_lead(bootstrap, unique_name + "-u", stamps, aligned=False)
    aligned = await largest_lead(bootstrap, unique_name + "-a", stamps, aligned=True)
    print(f"lead without alignment {unaligned} ms, with {aligned} ms")
    assert unaligned > 100_000
    assert aligned < 20_000


def windows_fired_with_an_empty_partition(bootstrap: str, topic: str, *, idleness: bool) -> int:
    """One reader, partition 0 with records, partition 1 empty; how many windows fire in time."""
    source = KafkaSource(
        KafkaSourceOptions(bootstrap_servers=bootstrap, topics=[topic]),
        record_deserializer=decode,
    )
    strategy: WatermarkStrategy[Any] = WatermarkStrategy.for_monotonous_timestamps()
    strategy = strategy.with_emit_interval(timedelta(milliseconds=20))
    if idleness:
        strategy = strategy.with_idleness(timedelta(milliseconds=200))
    sink: CollectSink[Any] = CollectSink()

    async def main() -> int:
        env = StreamEnvironment(
            parallelism=1, checkpointing=CheckpointConfig(interval=timedelta(seconds=30))
        )
        (
            env.from_source(source, strategy)
            .map(lambda e: (e[0], e[1] - e[1] % WINDOW_MS, 1))
            .key_by(lambda e: e[0])
            .window(TumblingEventTimeWindows.of(timedelta(milliseconds=WINDOW_MS)))
            .reduce(lambda a, b: (a[0], a[1], a[2] + b[2]))
            .sink_to(sink)
        )
        client = await env.execute_async("empty partition")
        await asyncio.sleep(1.5)
        with tempfile.TemporaryDirectory() as tmp:  # the sink commits what fired so far
            await client.stop_with_savepoint(Path(tmp) / "sp")
        return len(sink.results())

    return asyncio.run(main())


async def test_an_empty_partition_holds_windows_back_until_idle(
    kafka_service: RunningService, unique_name: str
) -> None:
    """Per-split idleness: the empty partition holds the reader's watermark (its records could
    still come) unless ``with_idleness`` is set; then partition 0's windows fire."""
    await create_topic(kafka_service.address, unique_name, 2)
    start = epoch_ms_an_hour_ago()
    await produce_partitions(
        kafka_service.address, unique_name, [[start + 10 * i for i in range(5000)], []]
    )
    held = await asyncio.to_thread(
        windows_fired_with_an_empty_partition, kafka_service.address, unique_name, idleness=False
    )
    fired = await asyncio.to_thread(
        windows_fired_with_an_empty_partition, kafka_service.address, unique_name, idleness=True
    )
    assert held == 0
    assert fired == 4  # 50 s of records: windows 0-3 closed, the 5th needs a later record
