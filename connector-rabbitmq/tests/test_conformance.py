"""connector-testing's conformance suites for the RabbitMQ source and sink, against the real broker.

Source: the integers as JSON bodies with unique message ids, spread over two queues (two splits),
read with ``JsonFormat`` (the per-split tests write a queue per split): ``EXACTLY_ONCE`` when unbounded, ``NONE`` when bounded (the suite's bounded
jobs take no periodic checkpoints). Unbounded sources use a prefetch of 20: acks wait
for checkpoints (every 100 ms in the suite), so each consumer reads about 200 messages a second
and a 0.6 s run stops mid-queue. Sink: at-least-once with confirms, read back by draining the queue.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from headwater.connectors.base import ErrorPolicy, JsonFormat
from headwater.connectors.rabbitmq import (
    RabbitMQConnectionOptions,
    RabbitMQSink,
    RabbitMQSinkOptions,
    RabbitMQSource,
    RabbitMQSourceOptions,
)
from headwater.connectors.testing import (
    SinkExternalContext,
    SinkTestSuiteBase,
    SourceExternalContext,
    SourceTestSuiteBase,
)
from headwater.core import DeliveryGuarantee, Sink, Source

from .rabbitmq_helpers import declare, drain, publish


class RabbitMQSourceContext(SourceExternalContext):
    """Integers as JSON bodies (message id ``m<n>``), round-robin over two fresh queues."""

    def __init__(self, url: str, queues: Sequence[str]) -> None:
        self.url = url
        self.queues = tuple(queues)
        self._ids = itertools.count()
        declare(url, *self.queues)

    def _publish(self, bodies: list[bytes]) -> None:
        for i, queue in enumerate(self.queues):
            mine = bodies[i :: len(self.queues)]
            publish(self.url, queue, mine, [f"m{next(self._ids)}" for _ in mine])

    def write_test_data(self, records: Sequence[Any]) -> None:
        self._publish([str(r).encode() for r in records])

    def write_test_data_in_splits(self, splits: Sequence[Sequence[Any]]) -> None:
        """Each of ``splits`` into a queue of its own (one consumer per queue: a split each)."""
        assert len(splits) <= len(self.queues), f"the context has {len(self.queues)} queues"
        for queue, records in zip(self.queues, splits, strict=False):
            publish(
                self.url,
                queue,
                [str(r).encode() for r in records],
                [f"m{next(self._ids)}" for _ in records],
            )

    def write_bad_records(self, count: int) -> None:
        self._publish([b"{not json %d" % i for i in range(count)])

    def options(self, *, bounded: bool) -> RabbitMQSourceOptions:
        return RabbitMQSourceOptions(
            connection=RabbitMQConnectionOptions.from_url(self.url),
            queues=self.queues,
            # The suite's bounded jobs take no periodic checkpoint: acknowledging on the final
            # one would cap each consumer at its prefetch. NONE acknowledges as it emits.
            delivery_guarantee=DeliveryGuarantee.NONE
            if bounded
            else DeliveryGuarantee.EXACTLY_ONCE,
            bounded=bounded,
            max_messages_per_fetch=20,
            prefetch_count=None if bounded else 20,
            fetch_timeout="PT0.1S",
        )

    def create_source(self, *, bounded: bool) -> Source[Any, Any, Any]:
        return RabbitMQSource(self.options(bounded=bounded), value_format=JsonFormat())

    def create_source_with_error_policy(self, policy: ErrorPolicy) -> Source[Any, Any, Any]:
        return RabbitMQSource(self.options(bounded=True), value_format=JsonFormat(on_error=policy))


class TestRabbitMQSource(SourceTestSuiteBase):
    @pytest.fixture
    def external(self, rabbitmq_url: str, queues: list[str]) -> RabbitMQSourceContext:
        return RabbitMQSourceContext(rabbitmq_url, queues[:2])


class RabbitMQSinkContext(SinkExternalContext):
    """A fresh queue fed through the default exchange; integers are JSON bodies."""

    job_target = "conformance_jobs:rabbitmq_sink_job"
    guarantee = DeliveryGuarantee.AT_LEAST_ONCE

    def __init__(self, url: str, queue: str) -> None:
        self.url = url
        self.queue = queue
        self._read: list[int] = []
        declare(url, queue)

    def create_sink(self) -> Sink[Any]:
        options = RabbitMQSinkOptions(
            connection=RabbitMQConnectionOptions.from_url(self.url), routing_key=self.queue
        )
        return RabbitMQSink(options, value_format=JsonFormat(), message_id=str)

    def read_back(self) -> list[Any]:
        # Draining empties the queue: keep what was read for later calls.
        self._read += [int(body) for _, body in drain(self.url, self.queue)]
        return list(self._read)

    def job_params(self) -> dict[str, str]:
        return {"url": self.url, "queue": self.queue}


class TestRabbitMQSink(SinkTestSuiteBase):
    count = 1000

    @pytest.fixture
    def external(
        self, rabbitmq_url: str, queues: list[str], jobs_on_path: None
    ) -> RabbitMQSinkContext:
        return RabbitMQSinkContext(rabbitmq_url, queues[0])
