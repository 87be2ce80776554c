"""JDBC sink upserts into PostgreSQL: headwater against a raw psycopg loop, in the same run.

Both upsert the same rows (``N`` rows, keys ``i % (N // 2)``: half inserts, then half updates,
distinct keys within every batch) in batches of 1,000 with the same statement
(``INSERT ... ON CONFLICT (k) DO UPDATE``), one ``executemany`` and one commit per batch. headwater
runs DataGen -> JdbcSink (parallelism 1). N defaults to 1,000,000; set HEADWATER_BENCH_JDBC_ROWS for
a quick run. The server is HEADWATER_POSTGRES_URL if set, else the one ``tools/services up
postgres`` brings up (the machine's, started or installed if needed); a fresh database is created
and dropped. The server is shared and noisy, so the two run alternately for ``ROUNDS`` rounds (each
on a fresh table) and the best round of each counts. Both sides check the table afterwards: one
row per key holding the last value written for it (count and sum of ``v``).
Prints {"rows", "raw_rps", "headwater_rps", "ratio"}.
"""

from __future__ import annotations

import os
import random
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from headwater.connectors.jdbc import JdbcSink, JdbcSinkOptions
from headwater.core import DataGenSource, StreamEnvironment
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parent.parent
BATCH = 1000
ROUNDS = 2
TABLE_SQL = "CREATE TABLE {name} (k INTEGER PRIMARY KEY, v BIGINT NOT NULL, name TEXT NOT NULL)"
UPSERT = (
    "INSERT INTO {name} (k, v, name) VALUES (%s, %s, %s) "
    "ON CONFLICT (k) DO UPDATE SET v = excluded.v, name = excluded.name"
)


def _rows() -> int:
    return int(os.environ.get("HEADWATER_BENCH_JDBC_ROWS", "1000000"))


def _server() -> str:
    configured = os.environ.get("HEADWATER_POSTGRES_URL")
    if configured:
        return configured
    services = [sys.executable, str(ROOT / "tools" / "services")]
    subprocess.run([*services, "up", "postgres"], check=True, capture_output=True)
    env = subprocess.run([*services, "env", "postgres"], check=True, capture_output=True, text=True)
    return dict(token.split("=", 1) for token in shlex.split(env.stdout))["HEADWATER_POSTGRES_URL"]


def _check(dsn: str, table: str, n: int) -> None:
    """One row per key ``k`` with the last ``v`` written for it: ``k + half``."""
    half = n // 2
    with psycopg.connect(dsn) as conn:
        found = conn.execute(f"SELECT count(*), sum(v) FROM {table}").fetchone()
    assert found == (half, sum(range(half, n))), (table, found)


def _raw(dsn: str, n: int, table: str) -> float:
    half = n // 2
    sql = UPSERT.format(name=table)
    with psycopg.connect(dsn) as conn:
        conn.execute(TABLE_SQL.format(name=table))
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cur:
            for start in range(0, n, BATCH):
                cur.executemany(
                    sql, [(i % half, i, f"name-{i}") for i in range(start, min(n, start + BATCH))]
                )
                conn.commit()
        elapsed = time.perf_counter() - started
    _check(dsn, table, n)
    return n / elapsed


def _record(index: int, _rng: random.Random, half: int) -> dict[str, Any]:
    return {"k": index % half, "v": index, "name": f"name-{index}"}


def _headwater(url: str, dsn: str, n: int, table: str) -> float:
    half = n // 2
    with psycopg.connect(dsn) as conn:
        conn.execute(TABLE_SQL.format(name=table))
    env = StreamEnvironment(parallelism=1)
    source = DataGenSource(lambda i, rng: _record(i, rng, half), count=n, batch_size=BATCH)
    options = JdbcSinkOptions(
        url=url, table=table, key_columns=("k",), batch_size=BATCH, batch_interval=None
    )
    env.from_source(source).sink_to(JdbcSink(options))
    started = time.perf_counter()
    env.execute("jdbc-benchmark")
    elapsed = time.perf_counter() - started
    _check(dsn, table, n)
    return n / elapsed


def run() -> dict[str, float]:
    n = _rows()
    server = make_url(_server())
    database = f"hw_bench_{uuid.uuid4().hex[:8]}"
    admin_dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {database}")
    try:
        target = server.set(database=database)
        dsn = target.set(drivername="postgresql").render_as_string(hide_password=False)
        url = target.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        raw = headwater = 0.0
        for round_ in range(ROUNDS):
            raw = max(raw, _raw(dsn, n, f"bench_raw_{round_}"))
            headwater = max(headwater, _headwater(url, dsn, n, f"bench_hw_{round_}"))
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    return {
        "rows": n,
        "raw_rps": round(raw),
        "headwater_rps": round(headwater),
        "ratio": round(headwater / raw, 3),
    }
