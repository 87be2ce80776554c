"""Kafka -> map -> Kafka throughput with the Kafka connector vs a raw aiokafka loop (same run, same broker).

Records of 100 bytes; 1,000,000 at HEADWATER_BENCH_SCALE=1 (the default; 0.2 reads 200,000).
The broker is HEADWATER_KAFKA_BOOTSTRAP if set, else a noida-db started through tools/services.

- raw_rps: a plain aiokafka loop: getmany from the input topic, send_batch per partition to an
  output topic, wait for the acks (an at-least-once copy with no framework at all), with the
  client settings the headwater job uses (read_committed, acks=all, idempotence). Both it and
  the headwater jobs are timed from connecting to closing their clients.
- alo_rps: the same job in headwater, parallelism 1, AT_LEAST_ONCE, 1 s checkpoints.
- eo_rps: the same with EXACTLY_ONCE (Kafka transactions), 1 s checkpoints.
- *_cpu_us: CPU time of this process (``time.process_time``: client, framework and job; the
  broker runs in another process) per record of each run, in microseconds.

After each run its output topic is read back (read_committed, not timed): ``count`` records, each
the transformed input, or the benchmark fails. The three runs are repeated HEADWATER_BENCH_ROUNDS times (default 3), interleaved (raw, alo, eo,
raw, ...) so that a burst of load from elsewhere hits all of them alike; the figures are medians
and ``rounds`` lists each round's ratios.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from headwater.connectors.kafka import (
    KafkaRecordSerializer,
    KafkaSink,
    KafkaSinkOptions,
    KafkaSource,
    KafkaSourceOptions,
    Latest,
)
from headwater.core import CheckpointConfig, DeliveryGuarantee, StreamEnvironment

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 4
RECORD = b"x" * 100


def _bootstrap() -> tuple[str, Path | None]:
    configured = os.environ.get("HEADWATER_KAFKA_BOOTSTRAP")
    if configured:
        return configured, None
    state = Path(tempfile.mkdtemp(prefix="hw-bench-kafka-"))
    services = [sys.executable, str(ROOT / "tools" / "services"), "--state", str(state)]
    subprocess.run([*services, "up", "--free-ports", "kafka"], check=True, capture_output=True)
    env = subprocess.run([*services, "env", "kafka"], check=True, capture_output=True, text=True)
    values = dict(token.split("=", 1) for token in shlex.split(env.stdout))
    return values["HEADWATER_KAFKA_BOOTSTRAP"], state


async def _admin(bootstrap: str, *, create: str | None = None, delete: str | None = None) -> None:
    """Create or delete a topic of PARTITIONS partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if create is not None:
            await admin.create_topics([NewTopic(create, PARTITIONS, 1)])
        if delete is not None:
            await admin.delete_topics([delete])
    finally:
        await admin.close()


async def _measured(
    bootstrap: str, output: str, count: int, run: Callable[[str], Awaitable[tuple[float, float]]]
) -> tuple[float, float]:
    """``run(output)`` into a fresh output topic, checked (not timed) and deleted afterwards.

    The broker keeps every topic in memory; deleting each run's output keeps later runs from
    paying for the earlier runs' data (and the rounds comparable).
    """
    await _admin(bootstrap, create=output)
    try:
        measured = await run(output)
        await _check_output(bootstrap, output, count)
        return measured
    finally:
        await _admin(bootstrap, delete=output)


async def _check_output(bootstrap: str, output: str, count: int) -> None:
    """The output topic holds ``count`` committed records, each the transformed input."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        tps = [TopicPartition(output, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found = wrong = 0
        expected = transform(RECORD)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            fetched = await consumer.getmany(timeout_ms=2000, max_records=50_000)
            if not fetched:
                break
            for records in fetched.values():
                found += len(records)
                wrong += sum(r.value != expected for r in records)
    finally:
        await consumer.stop()
    assert (found, wrong) == (count, 0), f"{output}: {found} records, {wrong} wrong, not {count}"


async def _prepare(bootstrap: str, count: int) -> str:
    topic = f"bench_{uuid.uuid4().hex[:8]}"
    await _admin(bootstrap, create=f"{topic}_in")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = []
        for partition in range(PARTITIONS):
            batch = producer.create_batch()
            for i in range(partition, count, PARTITIONS):
                if batch.append(key=None, value=RECORD, timestamp=None) is None:
                    futures.append(
                        await producer.send_batch(batch, f"{topic}_in", partition=partition)
                    )
                    batch = producer.create_batch()
                    batch.append(key=None, value=RECORD, timestamp=None)
                del i
            futures.append(await producer.send_batch(batch, f"{topic}_in", partition=partition))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return topic


def transform(value: bytes) -> bytes:
    return value.upper()


async def _raw(bootstrap: str, topic: str, count: int, output: str) -> tuple[float, float]:
    """Copy ``count`` records, timed from connecting the clients to closing them.

    The same span as a headwater job's (start, run, final flush, close), so that neither side
    is charged for set-up the other is not.
    """
    started, cpu = time.perf_counter(), time.process_time()
    # The client settings of the headwater job: KafkaSource reads read_committed by default, and
    # an AT_LEAST_ONCE KafkaSink produces with acks=all and idempotence.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=5,
        max_batch_size=256 * 1024,
        acks="all",
        enable_idempotence=True,
    )
    await consumer.start()
    await producer.start()
    try:
        tps = [TopicPartition(f"{topic}_in", p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        done = 0
        futures = []
        while done < count:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, records in fetched.items():
                batch = producer.create_batch()
                for r in records:
                    if batch.append(key=None, value=transform(r.value), timestamp=None) is None:
                        futures.append(
                            await producer.send_batch(batch, output, partition=tp.partition)
                        )
                        batch = producer.create_batch()
                        batch.append(key=None, value=transform(r.value), timestamp=None)
                futures.append(await producer.send_batch(batch, output, partition=tp.partition))
                done += len(records)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
        await consumer.stop()
    return count / (time.perf_counter() - started), (time.process_time() - cpu) / count * 1e6


async def _headwater(
    bootstrap: str, topic: str, count: int, guarantee: DeliveryGuarantee, output: str
) -> tuple[float, float]:
    suffix = "eo" if guarantee is DeliveryGuarantee.EXACTLY_ONCE else "alo"
    env = StreamEnvironment(
        parallelism=1, checkpointing=CheckpointConfig(interval=timedelta(seconds=1))
    )
    source = KafkaSource(
        KafkaSourceOptions(
            bootstrap_servers=bootstrap, topics=[f"{topic}_in"], stopping_offsets=Latest()
        )
    )
    sink: KafkaSink[bytes] = KafkaSink(
        KafkaSinkOptions(
            bootstrap_servers=bootstrap,
            delivery_guarantee=guarantee,
            transactional_id_prefix=output if suffix == "eo" else None,
        ),
        KafkaRecordSerializer(topic=output),
    )
    env.from_source(source).map(transform).sink_to(sink)
    started, cpu = time.perf_counter(), time.process_time()
    client = await env.execute_async(f"bench-{suffix}")
    result = await client.wait()
    elapsed = time.perf_counter() - started
    assert result.status.value == "finished", result
    return count / elapsed, (time.process_time() - cpu) / count * 1e6


def run() -> dict[str, Any]:
    scale = float(os.environ.get("HEADWATER_BENCH_SCALE", "1"))
    rounds = max(1, int(os.environ.get("HEADWATER_BENCH_ROUNDS", "3")))
    count = max(1000, int(1_000_000 * scale))
    bootstrap, state = _bootstrap()
    try:

        async def measure() -> dict[str, Any]:
            topic = await _prepare(bootstrap, count)
            runs: dict[str, list[tuple[float, float]]] = {"raw": [], "alo": [], "eo": []}
            for round_ in range(rounds):
                runs["raw"].append(
                    await _measured(
                        bootstrap,
                        f"{topic}_raw{round_}",
                        count,
                        partial(_raw, bootstrap, topic, count),
                    )
                )
                for name, guarantee in (
                    ("alo", DeliveryGuarantee.AT_LEAST_ONCE),
                    ("eo", DeliveryGuarantee.EXACTLY_ONCE),
                ):
                    run = partial(_headwater, bootstrap, topic, count, guarantee)
                    runs[name].append(
                        await _measured(bootstrap, f"{topic}_{name}{round_}", count, run)
                    )
            rps = {name: statistics.median(r for r, _ in results) for name, results in runs.items()}
            cpu = {name: statistics.median(c for _, c in results) for name, results in runs.items()}
            return {
                "records": count,
                "raw_rps": round(rps["raw"]),
                "alo_rps": round(rps["alo"]),
                "eo_rps": round(rps["eo"]),
                "ratio_alo": round(rps["alo"] / rps["raw"], 3),
                "ratio_eo": round(rps["eo"] / rps["raw"], 3),
                "raw_cpu_us": round(cpu["raw"], 2),
                "alo_cpu_us": round(cpu["alo"], 2),
                "eo_cpu_us": round(cpu["eo"], 2),
                "rounds": [
                    {
                        "ratio_alo": round(alo[0] / raw[0], 3),
                        "ratio_eo": round(eo[0] / raw[0], 3),
                    }
                    for raw, alo, eo in zip(runs["raw"], runs["alo"], runs["eo"], strict=True)
                ],
            }

        return asyncio.run(measure())
    finally:
        if state is not None:
            services = [sys.executable, str(ROOT / "tools" / "services"), "--state", str(state)]
            subprocess.run([*services, "down", "--all"], check=False, capture_output=True)


if __name__ == "__main__":
    import json

    print(json.dumps(run()))
