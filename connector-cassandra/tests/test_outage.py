"""Cassandra frozen (SIGSTOP) for 10 s in the middle of a job, then resumed: the job recovers.

Exactly-once into a counter table, so the result shows any write lost or repeated across the
timeouts, retries and reconnections the outage causes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter
from datetime import timedelta

import pytest
from cassandra.cluster import Session
from headwater.connectors.cassandra import (
    CassandraConnectionOptions,
    CassandraSink,
    CassandraSinkOptions,
)
from headwater.connectors.testing.pytest_plugin import RunningService, ServicesRunner
from headwater.core import (
    CheckpointConfig,
    DataGenSource,
    DeliveryGuarantee,
    FixedDelayRestart,
    StreamEnvironment,
)

COUNT = 6000
KEYS = 30


def _record(index: int, _rng: object) -> dict[str, int]:
    return {"k": index % KEYS}


@pytest.mark.slow
def test_job_recovers_from_a_10_second_freeze_exactly(
    session: Session,
    cassandra_service: RunningService,
    cassandra_keyspace: str,
    headwater_services: ServicesRunner,
) -> None:
    session.execute("CREATE TABLE hits (k int PRIMARY KEY, n counter)")
    state = json.loads((headwater_services.state_dir / "cassandra.json").read_text())
    pid = int(state["pid"])
    sink = CassandraSink(
        CassandraSinkOptions(
            connection=CassandraConnectionOptions(
                contact_points=(cassandra_service.host,),
                port=cassandra_service.port,
                protocol_version=3,
                request_timeout=timedelta(seconds=2),
            ),
            keyspace=cassandra_keyspace,
            cql=f"UPDATE {cassandra_keyspace}.hits SET n = n + 1 WHERE k = :k",
            delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE,
        )
    )

    async def run() -> None:
        env = StreamEnvironment(
            parallelism=2,
            checkpointing=CheckpointConfig(interval=timedelta(milliseconds=200)),
            restart_strategy=FixedDelayRestart(attempts=20, delay=timedelta(seconds=1)),
        )
        env.from_source(DataGenSource(_record, count=COUNT, rows_per_second=500)).sink_to(sink)
        client = await env.execute_async("cassandra outage")
        await asyncio.sleep(3)
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(10)
        finally:
            os.kill(pid, signal.SIGCONT)
        await asyncio.wait_for(client.wait(), timeout=180)

    asyncio.run(run())
    counts = {row.k: row.n for row in session.execute("SELECT k, n FROM hits")}
    assert counts == dict(Counter(i % KEYS for i in range(COUNT)))
