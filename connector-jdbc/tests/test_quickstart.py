"""The README's quickstart: it runs with no server, and resumes after a kill without double counting."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"


def clicks_counted(cwd: Path) -> int:
    with sqlite3.connect(cwd / ".headwater" / "quickstart" / "quickstart.db") as db:
        return int(db.execute("SELECT sum(events) FROM user_stats").fetchone()[0])


@pytest.mark.slow
def test_quickstart_runs_and_resumes_after_a_kill(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(QUICKSTART)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    checkpoints = tmp_path / ".headwater" / "quickstart" / "checkpoints"
    # Kill it right after its first checkpoint (a fixed sleep was too short on a loaded machine).
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if list(checkpoints.glob("chk-*/_metadata")):
            break
        time.sleep(0.02)
    running = proc.poll() is None
    if running:
        os.kill(proc.pid, signal.SIGKILL)
    _, stderr = proc.communicate()
    assert running, f"the quickstart ended before it was killed: {stderr[-2000:]}"
    assert list(checkpoints.glob("chk-*/_metadata")), stderr[-2000:]
    resumed = subprocess.run(
        [sys.executable, str(QUICKSTART)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from a checkpoint" in resumed.stdout
    assert "200,000 clicks counted" in resumed.stdout
    assert clicks_counted(tmp_path) == 200_000
    # progress was shown: the end-of-job summary table, one row per operator
    assert "records out" in resumed.stderr and "user-stats" in resumed.stderr
