"""Outage test: PostgreSQL connections are cut and refused for 10 s in mid-job (TCP proxy from
tools/services); the job recovers by itself through its restart strategy and loses nothing."""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from headwater.connectors.jdbc import JdbcSink, JdbcSinkOptions
from headwater.core import (
    CheckpointConfig,
    DataGenSource,
    DeliveryGuarantee,
    ExponentialBackoffRestart,
    StreamEnvironment,
)

COUNT = 40_000


def row(index: int, rng: random.Random) -> dict[str, int]:
    return {"id": index, "v": rng.randrange(1000)}


@pytest.mark.slow
def test_job_survives_a_ten_second_database_outage(
    databases, tcp_proxy_factory, tmp_path: Path
) -> None:
    db = databases["postgresql"]
    table = db.table("outage")
    db.execute(f"CREATE TABLE {table} (id INTEGER NOT NULL, v INTEGER NOT NULL)")
    proxy = tcp_proxy_factory(db.url.host, db.url.port)
    url = db.url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    env = StreamEnvironment(
        parallelism=2,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=200), storage=tmp_path / "c"
        ),
        restart_strategy=ExponentialBackoffRestart(
            initial=timedelta(milliseconds=500), maximum=timedelta(seconds=2), jitter=0.1
        ),
    )
    options = JdbcSinkOptions(
        url=url,
        table=table,
        batch_size=500,
        max_retries=2,
        retry_backoff=timedelta(milliseconds=100),
        max_retry_backoff=timedelta(milliseconds=400),
        operation_timeout=timedelta(seconds=5),  # a half-open connection fails the attempt
        delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE,
    )
    source = DataGenSource(row, count=COUNT, rows_per_second=8_000, seed=5)
    env.from_source(source, name="rows").rebalance().sink_to(JdbcSink(options))
    outage = threading.Timer(1.5, proxy.refuse)  # cut every connection and refuse new ones
    back = threading.Timer(11.5, proxy.restore)
    outage.start()
    back.start()
    try:
        result = env.execute("jdbc-outage")
    finally:
        outage.cancel()
        back.cancel()
        proxy.restore()
    assert result.restarts >= 1, "the outage failed at least one attempt"
    expected = sorted((r["id"], r["v"]) for r in source._producer()(0, COUNT))
    assert sorted(db.query(f"SELECT id, v FROM {table}")) == expected
