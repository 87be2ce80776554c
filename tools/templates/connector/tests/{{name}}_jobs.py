"""The job the sink suite's process-kill tests run (in a process of its own) and kill."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from headwater.connectors.{{name}} import {{class_prefix}}Sink, {{class_prefix}}SinkOptions
from headwater.core import (
    CheckpointConfig,
    DataGenSource,
    ExponentialBackoffRestart,
    StreamEnvironment,
)


def {{name}}_sink_job(
    *, checkpoint_dir: Path, parallelism: int, count: str, rate: str, address: str, log: str
) -> StreamEnvironment:
    """The integers ``[0, count)`` at ``rate`` records/s into the log ``log`` at ``address``."""
    env = StreamEnvironment(
        parallelism=parallelism,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=200), storage=checkpoint_dir, restore_from="latest"
        ),
        restart_strategy=ExponentialBackoffRestart(initial=timedelta(milliseconds=100), attempts=3),
    )
    source = DataGenSource(lambda i, _rng: i, count=int(count), rows_per_second=float(rate))
    env.from_source(source).sink_to(
        {{class_prefix}}Sink({{class_prefix}}SinkOptions(address=address, log=log))
    )
    return env
