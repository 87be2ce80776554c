"""Failure tests: SIGKILL jobs at random moments, restart them from their checkpoints, and compare
the result with the input record by record.

The sink writes a counter (``n = n + 1``): not idempotent, so a repeated write shows as a count
above the expected one. The at-least-once run is the test's own sanity check: it must show
repeated writes (the test can see them) and no loss; the exactly-once run must be exact.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core.testing import kill_repeatedly, read_records

JOBS = Path(__file__).parent / "jobs"
COUNT = 45_000
KEYS = 100


def _counts(session: Session) -> dict[int, int]:
    return {row.k: row.n for row in session.execute("SELECT k, n FROM hits")}


def _run_counter_job(
    service: RunningService, keyspace: str, checkpoints: Path, mode: str, kills: int, seed: int
) -> None:
    command = [
        sys.executable,
        str(JOBS / "counter_job.py"),
        service.host,
        str(service.port),
        keyspace,
        str(checkpoints),
        str(COUNT),
        mode,
    ]
    kill_repeatedly(command, kills=kills, uptime=(4.0, 7.0), timeout=240, seed=seed).check(kills)


@pytest.mark.slow
def test_at_least_once_counters_repeat_but_lose_nothing(
    session: Session, cassandra_service: RunningService, cassandra_keyspace: str, tmp_path: Path
) -> None:
    session.execute("CREATE TABLE hits (k int PRIMARY KEY, n counter)")
    _run_counter_job(
        cassandra_service, cassandra_keyspace, tmp_path / "ckpt", "at_least_once", 5, 3
    )
    counts = _counts(session)
    expected = dict(Counter(i % KEYS for i in range(COUNT)))
    assert set(counts) == set(expected)
    lost = {k: (counts[k], n) for k, n in expected.items() if counts[k] < n}
    assert not lost, f"at-least-once lost writes: {lost}"
    # The test can see duplicates: kills between checkpoints make at-least-once repeat writes.
    assert sum(counts.values()) > COUNT, "no repeated write seen: the kills proved nothing"


@pytest.mark.slow
def test_exactly_once_counters_are_exact_under_sigkill(
    session: Session, cassandra_service: RunningService, cassandra_keyspace: str, tmp_path: Path
) -> None:
    session.execute("CREATE TABLE hits (k int PRIMARY KEY, n counter)")
    _run_counter_job(
        cassandra_service, cassandra_keyspace, tmp_path / "ckpt", "exactly_once", 10, 4
    )
    counts = _counts(session)
    expected = dict(Counter(i % KEYS for i in range(COUNT)))
    wrong = {k: (counts.get(k), n) for k, n in expected.items() if counts.get(k) != n}
    assert not wrong, f"{len(wrong)} counters off (got, expected): {dict(list(wrong.items())[:10])}"


SCAN_ROWS = 100_000


@pytest.mark.slow
def test_source_scan_killed_mid_scan_emits_every_row_once(
    session: Session, cassandra_service: RunningService, cassandra_keyspace: str, tmp_path: Path
) -> None:
    session.execute("CREATE TABLE rows (p int, c int, PRIMARY KEY (p, c))")
    insert = session.prepare("INSERT INTO rows (p, c) VALUES (?, ?)")
    expected = [(i // 10, i % 10) for i in range(SCAN_ROWS)]  # 10 rows per partition
    execute_concurrent_with_args(
        session, insert, expected, concurrency=100, raise_on_first_error=True
    )
    out = tmp_path / "out"
    command = [
        sys.executable,
        str(JOBS / "scan_job.py"),
        cassandra_service.host,
        str(cassandra_service.port),
        cassandra_keyspace,
        str(tmp_path / "ckpt"),
        str(out),
    ]
    kill_repeatedly(command, kills=5, uptime=(3.5, 5.5), timeout=240, seed=5).check(5)
    got = Counter(tuple(pair) for pair in read_records(out))
    repeated = {row: n for row, n in got.items() if n > 1}
    assert not repeated, f"{len(repeated)} rows emitted more than once, e.g. {list(repeated)[:5]}"
    missing = set(expected) - set(got)
    assert not missing, f"{len(missing)} rows missing, e.g. {sorted(missing)[:5]}"
    assert sorted(got) == sorted(expected)
