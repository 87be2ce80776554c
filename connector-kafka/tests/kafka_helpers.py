"""Helpers of the Kafka connector tests: create topics, produce and read with plain aiokafka."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def add_partitions(bootstrap: str, topic: str, total: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_partitions({topic: NewPartitions(total_count=total)})
    finally:
        await admin.close()


async def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    *,
    partitions: int | None = None,
    timestamps: list[int] | None = None,
) -> None:
    """Write ``values``; with ``partitions``, value i goes to partition i % partitions."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for i, value in enumerate(values):
            futures.append(
                await producer.send(
                    topic,
                    value,
                    key=value,
                    partition=None if partitions is None else i % partitions,
                    timestamp_ms=None if timestamps is None else timestamps[i],
                )
            )
        for future in futures:
            await future
    finally:
        await producer.stop()


async def produce_to_partition(
    bootstrap: str, topic: str, values: list[bytes], partition: int
) -> None:
    """Write ``values`` into one partition, in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, partition=partition) for value in values]
        for future in futures:
            await future
    finally:
        await producer.stop()


async def read_all(
    bootstrap: str, topic: str, *, committed_only: bool = True, idle_ms: int = 1500
) -> list[tuple[bytes | None, bytes | None]]:
    """Every ``(key, value)`` of ``topic`` up to its end, partition by partition."""
    records = await read_partitioned(
        bootstrap, topic, committed_only=committed_only, idle_ms=idle_ms
    )
    return [(key, value) for _, key, value in records]


async def read_partitioned(
    bootstrap: str, topic: str, *, committed_only: bool = True, idle_ms: int = 1500
) -> list[tuple[int, bytes | None, bytes | None]]:
    """Every ``(partition, key, value)`` of ``topic`` up to its end, partition by partition."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed" if committed_only else "read_uncommitted",
    )
    await consumer.start()
    try:
        partitions = sorted(
            consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
        )
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[int, bytes | None, bytes | None]] = []
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=idle_ms, max_records=10_000)
            if not batch:
                break
            for records in batch.values():
                out.extend((r.partition, r.key, r.value) for r in records)
        return out
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer.topics()
    cluster = await consumer._client.fetch_all_metadata()
    return set(cluster.partitions_for_topic(topic) or ())
