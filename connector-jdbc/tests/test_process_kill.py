"""Failure tests: SIGKILL a job writing to PostgreSQL at random moments, restart it from its
checkpoints, and compare the final table with the expected result exactly."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pytest
from headwater.core import DataGenSource
from headwater.core.testing import kill_repeatedly

JOB = Path(__file__).parent / "jobs" / "kill_job.py"
COUNT = 60_000


def generated() -> list[dict[str, int]]:
    spec = importlib.util.spec_from_file_location("jdbc_kill_job", JOB)
    assert spec is not None and spec.loader is not None
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    return DataGenSource(job.record, count=COUNT, seed=3)._producer()(0, COUNT)


def run_with_kills(db, table: str, checkpoints: Path, mode: str, kills: int, seed: int) -> None:
    cmd = [sys.executable, str(JOB), db.url_text, table, str(checkpoints), str(COUNT), mode]
    kill_repeatedly(cmd, kills=kills, uptime=(0.6, 1.3), seed=seed).check(kills)


@pytest.mark.slow
def test_upsert_of_running_sums_under_sigkill(databases, tmp_path: Path) -> None:
    db = databases["postgresql"]
    table = db.table("sums")
    db.execute(f"CREATE TABLE {table} (k INTEGER PRIMARY KEY, v BIGINT NOT NULL)")
    run_with_kills(db, table, tmp_path / "ckpt", "upsert", kills=10, seed=11)
    expected = Counter()
    for r in generated():
        expected[r["k"]] += r["v"]
    assert dict(db.query(f"SELECT k, v FROM {table}")) == dict(expected)


@pytest.mark.slow
def test_exactly_once_insert_under_sigkill(databases, tmp_path: Path) -> None:
    db = databases["postgresql"]
    table = db.table("eo")
    db.execute(
        f"CREATE TABLE {table} (id INTEGER NOT NULL, v INTEGER NOT NULL)"
    )  # no key: dups show
    run_with_kills(db, table, tmp_path / "ckpt", "exactly_once", kills=10, seed=12)
    got = Counter(db.query(f"SELECT id, v FROM {table}"))
    duplicates = {row: n for row, n in got.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} duplicated rows, e.g. {list(duplicates)[:5]}"
    expected = Counter((r["id"], r["v"]) for r in generated())
    assert not expected - got, f"{len(expected - got)} rows missing"
    assert got == expected
    assert db.query(
        f"SELECT count(*) FROM {table}_hw_staging WHERE hw_txn IN "
        f"(SELECT txn_id FROM headwater_commits)"
    ) == [(0,)]
