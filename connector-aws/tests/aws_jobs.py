"""Jobs for the process-kill conformance test (run by ``headwater.connectors.testing.jobrunner``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from headwater.connectors.aws import AwsClientOptions, DynamoDbSink, DynamoDbSinkOptions
from headwater.core import (
    CheckpointConfig,
    DataGenSource,
    ExponentialBackoffRestart,
    StreamEnvironment,
)


def dynamodb_job(
    *, checkpoint_dir: Path, parallelism: int, count: str, rate: str, endpoint: str, table: str
) -> StreamEnvironment:
    """``[0, count)`` at ``rate`` records/s, each put as ``{"id": n}`` into ``table``."""
    env = StreamEnvironment(
        parallelism=parallelism,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=200), storage=checkpoint_dir, restore_from="latest"
        ),
        restart_strategy=ExponentialBackoffRestart(initial=timedelta(milliseconds=100), attempts=3),
    )
    options = DynamoDbSinkOptions(
        table_name=table,
        key_attributes=("id",),
        client=AwsClientOptions(
            endpoint_url=endpoint,
            region="us-east-1",
            access_key_id="test",
            secret_access_key="test",
        ),
    )
    source = DataGenSource(lambda i, _rng: {"id": i}, count=int(count), rows_per_second=float(rate))
    env.from_source(source).sink_to(DynamoDbSink(options))
    return env
