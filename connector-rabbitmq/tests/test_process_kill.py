"""Process kills: RabbitMQ source -> map -> exactly-once file sink, SIGKILLed after random checkpoints.

A producer fills two queues with 100,000 messages with ids. The job drains them (bounded source,
200 ms checkpoints, restarted from its newest checkpoint after each kill) into core's two-phase
file sink, so any repeat in the output comes from the source. Its readers acknowledge only every
fourth completed checkpoint, which widens the window between "in the output" and "acknowledged":
a kill there makes the broker redeliver messages that are already in the output.

The at-least-once run shows the test sees those repeats; the exactly-once run drops them by
message id. Both compare the output with the input record by record, and the queues are empty.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
from headwater.core.testing import kill_after_checkpoints, read_records

from .rabbitmq_helpers import declare, publish, ready_count

COUNT = 100_000


def fill(url: str, queues: list[str]) -> dict[str, int]:
    """``COUNT`` messages (body: the number, id ``n<number>``) over ``queues``; the expected output."""
    declare(url, *queues)
    expected = {}
    for q, queue in enumerate(queues):
        numbers = range(q, COUNT, len(queues))
        publish(url, queue, [b"%d" % n for n in numbers], [f"n{n}" for n in numbers])
        expected.update({f"n{n}": n * 2 for n in numbers})
    return expected


def run(
    url: str, queues: list[str], tmp_path: Path, guarantee: str, kills: int, seed: int
) -> Counter[tuple[str, int]]:
    """Run the job under ``kills`` SIGKILLs; the output's (id, value) pairs with their counts."""
    out = tmp_path / "out"
    checkpoints = tmp_path / "checkpoints"
    params = {
        "url": url,
        "queues": ",".join(queues),
        "out": str(out),
        "guarantee": guarantee,
        "ack_every": "4",
    }
    command = [
        sys.executable, "-m", "headwater.connectors.testing.jobrunner", "conformance_jobs:rabbitmq_source_job",
        "--checkpoint-dir", str(checkpoints), "--parallelism", "2",
        *(arg for key, value in params.items() for arg in ("--param", f"{key}={value}")),
    ]  # fmt: skip
    # Kills follow the job's progress (1-4 new checkpoints, then 0-0.3 s), not the clock: a job
    # process takes seconds to start on a loaded machine, and a kill before its first checkpoint
    # would test nothing; some kills fall between a checkpoint's completion and its acks.
    report = kill_after_checkpoints(
        command, checkpoints, kills=kills, checkpoints=(1, 4), delay=(0.0, 0.3), seed=seed
    )
    report.check(kills)
    for queue in queues:
        assert ready_count(url, queue) == 0, f"{queue} not drained"
    return Counter((str(message_id), int(value)) for message_id, value in read_records(out))


@pytest.mark.slow
def test_at_least_once_repeats_messages_redelivered_after_a_kill(
    rabbitmq_url: str, queues: list[str], tmp_path: Path, jobs_on_path: None
) -> None:
    """The detector: without deduplication, kills after late acks show up as repeats."""
    expected = fill(rabbitmq_url, queues[:2])
    got = run(rabbitmq_url, queues[:2], tmp_path, "at_least_once", kills=10, seed=3)
    assert set(got) == set(expected.items()), "lost or wrong records"
    repeated = sum(n - 1 for n in got.values())
    assert repeated > 0, "no repeat seen: the test could not tell exactly-once from at-least-once"


@pytest.mark.slow
def test_exactly_once_under_repeated_sigkill(
    rabbitmq_url: str, queues: list[str], tmp_path: Path, jobs_on_path: None
) -> None:
    expected = fill(rabbitmq_url, queues[:2])
    got = run(rabbitmq_url, queues[:2], tmp_path, "exactly_once", kills=12, seed=5)
    duplicates = {k: n for k, n in got.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} records repeated, e.g. {list(duplicates)[:5]}"
    missing = set(expected.items()) - set(got)
    assert not missing, f"{len(missing)} records missing, e.g. {sorted(missing)[:5]}"
    assert dict(got.keys()) == expected
