"""A source's dead letters as a stream of the job: routed, sinkable, exactly once across kills."""

from __future__ import annotations

import importlib.util
import random
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from headwater.core import (
    CollectSink,
    ConfigurationError,
    DataGenSource,
    JobFailedError,
    StreamEnvironment,
    emit_dead_letter,
)
from headwater.core.testing import kill_after_checkpoints, read_records

JOB = Path(__file__).parent / "jobs" / "dead_letter_job.py"


def job_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dead_letter_job", JOB)
    assert spec is not None and spec.loader is not None
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    return job


def expected(count: int, seed: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The job's records and letters, generated directly (the same seeded generator)."""
    produce = DataGenSource(job_module().record, count=count, seed=seed)._producer()
    records = [(r["id"], r["value"]) for r in produce(0, count)]
    return records, [(i, v) for i, v in records if i % 5 == 0]


def test_dead_letters_reach_their_own_stream_and_sink() -> None:
    env = StreamEnvironment(parallelism=2)
    job = job_module()
    stream = env.from_source(job.ReportingSource(job.record, count=2000, seed=3))
    main: CollectSink[dict[str, int]] = CollectSink()
    letters: CollectSink[dict[str, int]] = CollectSink()
    stream.map(lambda r: r).sink_to(main)  # the source still feeds other operators
    stream.dead_letters().sink_to(letters)
    env.execute("letters")
    records, dead = expected(2000, 3)
    assert sorted((r["id"], r["value"]) for r in main.results()) == records
    assert sorted((d["position"], d["payload"]) for d in letters.results()) == dead
    assert len(dead) == 400


def reports_without_letters(index: int, rng: random.Random) -> int:
    if index == 7:
        emit_dead_letter(b"bad")
    return index


def test_a_letter_for_a_job_that_does_not_read_them_fails_the_job_clearly() -> None:
    env = StreamEnvironment()
    env.from_source(DataGenSource(reports_without_letters, count=20)).sink_to(CollectSink())
    with pytest.raises(JobFailedError, match=r"call \.dead_letters\(\) on the source's stream"):
        env.execute("no letters")


def test_only_a_source_has_dead_letters() -> None:
    env = StreamEnvironment()
    with pytest.raises(ConfigurationError, match="only a source's stream has dead letters"):
        env.from_collection([1, 2]).map(lambda x: x).dead_letters()


def check_exactly_once(got: list[tuple[int, int]], want: list[tuple[int, int]]) -> None:
    counts = Counter(got)
    duplicates = {k: n for k, n in counts.items() if n > 1}
    missing = set(want) - set(counts)
    extra = set(counts) - set(want)
    assert not duplicates and not missing and not extra, (
        f"{len(duplicates)} duplicated, {len(missing)} missing, {len(extra)} unexpected"
    )


def test_the_exactly_once_check_sees_a_duplicate_and_a_loss() -> None:
    want = [(1, 10), (2, 20)]
    with pytest.raises(AssertionError, match="1 duplicated"):
        check_exactly_once([(1, 10), (1, 10), (2, 20)], want)
    with pytest.raises(AssertionError, match="1 missing"):
        check_exactly_once([(1, 10)], want)


@pytest.mark.slow
def test_dead_letters_are_exactly_once_under_repeated_sigkill(tmp_path: Path) -> None:
    count = 12_000
    out, checkpoints = tmp_path / "out", tmp_path / "ckpt"
    command = [sys.executable, str(JOB), str(out), str(checkpoints), str(count)]
    kill_after_checkpoints(command, checkpoints, kills=4, seed=11).check(4)
    records, letters = expected(count, 3)
    main: list[dict[str, Any]] = read_records(out / "main")
    dead: list[dict[str, Any]] = read_records(out / "letters")
    check_exactly_once([(r["id"], r["value"]) for r in main], records)
    check_exactly_once([(d["position"], d["payload"]) for d in dead], letters)
