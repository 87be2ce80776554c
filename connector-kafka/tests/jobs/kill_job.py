"""A bounded job for the process-kill tests: Kafka -> map -> Kafka with 200 ms checkpoints.

Usage: python kill_job.py BOOTSTRAP INPUT_TOPIC OUTPUT_TOPIC CHECKPOINT_DIR MODE [RATE]
MODE is exactly_once or at_least_once. Every run resumes from the newest checkpoint in
CHECKPOINT_DIR. RATE caps the records per second of each reader (without blocking the loop), so
the test's kills land while the job is running.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

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
    InputStatus,
    ReaderOutput,
    SourceReader,
    SourceReaderContext,
    StreamEnvironment,
)


class _Counting:
    """A ReaderOutput that counts what passes through it and its split outputs (in ``total``)."""

    def __init__(self, output: ReaderOutput[Any], total: list[int] | None = None) -> None:
        self.output = output
        self.total = total if total is not None else [0]

    def collect(self, record: Any, timestamp: int | None = None, /) -> None:
        self.total[0] += 1
        self.output.collect(record, timestamp)

    def collect_batch(
        self, records: Sequence[Any], timestamps: Sequence[int | None] | None = None, /
    ) -> None:
        self.total[0] += len(records)
        self.output.collect_batch(records, timestamps)

    def split_output(self, split_id: str, /) -> _Counting:
        return _Counting(self.output.split_output(split_id), self.total)

    def release_split_output(self, split_id: str, /) -> None:
        self.output.release_split_output(split_id)

    def emit_watermark(self, timestamp: int, /) -> None:
        self.output.emit_watermark(timestamp)

    def mark_idle(self) -> None:
        self.output.mark_idle()


class ThrottledReader(SourceReader[bytes, KafkaPartitionSplit]):
    """Delegates to a Kafka reader, but emits at most ``rate`` records per second."""

    def __init__(self, reader: SourceReader[bytes, KafkaPartitionSplit], rate: float) -> None:
        self.reader = reader
        self.rate = rate
        self.started = time.monotonic()
        self.counting: _Counting | None = None

    async def start(self) -> None:
        self.started = time.monotonic()
        await self.reader.start()

    @property
    def emitted(self) -> int:
        return 0 if self.counting is None else self.counting.total[0]

    def _wait(self) -> float:
        return (self.emitted / self.rate) - (time.monotonic() - self.started)

    def poll_next(self, output: ReaderOutput[bytes]) -> InputStatus:
        if self._wait() > 0:
            return InputStatus.NOTHING_AVAILABLE
        if self.counting is None:  # one for the reader's life: the reader keeps its split outputs
            self.counting = _Counting(output)
        return self.reader.poll_next(self.counting)

    def is_available(self) -> asyncio.Future[None]:
        wait = self._wait()
        if wait <= 0:
            return self.reader.is_available()
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(
            wait, lambda: future.done() or future.set_result(None)
        )
        return future

    def add_splits(self, splits: Sequence[KafkaPartitionSplit]) -> None:
        self.reader.add_splits(splits)

    def notify_no_more_splits(self) -> None:
        self.reader.notify_no_more_splits()

    def snapshot_state(self, checkpoint_id: int) -> list[KafkaPartitionSplit]:
        return self.reader.snapshot_state(checkpoint_id)

    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        await self.reader.notify_checkpoint_complete(checkpoint_id)

    async def close(self) -> None:
        await self.reader.close()


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
