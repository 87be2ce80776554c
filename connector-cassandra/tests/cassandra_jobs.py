"""Jobs for the sink conformance suite's process-kill tests (run by connector-testing's jobrunner)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from headwater.connectors.cassandra import (
    CassandraConnectionOptions,
    CassandraSink,
    CassandraSinkOptions,
)
from headwater.core import (
    CheckpointConfig,
    DataGenSource,
    DeliveryGuarantee,
    ExponentialBackoffRestart,
    StreamEnvironment,
)


def id_field(n: int) -> dict[str, int]:
    """The statement's fields of the integer record ``n``."""
    return {"id": n}


def counting_sink(host: str, port: int, keyspace: str, guarantee: str) -> CassandraSink:
    """``UPDATE counts SET n = n + 1 WHERE id = :id``: every write of an id counts, repeats show."""
    options = CassandraSinkOptions(
        connection=CassandraConnectionOptions(
            contact_points=(host,), port=port, protocol_version=3
        ),
        keyspace=keyspace,
        cql=f"UPDATE {keyspace}.counts SET n = n + 1 WHERE id = :id",
        delivery_guarantee=DeliveryGuarantee(guarantee),
    )
    return CassandraSink(options, element_converter=id_field)


def counting_job(
    *,
    checkpoint_dir: Path,
    parallelism: int,
    count: str,
    rate: str,
    host: str,
    port: str,
    keyspace: str,
    guarantee: str,
) -> StreamEnvironment:
    """``[0, count)`` at ``rate`` records/s into :func:`counting_sink`."""
    env = StreamEnvironment(
        parallelism=parallelism,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=200), storage=checkpoint_dir, restore_from="latest"
        ),
        restart_strategy=ExponentialBackoffRestart(initial=timedelta(milliseconds=100), attempts=3),
    )
    source = DataGenSource(lambda i, _rng: i, count=int(count), rows_per_second=float(rate))
    env.from_source(source).sink_to(counting_sink(host, int(port), keyspace, guarantee))
    return env
