"""A continuous FileSource over a directory that a writer keeps adding files to, SIGKILLed again
and again: downstream (core's exactly-once file sink) every line arrives exactly once.

The first test runs a source that forgets on restore which files it read, and shows that the
check sees the repeated lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from files_helpers import checkpointed_since, jobrunner_command
from headwater.core.testing import kill_repeatedly, read_records

FILES = 120
LINES = 200


def _writer(directory: Path, stop: threading.Event) -> threading.Thread:
    """Adds FILES files of LINES JSON lines, one every 0.25 s, each moved in whole."""

    def run() -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for k in range(FILES):
            if stop.is_set():
                return
            lines = "".join(json.dumps({"id": k * LINES + i}) + "\n" for i in range(LINES))
            staged = directory / f".f-{k:05d}.tmp"
            staged.write_text(lines)
            os.replace(staged, directory / f"f-{k:05d}.jsonl")
            time.sleep(0.25)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _command(tmp_path: Path, broken: str) -> list[str]:
    return jobrunner_command(
        "files_jobs:file_source_job",
        tmp_path / "checkpoints",
        inp=str(tmp_path / "in"),
        out=str(tmp_path / "out"),
        broken=broken,
    )


def _run(tmp_path: Path, kills: int, broken: str = "") -> Counter[int]:
    stop = threading.Event()
    writer = _writer(tmp_path / "in", stop)
    try:
        report = kill_repeatedly(
            _command(tmp_path, broken),
            kills=kills,
            uptime=(0.5, 2.5),
            timeout=3.0,
            seed=5,
            started=checkpointed_since(tmp_path / "checkpoints"),
        )
        assert report.kills == kills, report.stderr[-2000:]
    finally:
        writer.join()
    # Runs start slowly on a loaded machine (imports): make sure the kills hit running jobs.
    runs = {path.name.split("-")[2] for path in (tmp_path / "out").glob("part-*.jsonl")}
    assert len(runs) > kills // 3, f"only {len(runs)} runs committed anything: kills too early"
    # A last run until everything the writer wrote has arrived (the source never ends).
    process = subprocess.Popen(
        _command(tmp_path, broken), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(read_records(tmp_path / "out")) < FILES * LINES:
            time.sleep(0.5)
        time.sleep(1.0)  # anything read twice would show up by now
    finally:
        process.kill()
        process.communicate()
    return Counter(record["id"] for record in read_records(tmp_path / "out"))


@pytest.mark.slow
def test_the_check_sees_lines_of_a_forgetful_source_twice(tmp_path: Path) -> None:
    counts = _run(tmp_path, kills=3, broken="1")
    assert any(n > 1 for n in counts.values()), "no line read twice: the check proves nothing"


@pytest.mark.slow
def test_continuous_source_delivers_every_line_once_under_kills(tmp_path: Path) -> None:
    counts = _run(tmp_path, kills=10)
    repeated = sorted(k for k, n in counts.items() if n > 1)
    lost = sorted(set(range(FILES * LINES)) - set(counts))
    assert not repeated, f"{len(repeated)} lines twice, e.g. {repeated[:5]}"
    assert not lost, f"{len(lost)} lines lost, e.g. {lost[:5]}"
