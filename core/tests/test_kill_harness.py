"""The SIGKILL harnesses themselves (``kill_repeatedly``, ``kill_after_checkpoints``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from headwater.core.testing import kill_after_checkpoints, kill_repeatedly

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


# A stand-in job: writes checkpoints chk-<n>/_metadata into argv[1], continuing from the newest
# one, and logs the id it started after; every run but the third checkpoints until it is killed.
CHECKPOINTING = """
import pathlib, sys, time
directory, log = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
ids = [int(p.name[4:]) for p in directory.glob("chk-*") if (p / "_metadata").exists()]
newest = max(ids, default=0)
with open(log, "a") as f:
    f.write(f"{newest}\\n")
runs = len(log.read_text().split())
for n in range(newest + 1, newest + (1000 if runs < 3 else 2)):
    time.sleep(0.05)
    (directory / f"chk-{n}").mkdir(parents=True)
    (directory / f"chk-{n}" / "_metadata").write_text("{}")
"""


def test_kills_after_new_checkpoints_then_lets_the_last_run_finish(tmp_path: Path) -> None:
    checkpoints, log = tmp_path / "checkpoints", tmp_path / "log"
    report = kill_after_checkpoints(
        [sys.executable, "-c", CHECKPOINTING, str(checkpoints), str(log)],
        checkpoints,
        kills=2,
        checkpoints=(3, 3),
        delay=(0.0, 0.0),
        seed=1,
    )
    report.check(2)
    starts = [int(line) for line in log.read_text().split()]
    assert len(starts) == 3
    # Each killed run completed at least the 3 checkpoints its kill waited for.
    assert starts[1] - starts[0] >= 3
    assert starts[2] - starts[1] >= 3


def test_a_job_that_ends_before_its_checkpoints_fails_the_check(tmp_path: Path) -> None:
    report = kill_after_checkpoints([sys.executable, "-c", "pass"], tmp_path, kills=2)
    assert (report.kills, report.returncode) == (0, 0)
    with pytest.raises(AssertionError, match="0 of 2 kills"):
        report.check(2)


def test_a_job_without_checkpoints_fails_after_the_timeout(tmp_path: Path) -> None:
    hang = "import sys, time; print('no progress', file=sys.stderr, flush=True); time.sleep(30)"
    with pytest.raises(AssertionError, match=r"no checkpoint 1 .* no progress"):
        kill_after_checkpoints(
            [sys.executable, "-c", hang], tmp_path, kills=1, checkpoints=(1, 1), timeout=5.0
        )
