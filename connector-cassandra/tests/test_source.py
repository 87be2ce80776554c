"""The source against the real server: bounded reads, splits, row formats, resume inside a split."""

from __future__ import annotations

from decimal import Decimal

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from headwater.connectors.cassandra import (
    CassandraConnectionOptions,
    CassandraSource,
    CassandraSourceOptions,
)
from headwater.core import StreamEnvironment


def _fill(session: Session, rows: int, per_partition: int = 1) -> list[tuple[int, int, Decimal]]:
    session.execute("CREATE TABLE items (p int, c int, amount decimal, PRIMARY KEY (p, c))")
    insert = session.prepare("INSERT INTO items (p, c, amount) VALUES (?, ?, ?)")
    data = [(i // per_partition, i % per_partition, Decimal(i) / 100) for i in range(rows)]
    execute_concurrent_with_args(session, insert, data, concurrency=64, raise_on_first_error=True)
    return data


def test_bounded_read_returns_every_row_once(
    session: Session, cassandra_keyspace: str, connection: CassandraConnectionOptions
) -> None:
    data = _fill(session, 3000, per_partition=7)
    source = CassandraSource(
        CassandraSourceOptions(
            connection=connection,
            keyspace=cassandra_keyspace,
            table="items",
            split_count=9,
            fetch_size=100,
        )
    )
    rows = StreamEnvironment(parallelism=3).from_source(source).execute_and_collect()
    assert sorted((r["p"], r["c"], r["amount"]) for r in rows) == sorted(data)
