"""Jobs for :mod:`.jobrunner` that write DataGen integers into core's file test-double sinks.

They are the ``job_target`` of the suites' self-tests and an example for connectors' own jobs.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from headwater.core import (
    CheckpointConfig,
    DataGenSource,
    ExponentialBackoffRestart,
    Sink,
    StreamEnvironment,
)
from headwater.core.testing import FileAppendSink, FileTwoPhaseSink

__all__ = ["append_file_job", "two_phase_file_job"]


def _job(sink: Sink[int], checkpoint_dir: Path, parallelism: int, count: str, rate: str) -> StreamEnvironment:
    env = StreamEnvironment(
        parallelism=parallelism,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=200), storage=checkpoint_dir, restore_from="latest"
        ),
        restart_strategy=ExponentialBackoffRestart(initial=timedelta(milliseconds=100), attempts=3),
    )
    source = DataGenSource(lambda i, _rng: i, count=int(count), rows_per_second=float(rate))
    env.from_source(source).sink_to(sink)
    return env


def two_phase_file_job(
    *, checkpoint_dir: Path, parallelism: int, out: str, count: str, rate: str
) -> StreamEnvironment:
    """``[0, count)`` at ``rate`` records/s into :class:`FileTwoPhaseSink` at ``out``."""
    return _job(FileTwoPhaseSink(out), checkpoint_dir, parallelism, count, rate)


def append_file_job(
    *, checkpoint_dir: Path, parallelism: int, out: str, count: str, rate: str
) -> StreamEnvironment:
    """``[0, count)`` at ``rate`` records/s into :class:`FileAppendSink` at ``out`` (at-least-once)."""
    return _job(FileAppendSink(out), checkpoint_dir, parallelism, count, rate)
