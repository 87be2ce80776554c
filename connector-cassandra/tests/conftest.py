"""Fixtures: the real Cassandra 2.1 that ``tools/services`` starts, a keyspace per test, helpers.

Every client here pins ``protocol_version=3``: Cassandra 2.1 breaks the driver's negotiation (the
connector's option defaults to negotiation, for current servers).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cassandra.cluster import Cluster, Session
from headwater.connectors.cassandra import CassandraConnectionOptions
from headwater.connectors.testing.pytest_plugin import RunningService

sys.path.insert(0, str(Path(__file__).parent))  # cassandra_jobs, for tests and their job processes


@pytest.fixture
def connection(cassandra_service: RunningService) -> CassandraConnectionOptions:
    """Options reaching the test server with protocol v3."""
    return CassandraConnectionOptions(
        contact_points=(cassandra_service.host,), port=cassandra_service.port, protocol_version=3
    )


@pytest.fixture
def session(cassandra_service: RunningService, cassandra_keyspace: str) -> Iterator[Session]:
    """A driver session whose default keyspace is the test's keyspace."""
    cluster = Cluster([cassandra_service.host], port=cassandra_service.port, protocol_version=3)
    session = cluster.connect(cassandra_keyspace)
    try:
        yield session
    finally:
        cluster.shutdown()
