"""The README's quickstart: it runs with no server, and resumes after a kill without double counting."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"


def clicks_counted(cwd: Path) -> int:
    with sqlite3.connect(cwd / ".headwater" / "quickstart" / "quickstart.db") as db:
        return int(db.execute("SELECT sum(events) FROM user_stats").fetchone()[0])


def test_quickstart_runs_and_resumes_after_a_kill(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(QUICKSTART)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.5)  # about half of the clicks, and at least one checkpoint
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list((tmp_path / ".headwater" / "quickstart" / "checkpoints").glob("chk-*/_metadata"))
    resumed = subprocess.run(
        [sys.executable, str(QUICKSTART)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from a checkpoint" in resumed.stdout
    assert "200,000 clicks counted" in resumed.stdout
    assert clicks_counted(tmp_path) == 200_000
    assert "[running, bounded]" in resumed.stderr  # progress was shown
