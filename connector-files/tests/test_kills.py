"""Exactly-once under SIGKILL: a DataGen -> FileSink job killed at random moments, restarted from
its checkpoints, and its published files compared with the input record by record.

The first test runs the same job on a file system that does not cut in-progress files back on
restore, and shows that the check sees the duplicates: the others prove something.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from files_helpers import check_exactly_once, checkpointed_since, jobrunner_command
from files_jobs import expected_record
from headwater.connectors.base.aws import AwsClientOptions
from headwater.connectors.files import FileSystem, LocalFileSystem, S3FileSystem
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core.testing import kill_repeatedly

COUNT = 20_000
RATE = 1500
KILLS = 10
UPTIME = (0.3, 1.2)
"""Seconds a run lives after its first checkpoint (the imports alone take 1-5 s here)."""


def _run(tmp_path: Path, out: str, *, kills: int = KILLS, seed: int = 1, **params: str) -> None:
    checkpoints = tmp_path / "checkpoints"
    command = jobrunner_command(
        "files_jobs:file_sink_job", checkpoints, count=str(COUNT), rate=str(RATE), out=out, **params
    )
    report = kill_repeatedly(
        command,
        kills=kills,
        uptime=UPTIME,
        timeout=180,
        seed=seed,
        started=checkpointed_since(checkpoints),
    )
    report.check(kills)


def _expected() -> list[dict[str, Any]]:
    return [expected_record(i) for i in range(COUNT)]


def _check_progress(filesystem: FileSystem, out: str, kills: int) -> None:
    """Most killed runs published files of their own (part names carry a token per run)."""
    runs = {Path(info.path).name.split("-")[1] for info in filesystem.list_files(out)}
    assert len(runs) > kills // 3, (
        f"only {len(runs)} runs published anything: the kills came too early"
    )


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
