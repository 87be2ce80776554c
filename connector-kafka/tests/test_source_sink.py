"""The Kafka source and sink against the real broker (noida-db via tools/services)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from aiokafka.partitioner import murmur2
from headwater.connectors.base import DeadLetter, DeadLetterOnError, SkipOnError
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
from headwater.core import (
    CheckpointConfig,
    CollectSink,
    DeliveryGuarantee,
    JobFailedError,
    StreamEnvironment,
)

from .kafka_helpers import create_topic, produce, read_all, read_partitioned


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


async def test_oversized_records_follow_the_error_policy(
    kafka_service: RunningService, unique_name: str
) -> None:
    """A record over max_request_size: by default the job fails naming size, limit, topic and
    the option; with skip or dead-letter the others are written, nothing else. Both write paths
    (values only, and with keys)."""
    bootstrap = kafka_service.address
    small = values(40)
    big = b"B" * 5000

    def job(topic: str, policy: Any, *, keyed: bool) -> StreamEnvironment:
        env = StreamEnvironment()
        env.from_collection([*small[:20], big, *small[20:]]).sink_to(
            KafkaSink(
                KafkaSinkOptions(
                    bootstrap_servers=bootstrap, properties={"max_request_size": 4096}
                ),
                KafkaRecordSerializer(topic=topic, key=(lambda v: v[:4]) if keyed else None),
                on_record_too_large=policy,
            )
        )
        return env

    for keyed in (False, True):
        topic = f"{unique_name}-{keyed:d}"
        await create_topic(bootstrap, topic, 1)
        with pytest.raises(JobFailedError) as info:
            await run(job(topic, None, keyed=keyed))
        message = str(info.value)
        where = f"topic '{topic}' partition 0" if keyed else f"topic '{topic}'"
        assert "kafka sink: a record of 50" in message and f"bytes for {where} exceeds" in message
        assert (
            "max_request_size of 4096 bytes; raise option properties['max_request_size']" in message
        )
        letters: list[DeadLetter] = []
        for index, policy in enumerate([SkipOnError(), DeadLetterOnError(letters.append)]):
            topic = f"{unique_name}-{keyed:d}-{index}"
            await create_topic(bootstrap, topic, 1)
            await run(job(topic, policy, keyed=keyed))
            assert sorted(v for _, v in await read_all(bootstrap, topic)) == small
        assert [letter.payload for letter in letters] == [big]
