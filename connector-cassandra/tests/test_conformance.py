"""connector-testing's conformance suites against the real Cassandra 2.1.

Sink: records ``n`` become ``UPDATE counts SET n = n + 1 WHERE id = n`` (a counter), and reading
back yields each id as many times as it was counted, so the suites see every repeated write (an
upsert would hide them). Exactly-once must read back each id once; at-least-once each id at least
once.

Source: the Cassandra source is bounded (a scan of the table). The suite's "unbounded" tests need
a source that is still running when they stop it with a savepoint; ``create_source(bounded=False)``
gives the same scan one row per page, slow enough that the savepoint falls inside splits (pages
of four rows finished the 1,000-row scan within the suite's 0.6 s on an unloaded machine), so
those tests check resuming inside a split and rescaling a half-read scan.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.metadata import Murmur3Token
from cassandra_jobs import counting_sink
from headwater.connectors.cassandra import (
    CONNECTOR,
    CassandraConnectionOptions,
    CassandraSource,
    CassandraSourceOptions,
)
from headwater.connectors.cassandra._tokens import PARTITIONERS, token_ranges
from headwater.connectors.testing import (
    SinkExternalContext,
    SinkTestSuiteBase,
    SourceExternalContext,
    SourceTestSuiteBase,
)
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import (
    CollectSink,
    DeliveryGuarantee,
    Sink,
    Source,
    StreamEnvironment,
    installed_connectors,
)


def test_registered_for_the_installed_core() -> None:
    connector = next(c for c in installed_connectors() if c.identifier == "cassandra")
    assert connector.spec is CONNECTOR
    assert connector.compatible, connector.requirement


_SPLIT_COUNT = 8


class _Keyspace:
    def __init__(self, service: RunningService, keyspace: str) -> None:
        self.service = service
        self.keyspace = keyspace
        self.cluster = Cluster([service.host], port=service.port, protocol_version=3)
        self.session = self.cluster.connect(keyspace)

    def close(self) -> None:
        """Shut the test's own driver down (its threads outlive the test otherwise)."""
        self.cluster.shutdown()


class CassandraSinkContext(SinkExternalContext, _Keyspace):
    """A counter table ``counts (id int, n counter)``; read back: each id ``n`` times."""

    job_target = "cassandra_jobs:counting_job"

    def __init__(
        self, service: RunningService, keyspace: str, guarantee: DeliveryGuarantee
    ) -> None:
        _Keyspace.__init__(self, service, keyspace)
        self.guarantee = guarantee
        self.session.execute("CREATE TABLE counts (id int PRIMARY KEY, n counter)")

    def create_sink(self) -> Sink[Any]:
        return counting_sink(
            self.service.host, self.service.port, self.keyspace, self.guarantee.value
        )

    def read_back(self) -> list[Any]:
        return [
            row.id for row in self.session.execute("SELECT id, n FROM counts") for _ in range(row.n)
        ]

    def job_params(self) -> dict[str, str]:
        return {
            "host": self.service.host,
            "port": str(self.service.port),
            "keyspace": self.keyspace,
            "guarantee": self.guarantee.value,
        }


@pytest.fixture
def _jobs_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kill tests run the job in a subprocess that imports cassandra_jobs from this directory.
    here = str(Path(__file__).parent)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    )


class TestCassandraSinkExactlyOnce(SinkTestSuiteBase):
    count = 1000

    @pytest.fixture
    def external(
        self, cassandra_service: RunningService, cassandra_keyspace: str, _jobs_importable: None
    ) -> Iterator[CassandraSinkContext]:
        context = CassandraSinkContext(
            cassandra_service, cassandra_keyspace, DeliveryGuarantee.EXACTLY_ONCE
        )
        yield context
        context.close()


class TestCassandraSinkAtLeastOnce(SinkTestSuiteBase):
    count = 1000

    @pytest.fixture
    def external(
        self, cassandra_service: RunningService, cassandra_keyspace: str, _jobs_importable: None
    ) -> Iterator[CassandraSinkContext]:
        context = CassandraSinkContext(
            cassandra_service, cassandra_keyspace, DeliveryGuarantee.AT_LEAST_ONCE
        )
        yield context
        context.close()


class CassandraSourceContext(SourceExternalContext, _Keyspace):
    """A table ``numbers (bucket int, n int, PRIMARY KEY (bucket, n))``; records are ``n``.

    Every record is in one partition, clustered by ``n``: a token-range scan reads partitions in
    token order, not in the order they were written, and the suite's event-time test needs each
    split's records in order (its timestamps are the records). The other splits are empty, which
    is what that test is about.
    """

    def __init__(self, service: RunningService, keyspace: str) -> None:
        _Keyspace.__init__(self, service, keyspace)
        self.session.execute("CREATE TABLE numbers (bucket int, n int, PRIMARY KEY (bucket, n))")

    def write_test_data(self, records: Sequence[Any]) -> None:
        self._insert([(0, n) for n in records])

    def write_test_data_in_splits(self, splits: Sequence[Sequence[Any]]) -> None:
        """Each of ``splits`` in a partition (``bucket``) of its own token range, last split first.

        The scan reads the ranges in ring order, so the split ahead in event time (the second) is
        read before the one behind: a single watermark for the reader would make the latter late.
        """
        ring = PARTITIONERS["org.apache.cassandra.dht.Murmur3Partitioner"]
        ranges = token_ranges(ring, _SPLIT_COUNT)
        bucket_of_range: dict[int, int] = {}
        bucket = 0
        while len(bucket_of_range) < len(splits):
            token = Murmur3Token.from_key(struct.pack(">i", bucket)).value
            bucket_of_range.setdefault(
                next(i for i, r in enumerate(ranges) if r.start <= token <= r.end), bucket
            )
            bucket += 1
        buckets = [bucket_of_range[i] for i in sorted(bucket_of_range, reverse=True)]
        self._insert([(b, n) for b, records in zip(buckets, splits, strict=True) for n in records])

    def _insert(self, rows: list[tuple[int, int]]) -> None:
        insert = self.session.prepare("INSERT INTO numbers (bucket, n) VALUES (?, ?)")
        execute_concurrent_with_args(
            self.session, insert, rows, concurrency=64, raise_on_first_error=True
        )

    def create_source(self, *, bounded: bool) -> Source[Any, Any, Any]:
        options = CassandraSourceOptions(
            connection=CassandraConnectionOptions(
                contact_points=(self.service.host,), port=self.service.port, protocol_version=3
            ),
            keyspace=self.keyspace,
            table="numbers",
            columns=("n",),
            split_count=_SPLIT_COUNT,
            fetch_size=100 if bounded else 1,
            record_factory=_number,
        )
        return CassandraSource(options)


def _number(n: int) -> int:
    return n


class TestCassandraSource(SourceTestSuiteBase):
    timeout = 60.0  # the one-row pages of the "unbounded" scan are slow on a loaded machine

    def test_metrics(self, external: SourceExternalContext) -> None:
        """The suite's metrics test without ``numBytesIn``.

        cassandra-driver does not expose the size of a page it decoded, so the reader reports no
        bytes; connector-base's reader registers ``numBytesIn`` for every source (0 here), and the
        suite's test requires it to be positive when present.
        """
        external.write_test_data(list(range(self.count)))
        env = StreamEnvironment(parallelism=2)
        env.from_source(external.create_source(bounded=True), name="Source: conformance").sink_to(
            CollectSink()
        )
        result = env.execute("source conformance: metrics")
        metrics = result.metrics["Source: conformance"]
        assert metrics["numRecordsOut"] == self.count, metrics
        assert metrics["numRecordsIn"] == self.count, metrics
        assert metrics["numRecordsInErrors"] == 0, metrics
        assert metrics["numBytesIn"] == 0, "the driver gives no page sizes: update this test"

    @pytest.fixture
    def external(
        self, cassandra_service: RunningService, cassandra_keyspace: str
    ) -> Iterator[CassandraSourceContext]:
        context = CassandraSourceContext(cassandra_service, cassandra_keyspace)
        yield context
        context.close()
