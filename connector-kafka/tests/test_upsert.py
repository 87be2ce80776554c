"""Upsert-Kafka: changes written as keyed records and tombstones, read back as a changelog."""

from __future__ import annotations

from headwater.connectors.kafka import (
    KafkaSinkOptions,
    KafkaSourceOptions,
    Latest,
    RowKind,
    UpsertRecord,
    upsert_kafka_sink,
    upsert_kafka_source,
)
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import CollectSink, StreamEnvironment

from .kafka_helpers import create_topic, read_all


async def test_upsert_round_trip(kafka_service: RunningService, unique_name: str) -> None:
    b = kafka_service.address
    await create_topic(b, unique_name, 3)
    changes: list[UpsertRecord[str, int]] = [
        UpsertRecord(kind=RowKind.INSERT, key="a", value=1),
        UpsertRecord(kind=RowKind.INSERT, key="b", value=2),
        UpsertRecord(kind=RowKind.UPDATE_BEFORE, key="a", value=1),
        UpsertRecord(kind=RowKind.UPDATE_AFTER, key="a", value=10),
        UpsertRecord(kind=RowKind.DELETE, key="b"),
    ]
    sink = upsert_kafka_sink(
        KafkaSinkOptions(bootstrap_servers=b),
        topic=unique_name,
        key=str.encode,
        value=lambda v: str(v).encode(),
    )
    env = StreamEnvironment()
    env.from_collection(changes).sink_to(sink)
    await (await env.execute_async("upsert-write")).wait()
    written = await read_all(b, unique_name)
    assert sorted(written, key=lambda kv: (kv[0], kv[1] or b"")) == [
        (b"a", b"1"), (b"a", b"10"), (b"b", None), (b"b", b"2"),
    ]  # fmt: skip

    source = upsert_kafka_source(
        KafkaSourceOptions(bootstrap_servers=b, topics=[unique_name], stopping_offsets=Latest()),
        key=bytes.decode,
        value=int,
    )
    env = StreamEnvironment(parallelism=2)
    out: CollectSink[UpsertRecord[str, int]] = CollectSink()
    env.from_source(source).sink_to(out)
    await (await env.execute_async("upsert-read")).wait()
    per_key: dict[str, list[UpsertRecord[str, int]]] = {}
    for change in out.results():
        per_key.setdefault(change.key, []).append(change)
    assert per_key["a"] == [
        UpsertRecord(kind=RowKind.UPDATE_AFTER, key="a", value=1),
        UpsertRecord(kind=RowKind.UPDATE_AFTER, key="a", value=10),
    ]
    assert per_key["b"] == [
        UpsertRecord(kind=RowKind.UPDATE_AFTER, key="b", value=2),
        UpsertRecord(kind=RowKind.DELETE, key="b"),
    ]
