"""Jobs of the sink conformance tests under process kills (run by connector-testing's jobrunner).

The tests put this directory on ``PYTHONPATH``; the target is ``conformance_jobs:kafka_sink_job``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from headwater.connectors.kafka import KafkaRecordSerializer, KafkaSink, KafkaSinkOptions
from headwater.core import (
    CheckpointConfig,
    DataGenSource,
    DeliveryGuarantee,
    ExponentialBackoffRestart,
    StreamEnvironment,
)


def encode(n: int) -> bytes:
    """An integer as its decimal digits."""
    return str(n).encode()


def kafka_sink_job(
    *,
    checkpoint_dir: Path,
    parallelism: int,
    count: str,
    rate: str,
    bootstrap: str,
    topic: str,
    guarantee: str,
) -> StreamEnvironment:
    """``[0, count)`` at ``rate`` records/s into ``topic``, with the sink's ``guarantee``."""
    env = StreamEnvironment(
        parallelism=parallelism,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=200),
            timeout=timedelta(seconds=30),
            storage=checkpoint_dir,
            restore_from="latest",
        ),
        restart_strategy=ExponentialBackoffRestart(initial=timedelta(milliseconds=100), attempts=3),
    )
    delivery = DeliveryGuarantee(guarantee)
    options = KafkaSinkOptions(
        bootstrap_servers=bootstrap,
        delivery_guarantee=delivery,
        transactional_id_prefix=(
            f"{topic}-job" if delivery is DeliveryGuarantee.EXACTLY_ONCE else None
        ),
        transaction_timeout=timedelta(minutes=5),
    )
    source = DataGenSource(lambda i, _rng: i, count=int(count), rows_per_second=float(rate))
    env.from_source(source).sink_to(
        KafkaSink(options, KafkaRecordSerializer(topic=topic, value=encode))
    )
    return env
