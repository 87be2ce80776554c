"""A bounded job for the process-kill tests: Kafka -> map -> Kafka with 200 ms checkpoints.

Usage: python kill_job.py BOOTSTRAP INPUT_TOPIC OUTPUT_TOPIC CHECKPOINT_DIR MODE [RATE]
MODE is exactly_once or at_least_once. Every run resumes from the newest checkpoint in
CHECKPOINT_DIR. RATE caps the records per second of each reader (without blocking the loop), so
the test's kills land while the job is running.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from headwater.connectors.kafka import (
    KafkaPartitionSplit,
    KafkaRecordSerializer,
    KafkaSink,
    KafkaSinkOptions,
    KafkaSource,
    KafkaSourceOptions,
    Latest,
)
from headwater.core import (
    CheckpointConfig,
    DeliveryGuarantee,
    SourceReader,
    SourceReaderContext,
    StreamEnvironment,
)
from headwater.core.testing import ThrottledReader


class ThrottledKafkaSource(KafkaSource[bytes]):
    """A KafkaSource whose readers are throttled (test only)."""

    def __init__(self, options: KafkaSourceOptions, rate: float) -> None:
        super().__init__(options)
        self.rate = rate

    def create_reader(
        self, context: SourceReaderContext
    ) -> SourceReader[bytes, KafkaPartitionSplit]:
        reader = super().create_reader(context)
        return ThrottledReader(reader, self.rate) if self.rate > 0 else reader


def transform(value: bytes) -> bytes:
    return value + b"-mapped"


def main() -> None:
    bootstrap, input_topic, output_topic, checkpoints, mode = sys.argv[1:6]
    rate = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    exactly_once = mode == "exactly_once"
    env = StreamEnvironment(
        parallelism=2,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=200),
            timeout=timedelta(seconds=30),
            storage=Path(checkpoints),
            restore_from="latest",
        ),
    )
    source = ThrottledKafkaSource(
        KafkaSourceOptions(
            bootstrap_servers=bootstrap,
            topics=[input_topic],
            stopping_offsets=Latest(),
            max_records_per_fetch=500,
        ),
        rate,
    )
    sink: KafkaSink[bytes] = KafkaSink(
        KafkaSinkOptions(
            bootstrap_servers=bootstrap,
            delivery_guarantee=(
                DeliveryGuarantee.EXACTLY_ONCE if exactly_once else DeliveryGuarantee.AT_LEAST_ONCE
            ),
            transactional_id_prefix=f"{output_topic}-job" if exactly_once else None,
            transaction_timeout=timedelta(minutes=5),
        ),
        KafkaRecordSerializer(topic=output_topic),
    )
    env.from_source(source, name="kafka-in").map(transform).rebalance().sink_to(sink)
    env.execute("kafka-kill-test")


if __name__ == "__main__":
    main()
