"""The SIGKILL harness itself (``headwater.core.testing.kill_repeatedly``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from headwater.core.testing import kill_repeatedly

# Counts its runs in a file; every run but the third hangs until it is killed.
SCRIPT = """
import sys, time
path = sys.argv[1]
with open(path, "a") as f:
    f.write("run\\n")
runs = open(path).read().count("run")
if runs < 3:
    time.sleep(30)
print("last run", file=sys.stderr)
"""


def test_kills_then_lets_the_last_run_finish(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    report = kill_repeatedly(
        [sys.executable, "-c", SCRIPT, str(runs)], kills=2, uptime=(0.3, 0.4), seed=1
    )
    assert (report.kills, report.returncode) == (2, 0)
    assert "last run" in report.stderr
    assert runs.read_text().count("run") == 3
    report.check(2)


def test_a_job_that_ends_before_its_kills_fails_the_check(tmp_path: Path) -> None:
    report = kill_repeatedly([sys.executable, "-c", "pass"], kills=3, uptime=(2.0, 3.0))
    assert (report.kills, report.returncode) == (0, 0)
    with pytest.raises(AssertionError, match="0 of 3 kills"):
        report.check(3)


def test_a_failing_last_run_fails_the_check() -> None:
    report = kill_repeatedly(
        [sys.executable, "-c", "import sys; sys.exit('broken')"], kills=0, uptime=(1, 2)
    )
    with pytest.raises(AssertionError, match="exited 1: broken"):
        report.check(0)
