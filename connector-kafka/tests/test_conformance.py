"""connector-testing's conformance suites for the Kafka source and sink, against the real broker.

Source: the integers as JSON values in a fresh 2-partition topic, read with ``JsonFormat`` (so
the bad-record tests run: bad values are written into the same topic). Unbounded readers are
throttled (``headwater.core.testing.ThrottledReader``) so a 0.6 s run stops mid-topic. Sinks: every
delivery guarantee that promises something, under process kills and rescaling.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from headwater.connectors.base import ErrorPolicy, JsonFormat
from headwater.connectors.kafka import (
    Earliest,
    KafkaPartitionSplit,
    KafkaRecordSerializer,
    KafkaSink,
    KafkaSinkOptions,
    KafkaSource,
    KafkaSourceOptions,
    Latest,
)
from headwater.connectors.testing import (
    SinkExternalContext,
    SinkTestSuiteBase,
    SourceExternalContext,
    SourceTestSuiteBase,
)
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import DeliveryGuarantee, Sink, Source, SourceReader, SourceReaderContext
from headwater.core.testing import ThrottledReader

from .jobs.conformance_jobs import encode
from .kafka_helpers import create_topic, produce, produce_to_partition, read_all

JOBS = Path(__file__).parent / "jobs"


class ThrottledJsonSource(KafkaSource[Any]):
    """A KafkaSource whose readers emit at most ``rate`` records per second (test only)."""

    def __init__(self, options: KafkaSourceOptions, fmt: JsonFormat, rate: float) -> None:
        super().__init__(options, value_format=fmt)
        self.rate = rate

    def create_reader(self, context: SourceReaderContext) -> SourceReader[Any, KafkaPartitionSplit]:
        return ThrottledReader(super().create_reader(context), self.rate)


class KafkaSourceContext(SourceExternalContext):
    """Integers written as JSON values (keyed by themselves) into a fresh 2-partition topic."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        asyncio.run(create_topic(bootstrap, topic, 2))

    def write_test_data(self, records: Sequence[Any]) -> None:
        asyncio.run(produce(self.bootstrap, self.topic, [encode(r) for r in records], partitions=2))

    def write_test_data_in_splits(self, splits: Sequence[Sequence[Any]]) -> None:
        assert len(splits) == 2, "the topic has 2 partitions"

        async def write() -> None:
            for partition, records in enumerate(splits):
                await produce_to_partition(
                    self.bootstrap, self.topic, [encode(r) for r in records], partition
                )

        asyncio.run(write())

    def write_bad_records(self, count: int) -> None:
        bad = [b"{not json %d" % i for i in range(count)]
        asyncio.run(produce(self.bootstrap, self.topic, bad, partitions=2))

    def _options(self, *, bounded: bool) -> KafkaSourceOptions:
        return KafkaSourceOptions(
            bootstrap_servers=self.bootstrap,
            topics=[self.topic],
            starting_offsets=Earliest(),
            stopping_offsets=Latest() if bounded else None,
            max_records_per_fetch=50,
        )

    def create_source(self, *, bounded: bool) -> Source[Any, Any, Any]:
        if bounded:
            return KafkaSource(self._options(bounded=True), value_format=JsonFormat())
        return ThrottledJsonSource(self._options(bounded=False), JsonFormat(), rate=300)

    def create_source_with_error_policy(self, policy: ErrorPolicy) -> Source[Any, Any, Any]:
        return KafkaSource(self._options(bounded=True), value_format=JsonFormat(on_error=policy))


class TestKafkaSource(SourceTestSuiteBase):
    @pytest.fixture
    def external(self, kafka_service: RunningService, unique_name: str) -> KafkaSourceContext:
        return KafkaSourceContext(kafka_service.address, unique_name)


class KafkaSinkContext(SinkExternalContext):
    """A fresh 2-partition topic; integers are written as their digits, read back committed."""

    job_target = "conformance_jobs:kafka_sink_job"

    def __init__(self, bootstrap: str, topic: str, guarantee: DeliveryGuarantee) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.guarantee = guarantee
        asyncio.run(create_topic(bootstrap, topic, 2))

    def create_sink(self) -> Sink[Any]:
        eo = self.guarantee is DeliveryGuarantee.EXACTLY_ONCE
        options = KafkaSinkOptions(
            bootstrap_servers=self.bootstrap,
            delivery_guarantee=self.guarantee,
            # a fresh prefix per sink: a bounded test's ids never meet a kill test's
            transactional_id_prefix=f"{self.topic}-{uuid.uuid4().hex[:8]}" if eo else None,
        )
        return KafkaSink(options, KafkaRecordSerializer(topic=self.topic, value=encode))

    def read_back(self) -> list[Any]:
        return [
            int(value) for _, value in asyncio.run(read_all(self.bootstrap, self.topic)) if value
        ]

    def job_params(self) -> dict[str, str]:
        return {"bootstrap": self.bootstrap, "topic": self.topic, "guarantee": self.guarantee.value}


@pytest.fixture
def jobs_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kill tests' job processes import ``conformance_jobs`` from ``tests/jobs``."""
    path = os.pathsep.join(filter(None, [str(JOBS), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)


class TestKafkaSinkExactlyOnce(SinkTestSuiteBase):
    count = 1000

    @pytest.fixture
    def external(
        self, kafka_service: RunningService, unique_name: str, jobs_on_path: None
    ) -> KafkaSinkContext:
        return KafkaSinkContext(kafka_service.address, unique_name, DeliveryGuarantee.EXACTLY_ONCE)


class TestKafkaSinkAtLeastOnce(SinkTestSuiteBase):
    count = 1000

    @pytest.fixture
    def external(
        self, kafka_service: RunningService, unique_name: str, jobs_on_path: None
    ) -> KafkaSinkContext:
        return KafkaSinkContext(kafka_service.address, unique_name, DeliveryGuarantee.AT_LEAST_ONCE)
