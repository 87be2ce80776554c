"""Process-level failure tests: SIGKILL a running job repeatedly and compare output with input."""

import sys
from collections import Counter
from pathlib import Path

import pytest
from headwater.core._runtime._storage import list_checkpoints, read_metadata
from headwater.core.testing import kill_repeatedly, read_records

JOB = Path(__file__).parent / "jobs" / "kill_job.py"
COUNT = 200_000


def expected_records() -> list[tuple[int, int]]:
    # The same seeded generation as the job: DataGen seeds per block of 1024 indices.
    import importlib.util

    spec = importlib.util.spec_from_file_location("kill_job", JOB)
    assert spec is not None and spec.loader is not None
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    from headwater.core import DataGenSource

    produce = DataGenSource(job.record, count=COUNT, seed=7)._producer()
    return [(r["id"], r["value"] * 2) for r in produce(0, COUNT)]


def run_with_kills(tmp_path: Path, mode: str, kills: int, seed: int) -> list[dict[str, int]]:
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    cmd = [sys.executable, str(JOB), str(out), str(ckpt), str(COUNT), mode]
    kill_repeatedly(cmd, kills=kills, uptime=(0.3, 1.0), seed=seed).check(kills)
    return read_records(out)


@pytest.mark.slow
def test_exactly_once_under_repeated_sigkill(tmp_path: Path) -> None:
    records = run_with_kills(tmp_path, "exactly_once", kills=10, seed=1)
    got = Counter((r["id"], r["value"]) for r in records)
    duplicates = {k: n for k, n in got.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} duplicated records, e.g. {list(duplicates)[:5]}"
    expected = Counter(expected_records())
    missing = expected - got
    assert not missing, f"{len(missing)} records missing, e.g. {sorted(missing)[:5]}"
    assert got == expected


@pytest.mark.slow
def test_at_least_once_under_repeated_sigkill(tmp_path: Path) -> None:
    records = run_with_kills(tmp_path, "at_least_once", kills=5, seed=2)
    got = {(r["id"], r["value"]) for r in records}
    missing = set(expected_records()) - got
    assert not missing, f"{len(missing)} records missing, e.g. {sorted(missing)[:5]}"
    assert got == set(expected_records())


@pytest.mark.slow
def test_async_io_loses_nothing_under_sigkill(tmp_path: Path) -> None:
    records = run_with_kills(tmp_path, "async", kills=5, seed=3)
    got = {(r["id"], r["value"]) for r in records}
    missing = set(expected_records()) - got
    assert not missing, f"{len(missing)} records missing, e.g. {sorted(missing)[:5]}"


@pytest.mark.slow
def test_window_state_mutated_in_place_is_exactly_once_under_sigkill(tmp_path: Path) -> None:
    # Window accumulators mutated after a barrier must not leak into that barrier's checkpoint.
    records = run_with_kills(tmp_path, "windows", kills=6, seed=4)
    assert sum(count for count, _ in records) == COUNT
    assert sum(ids for _, ids in records) == COUNT * (COUNT - 1) // 2
    assert len(records) == 10 * (COUNT // 1000)  # every (key, 1 s window) fired exactly once


@pytest.mark.slow
def test_rocksdb_incremental_keyed_state_is_exact_under_repeated_sigkill(tmp_path: Path) -> None:
    # One split: each key's records reach the reduce in input order, so every running value is
    # determined; after any number of kills each must be emitted exactly once.
    records = run_with_kills(tmp_path, "rocksdb", kills=10, seed=5)
    got = Counter((r["key"], r["n"], r["sum"], r["last"]) for r in records)
    duplicates = {k: n for k, n in got.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} duplicated records, e.g. {list(duplicates)[:5]}"
    expected: Counter[tuple[int, int, int, int]] = Counter()
    running: dict[int, tuple[int, int]] = {}
    for index, value in expected_records():
        key = index % 1000
        n, total = running.get(key, (0, 0))
        running[key] = (n + 1, total + value // 2)
        expected[(key, n + 1, total + value // 2, index)] += 1
    missing = expected - got
    assert not missing, f"{len(missing)} records missing, e.g. {sorted(missing)[:5]}"
    assert got == expected
    # The checkpoints were incremental, and the files of checkpoints cut short by the kills were
    # removed when the job started again (at most one checkpoint of the last run, pending when it
    # ended, may have left its two subtasks' files).
    storage = tmp_path / "ckpt"
    referenced = {
        name
        for _, path in list_checkpoints(storage)
        for name in read_metadata(path)["shared_files"]
    }
    assert referenced, "the checkpoints were incremental"
    on_disk = {p.name for p in (storage / "shared").iterdir()}
    assert referenced <= on_disk and len(on_disk - referenced) <= 2
