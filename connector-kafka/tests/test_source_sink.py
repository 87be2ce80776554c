"""The Kafka source and sink against the real broker (noida-db via tools/services)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from aiokafka.partitioner import murmur2
from headwater.connectors.kafka import (
    KafkaRecord,
    KafkaRecordSerializer,
    KafkaSink,
    KafkaSinkOptions,
    KafkaSource,
    KafkaSourceOptions,
    Latest,
)
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import CheckpointConfig, CollectSink, DeliveryGuarantee, StreamEnvironment

from .kafka_helpers import create_topic, produce, read_partitioned


def values(n: int, prefix: str = "v") -> list[bytes]:
    return [f"{prefix}{i:06d}".encode() for i in range(n)]


async def run(env: StreamEnvironment) -> None:
    client = await env.execute_async("test")
    result = await client.wait()
    assert result.status.value == "finished", result


async def test_bounded_read_equals_written(kafka_service: RunningService, unique_name: str) -> None:
    bootstrap = kafka_service.address
    await create_topic(bootstrap, unique_name, 3)
    written = values(3000)
    await produce(bootstrap, unique_name, written, partitions=3)
    source = KafkaSource(
        KafkaSourceOptions(
            bootstrap_servers=bootstrap, topics=[unique_name], stopping_offsets=Latest()
        ),
        record_deserializer=lambda r: (r.partition, r.offset, r.value),
    )
    env = StreamEnvironment(parallelism=2)
    sink: CollectSink[tuple[int, int, bytes]] = CollectSink()
    env.from_source(source).sink_to(sink)
    await run(env)
    got = sink.results()
    assert sorted(v for _, _, v in got) == sorted(written)
    assert {p for p, _, _ in got} == {0, 1, 2}
    for partition in range(3):
        offsets = [o for p, o, _ in got if p == partition]
        assert offsets == list(range(1000))


@pytest.mark.parametrize(
    "guarantee",
    [DeliveryGuarantee.NONE, DeliveryGuarantee.AT_LEAST_ONCE, DeliveryGuarantee.EXACTLY_ONCE],
)
async def test_sink_modes_write_everything(
    kafka_service: RunningService, unique_name: str, guarantee: DeliveryGuarantee
) -> None:
    bootstrap = kafka_service.address
    await create_topic(bootstrap, unique_name, 2)
    records = [{"id": i} for i in range(2000)]
    sink = KafkaSink(
        KafkaSinkOptions(
            bootstrap_servers=bootstrap,
            delivery_guarantee=guarantee,
            transactional_id_prefix=unique_name
            if guarantee is DeliveryGuarantee.EXACTLY_ONCE
            else None,
        ),
        KafkaRecordSerializer(
            topic=unique_name,
            key=lambda r: str(r["id"] % 7).encode(),
            value=lambda r: str(r["id"]).encode(),
            headers=lambda r: [("source", b"test")],
        ),
    )
    env = StreamEnvironment(
        parallelism=2, checkpointing=CheckpointConfig(interval=timedelta(milliseconds=100))
    )
    env.from_collection(records).rebalance().sink_to(sink)
    await run(env)
    got = await read_partitioned(bootstrap, unique_name)
    assert Counter(v for _, _, v in got) == Counter(str(i).encode() for i in range(2000))
    assert {k for _, k, _ in got} == {str(i).encode() for i in range(7)}
    assert {p for p, _, _ in got} == {0, 1}, "the keys spread over both partitions"
    # A key lands in the partition the Java client picks: murmur2(key) made positive, mod 2.
    for partition, key, value in got:
        assert key is not None
        assert partition == (murmur2(key) & 0x7FFFFFFF) % 2, (key, value, partition)


@pytest.mark.parametrize(
    ("key", "java_hash"),
    [  # Utils.murmur2 of the Java client (from its UtilsTest; Akka's Murmur2Spec checks 1..12345)
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
        (b"1", -1993445489),
        (b"12345", -1188365604),
    ],
)
def test_murmur2_is_the_java_clients(key: bytes, java_hash: int) -> None:
    """The hash the partition test relies on is the Java client's (as a signed 32-bit int)."""
    assert murmur2(key) & 0xFFFFFFFF == java_hash & 0xFFFFFFFF


def test_kafka_record_is_frozen() -> None:
    record = KafkaRecord(topic="t", partition=0, offset=1, timestamp=2, key=None, value=b"x")
    with pytest.raises(AttributeError):
        record.offset = 5  # type: ignore[misc]


@pytest.mark.parametrize("with_headers", [False, True], ids=["values-only", "with-headers"])
async def test_keyless_records_switch_partition_when_a_batch_is_full(
    kafka_service: RunningService, unique_name: str, with_headers: bool
) -> None:
    """Sticky partitioning: one partition per producer batch, the next one when it is full.

    Values only take the sink's fast path; a headers hook takes the general one.
    """
    bootstrap = kafka_service.address
    await create_topic(bootstrap, unique_name, 3)
    written = values(400)  # one write_batch; about 60 records fit a batch of 1 KiB
    sink: KafkaSink[bytes] = KafkaSink(
        KafkaSinkOptions(bootstrap_servers=bootstrap, max_batch_size=1024),
        KafkaRecordSerializer(
            topic=unique_name, headers=(lambda r: [("h", b"1")]) if with_headers else None
        ),
    )
    env = StreamEnvironment(parallelism=1)
    env.from_collection(written).sink_to(sink)
    await run(env)
    source = KafkaSource(
        KafkaSourceOptions(
            bootstrap_servers=bootstrap, topics=[unique_name], stopping_offsets=Latest()
        ),
        record_deserializer=lambda r: (r.partition, r.offset, r.value),
    )
    collected: CollectSink[tuple[int, int, bytes]] = CollectSink()
    reader = StreamEnvironment(parallelism=1)
    reader.from_source(source).sink_to(collected)
    await run(reader)
    got = sorted(collected.results())
    assert sorted(v for _, _, v in got) == written
    per_partition = {p: [v for q, _, v in got if q == p] for p in range(3)}
    assert all(per_partition.values()), "every partition got full batches"
    assert all(vs == sorted(vs) for vs in per_partition.values()), "order kept per partition"
