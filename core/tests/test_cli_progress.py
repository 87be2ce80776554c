"""The real ``headwater`` entry point, in a pseudo-terminal and in pipes: progress, summary, errors.

The progress display must update in place on a terminal and be plain text elsewhere; the summary
table's counts are compared with the same computation done directly on the input; errors are one
line plus the user's failing line (the full chain with ``--verbose``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
from headwater.core.testing import read_records

JOBS = Path(__file__).parent / "jobs"
HEADWATER = shutil.which("headwater", path=str(Path(sys.executable).parent))
COUNT = 6_000
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def in_terminal(*args: str, cwd: Path) -> tuple[int, str]:
    """Run ``headwater ARGS`` in a pseudo-terminal; its exit status and everything it wrote."""
    assert HEADWATER is not None, "the headwater entry point is not installed next to python"
    child = pexpect.spawn(
        HEADWATER, list(args), cwd=str(cwd), encoding="utf-8", timeout=120, dimensions=(50, 200)
    )
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, (child.before or "").replace("\r\n", "\n")


def in_pipes(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert HEADWATER is not None
    return subprocess.run(
        [HEADWATER, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def expected_rows() -> dict[str, tuple[str, str]]:
    """Records in and out per operator, computed directly from the input."""
    doubled = [i * 2 for i in range(COUNT)]
    thirds = [x for x in doubled if x % 3 == 0]
    return {
        "numbers": ("-", f"{COUNT:,}"),
        "double": (f"{COUNT:,}", f"{len(doubled):,}"),
        "thirds": (f"{COUNT:,}", f"{len(thirds):,}"),
        "files": (f"{len(thirds):,}", f"{len(thirds):,}"),
    }


def summary_rows(text: str) -> dict[str, tuple[str, str]]:
    """``operator -> (records in, records out)`` from the summary table (rich's or plain)."""
    tail = text[text.rindex("progress-test' finished") :]
    rows = {}
    for line in ANSI.sub("", tail).splitlines():
        cells = [c for c in re.split(r"\s*[│|]\s*|\s{2,}", line.strip()) if c]
        if len(cells) == 4 and cells[0] in expected_rows():
            rows[cells[0]] = (cells[2], cells[3])
    return rows


def run_progress_job(tmp_path: Path, *flags: str, terminal: bool) -> tuple[int, str, Path]:
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    args = ("run", *flags, str(JOBS / "progress_job.py"), str(out), str(ckpt), str(COUNT), "1500")
    if terminal:
        status, text = in_terminal(*args, cwd=tmp_path)
    else:
        done = in_pipes(*args, cwd=tmp_path)
        status, text = done.returncode, done.stderr
    return status, text, out


def test_the_live_display_updates_in_place_on_a_terminal(tmp_path: Path) -> None:
    status, text, out = run_progress_job(tmp_path, terminal=True)
    assert status == 0, text
    assert sorted(read_records(out)) == sorted(
        x for x in (i * 2 for i in range(COUNT)) if x % 3 == 0
    )
    assert "\x1b[1A" in text and "\x1b[2K" in text, "the display is redrawn in place"
    live = ANSI.sub("", text[: text.rindex("progress-test' finished")])
    headers = ("operator", "records in", "records out", "rate/s", "backpressure")
    assert [h for h in headers if h not in live] == [], live[-2000:]
    assert "━" in live, "a progress bar for the bounded source"
    assert re.search(r"numbers ━+.* [\d,]+/6,000 \d+%, ETA \d+:\d\d:\d\d", live), live[-2000:]
    assert re.search(
        r"job 'progress-test' running \d+:\d\d:\d\d \| checkpoints \d+ \(last \d", live
    )
    frame = live[live.rindex("operator") :]
    positions = [frame.index(f"│ {name} ") for name in ("numbers", "double", "thirds", "files")]
    assert positions == sorted(positions), "operators are listed in pipeline order"
    assert summary_rows(text) == expected_rows()


@pytest.mark.parametrize("terminal", [False, True], ids=["pipe", "terminal-with-no-progress"])
def test_progress_is_plain_lines_in_a_pipe_or_with_no_progress(
    tmp_path: Path, terminal: bool
) -> None:
    flags = ("--no-progress",) if terminal else ()
    status, text, _ = run_progress_job(tmp_path, *flags, terminal=terminal)
    assert status == 0, text
    assert "\x1b[" not in text, "no terminal control codes"
    lines = [line for line in text.splitlines() if "progress-test' running" in line]
    assert lines, text
    assert re.search(
        r"^headwater: job 'progress-test' running \d+:\d\d:\d\d \| checkpoints \d+ \(last .+\) \| "
        r"restarts 0 \| numbers: - in, [\d,]+ out \([\d,]+/s, backpressure \d+%\) \[\d+%, ETA "
        r"[-\d:]+\] \| double: [\d,]+ in, [\d,]+ out \([\d,]+/s\) \| thirds: .* \| files: ",
        lines[0],
    ), lines[0]
    assert re.search(
        r"finished after [\d.]+ m?s: \d+ checkpoint\(s\) \(last .+\), 0 restart\(s\)", text
    )
    assert re.search(r"\n  operator\s+parallelism\s+records in\s+records out\n", text)
    assert summary_rows(text) == expected_rows()


def test_quiet_shows_neither_progress_nor_summary(tmp_path: Path) -> None:
    status, text, _ = run_progress_job(tmp_path, "--quiet", terminal=False)
    assert status == 0, text
    assert "running" not in text and "records out" not in text


def test_an_error_is_one_line_and_the_users_failing_line(tmp_path: Path) -> None:
    status, text = in_terminal("run", str(JOBS / "failing_job.py"), cwd=tmp_path)
    assert status == 1, text
    assert "Traceback" not in text
    lines = [
        line for line in ANSI.sub("", text).splitlines() if line.startswith("headwater: error")
    ]
    assert len(lines) == 1, text
    assert "JobFailedError: job 'failing' failed" in lines[0]
    assert "operator 'divide' (subtask 0) failed on record 2" in lines[0]
    assert "ZeroDivisionError" in lines[0]
    where = f"  at {JOBS / 'failing_job.py'}:7 in divide: return 10 // (x - 2)"
    assert where in text.splitlines()[text.splitlines().index(lines[0].rstrip()) + 1], text
    assert "--verbose for the full traceback" in text


def test_verbose_prints_the_whole_chain(tmp_path: Path) -> None:
    done = in_pipes("run", "--verbose", str(JOBS / "failing_job.py"), cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert "ZeroDivisionError: integer division or modulo by zero" in done.stderr
    assert "The above exception was the direct cause" in done.stderr
    assert "TaskFailedError" in done.stderr and "JobFailedError" in done.stderr


def test_python_job_py_prints_the_summary_above_the_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(JOBS / "failing_job.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    summary = done.stderr.index("headwater: error: JobFailedError: job 'failing' failed")
    assert f"at {JOBS / 'failing_job.py'}:7 in divide" in done.stderr[summary:]
    assert summary < done.stderr.index("Traceback (most recent call last)")


def test_a_config_error_names_the_setting_and_the_users_line(tmp_path: Path) -> None:
    status, text = in_terminal("run", str(JOBS / "bad_setting_job.py"), cwd=tmp_path)
    assert status == 1, text
    assert "Traceback" not in text
    assert (
        "headwater: error: ConfigurationError: DataGenSource: count must be an integer or None, "
        "got 'ten' (str)"
    ) in text
    assert f"at {JOBS / 'bad_setting_job.py'}:6 in <module>" in text


def test_run_module_function_names_a_missing_function(tmp_path: Path) -> None:
    (tmp_path / "jobs_here.py").write_text("def build_job():\n    pass\n")
    done = in_pipes("run", "jobs_here:build_jbo", cwd=tmp_path)
    assert done.returncode == 1
    assert "has no function 'build_jbo' (did you mean 'build_job'?)" in done.stderr


BUILDS = """
from headwater.core import StreamEnvironment

def built_not_run():
    env = StreamEnvironment()
    env.from_collection([1, 2, 3]).map(lambda x: x * 5).print()

def returned():
    env = StreamEnvironment()
    env.from_collection([1, 2, 3]).map(lambda x: x * 5).print()
    return env
"""


def test_a_function_that_builds_a_job_without_running_it_is_reported(tmp_path: Path) -> None:
    (tmp_path / "builds.py").write_text(BUILDS)
    done = in_pipes("run", "builds:built_not_run", cwd=tmp_path)
    assert done.returncode == 1
    assert "builds:built_not_run built a job but did not run it" in done.stderr
    assert done.stdout == ""


def test_a_function_that_returns_its_environment_is_run(tmp_path: Path) -> None:
    (tmp_path / "builds.py").write_text(BUILDS)
    done = in_pipes("run", "--quiet", "builds:returned", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "builds:returned returned a job; running it" in done.stderr
    assert done.stdout.split() == ["5", "10", "15"]


def test_checkpoint_tables_show_positions_and_state_sizes(tmp_path: Path) -> None:
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    status, text = in_terminal(
        "run",
        "--quiet",
        str(JOBS / "interrupt_job.py"),
        str(out),
        str(ckpt),
        "3000",
        "3000",
        cwd=tmp_path,
    )
    assert status == 0, text
    listed = in_pipes("checkpoints", "list", str(ckpt), cwd=tmp_path)
    header = listed.stdout.splitlines()[0].split()
    assert header == ["id", "kind", "taken", "at", "job", "state", "path"], listed.stdout
    ids = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    assert ids and all(i.isdigit() for i in ids)
    # the first checkpoint was taken mid-job: its source was reading a split
    first = min(ckpt.glob("chk-*"), key=lambda p: int(p.name[4:]))
    shown = in_pipes("checkpoints", "show", str(first), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    described = json.loads(
        in_pipes("checkpoints", "show", str(first), "--json", cwd=tmp_path).stdout
    )
    positions = described["source_positions"]["gen"]
    [[split_id, next_index, end]] = [s for splits in positions.values() for s in splits]
    assert split_id == "0" and 0 < next_index < end == 3000, positions
    assert re.search(r"gen\s+\d\s+\[\"0\", \d+, 3000\]", shown.stdout), shown.stdout
    totals = described["operators"]["totals"]
    assert totals["state_entries"] > 0 and totals["state_bytes"] > 0
    assert re.search(r"totals\s+.*\s+2\s+[\d,]+\s+[\d.]+ (B|KiB)", shown.stdout), shown.stdout
    assert "operator uid" in shown.stdout and "state size" in shown.stdout


def test_connectors_is_a_table_with_headers(tmp_path: Path) -> None:
    done = in_pipes("connectors", cwd=tmp_path)
    lines = done.stdout.splitlines()
    assert lines[0].startswith("headwater-core ")
    assert lines[1].split() == ["connector", "distribution", "version", "status", "summary"]
    assert any(line.split()[:2] == ["datagen", "headwater-core"] for line in lines[2:])


def test_headwater_is_on_path_after_activating_the_venv(tmp_path: Path) -> None:
    activate = Path(sys.executable).parent / "activate"
    assert activate.is_file(), "the tests run from the .venv that tools/dev setup creates"
    done = subprocess.run(
        ["bash", "-c", f"source {activate} && command -v headwater && headwater --version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    where, version = done.stdout.splitlines()[:2]
    assert Path(where) == Path(sys.executable).parent / "headwater"
    assert version.startswith("headwater-core ")
