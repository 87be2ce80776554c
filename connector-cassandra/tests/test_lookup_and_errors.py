"""Lookups through the async I/O operator, and bad input: protocol version, credentials, schema."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from cassandra.cluster import Session
from headwater.connectors.cassandra import (
    CassandraConnectionError,
    CassandraConnectionOptions,
    CassandraLookup,
    CassandraLookupOptions,
    CassandraSource,
    CassandraSourceOptions,
)
from headwater.connectors.cassandra._session import connect
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import AsyncDataStream, StreamEnvironment


def test_lookup_enriches_records_through_async_io(
    session: Session, cassandra_keyspace: str, connection: CassandraConnectionOptions
) -> None:
    session.execute("CREATE TABLE users (id int, seq int, name text, PRIMARY KEY (id, seq))")
    for user in range(20):
        for seq in range(user % 3):
            session.execute(
                "INSERT INTO users (id, seq, name) VALUES (%s, %s, %s)",
                (user, seq, f"u{user}-{seq}"),
            )
    lookup = CassandraLookup(
        CassandraLookupOptions(
            connection=connection,
            keyspace=cassandra_keyspace,
            table="users",
            key_columns=("id",),
            cache_ttl=timedelta(minutes=1),
        )
    )

    async def enrich(order: tuple[int, int]) -> tuple[int, list[str]]:
        rows = await lookup.alookup(order[1])
        return order[0], [row["name"] for row in rows]

    orders = [(i, i % 20) for i in range(200)]
    env = StreamEnvironment(parallelism=2)
    stream = env.from_collection(orders)
    got = AsyncDataStream.unordered_wait(
        stream, enrich, timedelta(seconds=10)
    ).execute_and_collect()
    expected = {i: [f"u{u}-{s}" for s in range(u % 3)] for i, u in orders}
    assert dict(got) == expected
    assert lookup.misses >= 20 and lookup.hits > 0
    assert lookup.hits + lookup.misses == len(orders)


def test_a_wrong_protocol_version_says_to_set_it(cassandra_service: RunningService) -> None:
    # Cassandra 2.1 speaks v3 only; negotiation (the default) and v4 both fail the handshake.
    for version in (None, 4):
        options = CassandraConnectionOptions(
            contact_points=(cassandra_service.host,),
            port=cassandra_service.port,
            protocol_version=version,
        )
        with pytest.raises(CassandraConnectionError, match=r"set connection\.protocol_version"):
            connect(options, "test")


def test_credentials_never_appear_in_errors_or_logs(
    cassandra_service: RunningService, caplog: pytest.LogCaptureFixture
) -> None:
    options = CassandraConnectionOptions(
        contact_points=(cassandra_service.host,),
        port=cassandra_service.port,
        protocol_version=4,
        username="app",
        password="hunter2-secret",
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CassandraConnectionError) as info:
        connect(options, "test")
    assert "hunter2-secret" not in str(info.value)
    assert "hunter2-secret" not in caplog.text
    assert "hunter2-secret" not in repr(options)


def test_source_names_an_unknown_table(
    cassandra_keyspace: str, connection: CassandraConnectionOptions
) -> None:
    source = CassandraSource(
        CassandraSourceOptions(connection=connection, keyspace=cassandra_keyspace, table="missing")
    )
    with pytest.raises(Exception) as info:
        StreamEnvironment(parallelism=1).from_source(source).execute_and_collect()
    text = repr(info.value) + str(info.value.__cause__)
    assert f"table '{cassandra_keyspace}.missing' does not exist" in text


def test_source_row_formats_and_where(
    session: Session, cassandra_keyspace: str, connection: CassandraConnectionOptions
) -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Reading:
        sensor: int
        at: int
        value: float

    session.execute(
        "CREATE TABLE readings (sensor int, at int, value double, PRIMARY KEY (sensor, at))"
    )
    for sensor in range(30):
        for at in range(10):
            session.execute(
                "INSERT INTO readings (sensor, at, value) VALUES (%s, %s, %s)",
                (sensor, at, sensor + at / 10),
            )
    options = CassandraSourceOptions(
        connection=connection,
        keyspace=cassandra_keyspace,
        table="readings",
        where="at >= 5",
        allow_filtering=True,
        record_factory=Reading,
        split_count=4,
        fetch_size=7,
    )
    got = (
        StreamEnvironment(parallelism=2).from_source(CassandraSource(options)).execute_and_collect()
    )
    assert sorted(got, key=lambda r: (r.sensor, r.at)) == [
        Reading(s, a, s + a / 10) for s in range(30) for a in range(5, 10)
    ]
