"""Exactly-once under SIGKILL: a DataGen -> FileSink job killed at random moments, restarted from
its checkpoints, and its published files compared with the input record by record.

The first test runs the same job on a file system that does not cut in-progress files back on
restore, and shows that the check sees the duplicates: the others prove something.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from files_helpers import check_exactly_once
from files_jobs import expected_record
from headwater.connectors.files import FileSystem, LocalFileSystem, S3FileSystem
from headwater.connectors.testing import run_with_kills
from headwater.connectors.aws import AwsClientOptions
from headwater.connectors.testing.pytest_plugin import RunningService

COUNT = 30_000
RATE = 1500
KILLS = 10
# A run's process needs 1-5 s (loaded machine) to import boto3 and pyarrow and start the job: kill
# it later than that, or the kills prove nothing (see _check_progress).
UPTIME = (3.5, 6.0)


def _run(tmp_path: Path, out: str, *, kills: int = KILLS, seed: int = 1, **params: str) -> None:
    report = run_with_kills(
        "files_jobs:file_sink_job",
        checkpoint_dir=tmp_path / "checkpoints",
        parallelism=2,
        restart_parallelism=2,
        params={"count": str(COUNT), "rate": str(RATE), "out": out, **params},
        kills=kills,
        min_uptime=UPTIME[0],
        max_uptime=UPTIME[1],
        timeout=180,
        seed=seed,
    )
    report.check(kills)


def _expected() -> list[dict[str, Any]]:
    return [expected_record(i) for i in range(COUNT)]


def _check_progress(filesystem: FileSystem, out: str, kills: int) -> None:
    """Most killed runs published files of their own (part names carry a token per run)."""
    runs = {Path(info.path).name.split("-")[1] for info in filesystem.list_files(out)}
    assert len(runs) > kills // 3, f"only {len(runs)} runs published anything: the kills came too early"


@pytest.mark.slow
def test_the_check_sees_duplicates_of_a_sink_that_does_not_truncate(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    _run(tmp_path, out, kills=4, broken="1")
    problems = check_exactly_once(LocalFileSystem(), out, _expected())
    assert any("published twice" in p for p in problems), problems


@pytest.mark.slow
@pytest.mark.parametrize("format", ["json", "parquet"])
def test_local_exactly_once_under_kills(tmp_path: Path, format: str) -> None:
    out = str(tmp_path / "out")
    _run(tmp_path, out, format=format)
    assert check_exactly_once(LocalFileSystem(), out, _expected()) == []
    _check_progress(LocalFileSystem(), out, KILLS)


@pytest.mark.slow
@pytest.mark.parametrize("format", ["json", "parquet"])
def test_s3_exactly_once_under_kills(
    tmp_path: Path,
    format: str,
    s3_bucket: str,
    s3_options: AwsClientOptions,
    moto_service: RunningService,
) -> None:
    out = f"s3://{s3_bucket}/out"
    _run(tmp_path, out, format=format, endpoint=moto_service.address, seed=2)
    assert check_exactly_once(S3FileSystem(s3_options), out, _expected()) == []
    _check_progress(S3FileSystem(s3_options), out, KILLS)
