"""Cassandra sink and source against the raw driver, in the same run, on the same server.

Sink: ``N`` rows (distinct keys) inserted with one prepared statement. The limit is the driver's
``execute_concurrent_with_args`` with that statement at concurrency ``CONCURRENCY``; headwater runs
DataGen -> CassandraSink (parallelism 1, ``max_concurrent_requests = CONCURRENCY``), at-least-once
and exactly-once (200 ms checkpoints, so commits overlap the stream). Each table is counted after
its run (``count(*) == N``, checked on both sides).

Source: the limit is a raw paged token-range scan (``SPLITS`` ranges, ``FETCH`` rows per page,
``execute`` and ``fetch_next_page`` one after another); headwater reads the same table with
CassandraSource (same splits and fetch size, parallelism 1). Both counts must equal ``N``.

The server is HEADWATER_CASSANDRA_HOST / HEADWATER_CASSANDRA_PORT (default 127.0.0.1:9042; start
one with ``tools/services up cassandra``), spoken to with protocol v3 (Cassandra 2.1). N defaults
to 100,000 (HEADWATER_BENCH_CASSANDRA_ROWS). Prints {"raw_rps", "alo_rps", "eo_rps", "ratio_alo",
"ratio_eo", "raw_scan_rps", "scan_rps", "ratio_scan"}.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta
from typing import Any

from cassandra.cluster import Cluster, Session
from cassandra.concurrent import execute_concurrent_with_args
from headwater.connectors.cassandra import (
    CassandraConnectionOptions,
    CassandraSink,
    CassandraSinkOptions,
    CassandraSource,
    CassandraSourceOptions,
)
from headwater.connectors.cassandra._tokens import PARTITIONERS, token_ranges
from headwater.core import (
    CheckpointConfig,
    DataGenSource,
    DeliveryGuarantee,
    DiscardingSink,
    StreamEnvironment,
)

CONCURRENCY = 64
SPLITS = 8
FETCH = 1000
TABLE_SQL = "CREATE TABLE {name} (k int PRIMARY KEY, v bigint, name text)"


def _record(index: int, _rng: Any) -> dict[str, Any]:
    return {"k": index, "v": index * 3, "name": f"name-{index}"}


def _count(session: Session, table: str) -> int:
    return int(session.execute(f"SELECT count(*) FROM {table} LIMIT 10000000").one()[0])


def _raw_sink(session: Session, table: str, n: int) -> float:
    insert = session.prepare(f"INSERT INTO {table} (k, v, name) VALUES (?, ?, ?)")
    rows = [(i, i * 3, f"name-{i}") for i in range(n)]
    started = time.perf_counter()
    execute_concurrent_with_args(
        session, insert, rows, concurrency=CONCURRENCY, raise_on_first_error=True
    )
    elapsed = time.perf_counter() - started
    assert _count(session, table) == n
    return n / elapsed


def _headwater_sink(
    session: Session,
    connection: CassandraConnectionOptions,
    keyspace: str,
    table: str,
    n: int,
    guarantee: DeliveryGuarantee,
) -> float:
    env = StreamEnvironment(
        parallelism=1, checkpointing=CheckpointConfig(interval=timedelta(milliseconds=200))
    )
    options = CassandraSinkOptions(
        connection=connection,
        keyspace=keyspace,
        table=table,
        key_columns=("k",),
        max_concurrent_requests=CONCURRENCY,
        delivery_guarantee=guarantee,
    )
    env.from_source(DataGenSource(_record, count=n, batch_size=1000)).sink_to(
        CassandraSink(options)
    )
    started = time.perf_counter()
    env.execute("cassandra-benchmark-sink")
    elapsed = time.perf_counter() - started
    assert _count(session, f"{keyspace}.{table}") == n
    return n / elapsed


def _raw_scan(session: Session, table: str) -> tuple[float, int]:
    ring = PARTITIONERS["org.apache.cassandra.dht.Murmur3Partitioner"]
    ranges = token_ranges(ring, SPLITS)
    first = session.prepare(f"SELECT k, v, name FROM {table} WHERE token(k) >= ? AND token(k) <= ?")
    rest = session.prepare(f"SELECT k, v, name FROM {table} WHERE token(k) > ? AND token(k) <= ?")
    first.fetch_size = rest.fetch_size = FETCH
    rows = 0
    started = time.perf_counter()
    for r in ranges:
        result = session.execute((first if r.start_inclusive else rest).bind((r.start, r.end)))
        while True:
            rows += len(result.current_rows)
            if not result.has_more_pages:
                break
            result.fetch_next_page()
    return rows / (time.perf_counter() - started), rows


def _headwater_scan(
    connection: CassandraConnectionOptions, keyspace: str, table: str
) -> tuple[float, int]:
    options = CassandraSourceOptions(
        connection=connection, keyspace=keyspace, table=table, split_count=SPLITS, fetch_size=FETCH
    )
    env = StreamEnvironment(parallelism=1)
    env.from_source(CassandraSource(options), name="Source: scan").sink_to(DiscardingSink())
    started = time.perf_counter()
    result = env.execute("cassandra-benchmark-scan")
    elapsed = time.perf_counter() - started
    rows = int(result.metrics["Source: scan"]["numRecordsOut"])
    return rows / elapsed, rows


def run() -> dict[str, float]:
    n = int(os.environ.get("HEADWATER_BENCH_CASSANDRA_ROWS", "100000"))
    host = os.environ.get("HEADWATER_CASSANDRA_HOST", "127.0.0.1")
    port = int(os.environ.get("HEADWATER_CASSANDRA_PORT", "9042"))
    connection = CassandraConnectionOptions(contact_points=(host,), port=port, protocol_version=3)
    keyspace = f"hw_bench_{uuid.uuid4().hex[:8]}"
    cluster = Cluster([host], port=port, protocol_version=3)
    session = cluster.connect()
    session.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    try:
        for name in ("raw", "alo", "eo"):
            session.execute(TABLE_SQL.format(name=f"{keyspace}.{name}"))
        raw = _raw_sink(session, f"{keyspace}.raw", n)
        alo = _headwater_sink(
            session, connection, keyspace, "alo", n, DeliveryGuarantee.AT_LEAST_ONCE
        )
        eo = _headwater_sink(session, connection, keyspace, "eo", n, DeliveryGuarantee.EXACTLY_ONCE)
        raw_scan, raw_rows = _raw_scan(session, f"{keyspace}.raw")
        scan, scan_rows = _headwater_scan(connection, keyspace, "raw")
        assert raw_rows == scan_rows == n, (raw_rows, scan_rows, n)
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
        cluster.shutdown()
    return {
        "rows": n,
        "raw_rps": round(raw),
        "alo_rps": round(alo),
        "eo_rps": round(eo),
        "ratio_alo": round(alo / raw, 3),
        "ratio_eo": round(eo / raw, 3),
        "raw_scan_rps": round(raw_scan),
        "scan_rps": round(scan),
        "ratio_scan": round(scan / raw_scan, 3),
    }
