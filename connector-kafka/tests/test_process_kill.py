"""Process-level failure tests: Kafka -> map -> Kafka, SIGKILLed at random moments, restarted from
its checkpoints; a read_committed consumer must then see every input record exactly once
(EXACTLY_ONCE) or at least once (AT_LEAST_ONCE)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core.testing import kill_after_checkpoints

from .kafka_helpers import create_topic, produce, read_all

JOB = Path(__file__).parent / "jobs" / "kill_job.py"
COUNT = 200_000
RATE = 6000
"""Records per second per reader (2 readers): the job needs ~17 s; a killed run gets 1-3
checkpoints (200 ms apart) of progress, so 20 kills land mid-job."""


def run_with_kills(
    bootstrap: str, topic: str, tmp_path: Path, mode: str, kills: int, seed: int
) -> None:
    """Start the job, SIGKILL it ``kills`` times at random moments, then let it finish."""
    cmd = [
        sys.executable, str(JOB), bootstrap, f"{topic}_in", f"{topic}_out",
        str(tmp_path / "checkpoints"), mode, str(RATE),
    ]  # fmt: skip
    # Kills follow the job's checkpoints, not the clock: a job process can take seconds to start
    # on a loaded machine, and clock-based kills then land before anything is written (the
    # exactly-once test's check that aborted transactions exist caught that).
    kill_after_checkpoints(
        cmd, tmp_path / "checkpoints", kills=kills, checkpoints=(1, 3), seed=seed
    ).check(kills)


async def prepare(bootstrap: str, topic: str) -> list[bytes]:
    await create_topic(bootstrap, f"{topic}_in", 4)
    await create_topic(bootstrap, f"{topic}_out", 3)
    values = [b"%08d" % i for i in range(COUNT)]
    await produce(bootstrap, f"{topic}_in", values, partitions=4)
    return [v + b"-mapped" for v in values]


@pytest.mark.slow
async def test_exactly_once_under_repeated_sigkill(
    kafka_service: RunningService, unique_name: str, tmp_path: Path
) -> None:
    bootstrap = kafka_service.address
    expected = Counter(await prepare(bootstrap, unique_name))
    run_with_kills(bootstrap, unique_name, tmp_path, "exactly_once", kills=20, seed=1)
    got = Counter(v for _, v in await read_all(bootstrap, f"{unique_name}_out"))
    duplicates = {k: n for k, n in got.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} duplicated records, e.g. {list(duplicates)[:5]}"
    missing = expected - got
    assert not missing, f"{len(missing)} records missing, e.g. {sorted(missing)[:5]}"
    assert got == expected
    # Aborted transactions of the killed attempts exist: an uncommitted read sees more.
    assert len(await read_all(bootstrap, f"{unique_name}_out", committed_only=False)) > COUNT


@pytest.mark.slow
async def test_at_least_once_under_repeated_sigkill(
    kafka_service: RunningService, unique_name: str, tmp_path: Path
) -> None:
    bootstrap = kafka_service.address
    expected = set(await prepare(bootstrap, unique_name))
    run_with_kills(bootstrap, unique_name, tmp_path, "at_least_once", kills=8, seed=2)
    got = {v for _, v in await read_all(bootstrap, f"{unique_name}_out")}
    missing = expected - got
    assert not missing, f"{len(missing)} records missing, e.g. {sorted(missing)[:5]}"
    assert got == expected
