"""An in-process failure and restart (restart strategy) with the exactly-once sink."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from headwater.connectors.kafka import (
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
    DeliveryGuarantee,
    FixedDelayRestart,
    StreamEnvironment,
)

from .kafka_helpers import create_topic, produce, read_all


@pytest.mark.slow
async def test_exactly_once_across_a_restart_in_process(
    kafka_service: RunningService, unique_name: str
) -> None:
    b = kafka_service.address
    await create_topic(b, f"{unique_name}_in", 2)
    await create_topic(b, f"{unique_name}_out", 2)
    values = [b"%06d" % i for i in range(20_000)]
    await produce(b, f"{unique_name}_in", values, partitions=2)
    failed: list[bool] = []

    def fail_once(value: bytes) -> bytes:
        if value == b"015000" and not failed:
            failed.append(True)
            raise RuntimeError("injected failure")
        return value

    source = KafkaSource(
        KafkaSourceOptions(
            bootstrap_servers=b,
            topics=[f"{unique_name}_in"],
            stopping_offsets=Latest(),
            max_records_per_fetch=200,
        )
    )
    sink: KafkaSink[bytes] = KafkaSink(
        KafkaSinkOptions(
            bootstrap_servers=b,
            delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE,
            transactional_id_prefix=unique_name,
        ),
        KafkaRecordSerializer(topic=f"{unique_name}_out"),
    )
    env = StreamEnvironment(
        parallelism=2,
        checkpointing=CheckpointConfig(interval=timedelta(milliseconds=20)),
        restart_strategy=FixedDelayRestart(attempts=2, delay=timedelta(milliseconds=50)),
    )
    env.from_source(source).map(fail_once).rebalance().sink_to(sink)
    result = await (await env.execute_async("restart")).wait()
    assert result.status.value == "finished"
    assert result.restarts == 1
    got = Counter(v for _, v in await read_all(b, f"{unique_name}_out"))
    assert got == Counter(values)
