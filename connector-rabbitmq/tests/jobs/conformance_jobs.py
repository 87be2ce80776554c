"""Jobs run in a child process by the RabbitMQ tests (connector-testing's jobrunner).

The tests put this directory on ``PYTHONPATH``; the targets are ``conformance_jobs:NAME``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from headwater.connectors.base import JsonFormat
from headwater.connectors.rabbitmq import (
    AckLedger,
    RabbitMQConnectionOptions,
    RabbitMQQueueSplit,
    RabbitMQSink,
    RabbitMQSinkOptions,
    RabbitMQSource,
    RabbitMQSourceOptions,
    RabbitMQSourceReader,
)
from headwater.core import (
    CheckpointConfig,
    DataGenSource,
    DeliveryGuarantee,
    ExponentialBackoffRestart,
    SourceReader,
    SourceReaderContext,
    StreamEnvironment,
)
from headwater.core.testing import FileTwoPhaseSink


def checkpointed(checkpoint_dir: Path, parallelism: int) -> StreamEnvironment:
    """An environment with 200 ms checkpoints in ``checkpoint_dir``, resuming from the newest."""
    return StreamEnvironment(
        parallelism=parallelism,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=200),
            timeout=timedelta(seconds=30),
            storage=checkpoint_dir,
            restore_from="latest",
        ),
        restart_strategy=ExponentialBackoffRestart(initial=timedelta(milliseconds=100), attempts=3),
    )


def rabbitmq_sink_job(
    *, checkpoint_dir: Path, parallelism: int, count: str, rate: str, url: str, queue: str
) -> StreamEnvironment:
    """``[0, count)`` at ``rate`` records/s published (confirmed, as JSON, id = the number) to ``queue``."""
    env = checkpointed(checkpoint_dir, parallelism)
    source = DataGenSource(lambda i, _rng: i, count=int(count), rows_per_second=float(rate))
    options = RabbitMQSinkOptions(
        connection=RabbitMQConnectionOptions.from_url(url), routing_key=queue
    )
    env.from_source(source).sink_to(
        RabbitMQSink(options, value_format=JsonFormat(), message_id=str)
    )
    return env


class _LateAckReader(RabbitMQSourceReader[Any]):
    """Acknowledges only at every ``every``-th completed checkpoint while it reads (test only).

    Acks of the checkpoints in between are not lost, only late (the next ack covers them): the
    window between a completed checkpoint and its ack, where a crash makes the broker redeliver
    messages that are already in the output, grows from milliseconds to ``every`` intervals.
    Once its splits are drained it acknowledges at every checkpoint, so the final one of the
    bounded job acknowledges everything.
    """

    def __init__(
        self, context: SourceReaderContext, source: RabbitMQSource[Any], every: int
    ) -> None:
        super().__init__(context, source.options, source.emitter)
        self._every = every
        self._reading: set[str] = set()

    def add_splits(self, splits: Sequence[RabbitMQQueueSplit]) -> None:
        self._reading.update(split.split_id for split in splits)
        super().add_splits(splits)

    def on_split_finished(self, finished: Mapping[str, AckLedger]) -> None:
        self._reading.difference_update(finished)
        super().on_split_finished(finished)

    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        if checkpoint_id % self._every == 0 or not self._reading:
            await super().notify_checkpoint_complete(checkpoint_id)


class LateAckSource(RabbitMQSource[Any]):
    """A RabbitMQ source whose readers acknowledge late (see :class:`_LateAckReader`)."""

    def __init__(self, options: RabbitMQSourceOptions, every: int) -> None:
        super().__init__(options, message_deserializer=lambda m: (m.message_id, int(m.body)))
        self.every = every

    def create_reader(self, context: SourceReaderContext) -> SourceReader[Any, RabbitMQQueueSplit]:
        return _LateAckReader(context, self, self.every)


def rabbitmq_source_job(
    *,
    checkpoint_dir: Path,
    parallelism: int,
    url: str,
    queues: str,
    out: str,
    guarantee: str,
    ack_every: str,
) -> StreamEnvironment:
    """Drain ``queues`` (comma-separated): (message id, number) -> (id, number * 2) -> files.

    The sink is core's exactly-once two-phase file sink, so duplicates in ``out`` come from the
    source alone.
    """
    env = checkpointed(checkpoint_dir, parallelism)
    options = RabbitMQSourceOptions(
        connection=RabbitMQConnectionOptions.from_url(url),
        queues=tuple(queues.split(",")),
        delivery_guarantee=DeliveryGuarantee(guarantee),
        bounded=True,
        # acks every 4th checkpoint (800 ms): each consumer reads at most ~3,000 messages a second,
        # so the 100,000 messages take long enough for every kill to land mid-job
        prefetch_count=2500,
    )
    (
        env.from_source(LateAckSource(options, int(ack_every)))
        .map(lambda pair: (pair[0], pair[1] * 2))
        .sink_to(FileTwoPhaseSink(out))
    )
    return env
