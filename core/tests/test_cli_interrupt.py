"""Ctrl-C and SIGTERM on the real ``headwater`` entry point, in a pseudo-terminal.

Each test starts ``headwater run`` on a rate-limited job, waits for its first checkpoint, then
sends the signal: the job stops with a savepoint, says how to resume and exits 130 (SIGINT) or
143 (SIGTERM) without a traceback; the resumed run's output equals the same computation done on
the input directly, record by record. The last test sends SIGTERM to ``env.execute()`` itself.
"""

import importlib.util
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import pexpect
import pytest
from headwater.core import (
    CheckpointConfig,
    DataGenSource,
    JobInterruptedError,
    StreamEnvironment,
)
from headwater.core._runtime._storage import CheckpointStorage, read_metadata
from headwater.core.testing import FileTwoPhaseSink, read_records

JOB = Path(__file__).parent / "jobs" / "interrupt_job.py"
HEADWATER = shutil.which("headwater", path=str(Path(sys.executable).parent))
COUNT = 20_000

sys.path.insert(0, str(JOB.parent))
from interrupt_job import record, running_totals  # noqa: E402


def spawn(*args: str, cwd: Path) -> pexpect.spawn:
    assert HEADWATER is not None, "the headwater entry point is not installed next to python"
    return pexpect.spawn(HEADWATER, list(args), cwd=str(cwd), encoding="utf-8", timeout=60)


def wait_for(condition: Any, what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def job_input() -> list[dict[str, Any]]:
    """The records the job reads (the same DataGenSource, collected in index order)."""
    env = StreamEnvironment()
    source = DataGenSource(record, count=COUNT, seed=11, num_splits=1)
    return sorted(env.from_source(source).execute_and_collect(), key=lambda r: r["id"])


def as_counter(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(repr(sorted(r.items())) for r in records)


@pytest.mark.parametrize(("signal_number", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_with_a_savepoint_and_the_resumed_run_is_exact(
    tmp_path: Path, signal_number: int, status: int
) -> None:
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    child = spawn("run", str(JOB), str(out), str(ckpt), str(COUNT), "4000", cwd=tmp_path)
    child.expect("starts fresh")
    wait_for(lambda: any(ckpt.glob("chk-*/_metadata")), "the first checkpoint")
    if signal_number == signal.SIGINT:
        child.sendintr()  # Ctrl-C typed on the terminal
    else:
        child.kill(signal_number)
    child.expect(r"resume with: headwater run --restore (\S+) ")
    savepoint = Path(child.match.group(1))
    child.expect(pexpect.EOF)
    child.close()
    transcript = child.before or ""
    assert child.exitstatus == status, transcript
    assert "Traceback" not in transcript
    assert (savepoint / "_metadata").is_file()
    partial = read_records(out)
    assert 0 < len(partial) < COUNT, "the signal came after the job ended: nothing was tested"

    resumed = spawn(
        "run",
        "--restore",
        str(savepoint),
        str(JOB),
        str(out),
        str(ckpt),
        str(COUNT),
        "100000",
        cwd=tmp_path,
    )
    resumed.expect(rf"resumes from savepoint \d+ at {re.escape(str(savepoint))}")
    resumed.expect(pexpect.EOF)
    resumed.close()
    assert resumed.exitstatus == 0, resumed.before

    got = as_counter(read_records(out))
    want = as_counter(running_totals(job_input()))
    assert got == want


def test_a_second_ctrl_c_stops_at_once_while_the_savepoint_hangs(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    child = spawn("run", "--quiet", str(JOB.parent / "stuck_stop_job.py"), str(ckpt), cwd=tmp_path)
    wait_for(lambda: any(ckpt.glob("chk-*/_metadata")), "the first checkpoint")
    child.sendintr()
    child.expect("press Ctrl-C again to stop at once")
    child.sendintr()
    child.expect("SIGINT again: stopping at once, without a savepoint")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130, child.before
    assert "Traceback" not in (child.before or "")


def test_rerunning_a_finished_job_says_there_is_nothing_to_do(tmp_path: Path) -> None:
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    done = spawn("run", str(JOB), str(out), str(ckpt), "50", "100000", cwd=tmp_path)
    done.expect(pexpect.EOF)
    done.close()
    assert done.exitstatus == 0, done.before
    final = max(ckpt.glob("chk-*"), key=lambda p: int(p.name.split("-")[1]))
    again = spawn(
        "run", "--restore", str(final), str(JOB), str(out), str(ckpt), "50", "100000", cwd=tmp_path
    )
    again.expect(r"already finished.*nothing to do.*To start over, run it without --restore")
    again.expect(pexpect.EOF)
    again.close()
    assert again.exitstatus == 0, again.before
    assert len(read_records(out)) == 50  # nothing written twice


def test_version_names_core_and_the_installed_connectors(tmp_path: Path) -> None:
    child = spawn("--version", cwd=tmp_path)
    child.expect(pexpect.EOF)
    child.close()
    lines = (child.before or "").splitlines()
    assert child.exitstatus == 0
    assert re.fullmatch(r"headwater-core \S+", lines[0])
    for line in lines[1:]:
        assert re.fullmatch(r"headwater-connector-[a-z]+ \S+ \([a-z-]+(, [a-z-]+)*\)", line), line
    if importlib.util.find_spec("headwater.connectors.kafka") is not None:
        kafka = metadata.version("headwater-connector-kafka")
        assert f"headwater-connector-kafka {kafka} (kafka, upsert-kafka)" in lines


def test_run_names_a_missing_function(tmp_path: Path) -> None:
    (tmp_path / "jobmod.py").write_text("def other():\n    pass\n")
    child = spawn("run", "jobmod:main", cwd=tmp_path)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert "module 'jobmod'" in (child.before or "") and "no function 'main'" in child.before
    assert "Traceback" not in child.before


def test_execute_turns_sigterm_into_a_savepoint_and_job_interrupted_error(tmp_path: Path) -> None:
    """``python job.py`` (no CLI): ``env.execute()`` stops the same way and says so in its error."""
    ckpt = tmp_path / "ckpt"
    env = StreamEnvironment(
        checkpointing=CheckpointConfig(interval=timedelta(milliseconds=100), storage=ckpt)
    )
    env.from_source(DataGenSource(lambda i, _rng: i, rows_per_second=1000)).sink_to(
        FileTwoPhaseSink(tmp_path / "out")
    )

    def terminate_after_first_checkpoint() -> None:
        wait_for(lambda: any(ckpt.glob("chk-*/_metadata")), "the first checkpoint")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_after_first_checkpoint, daemon=True).start()
    with pytest.raises(JobInterruptedError, match="stopped by SIGTERM with a savepoint") as info:
        env.execute("unbounded")
    assert info.value.exit_status == 143
    assert info.value.savepoint is not None
    assert read_metadata(info.value.savepoint)["kind"] == "savepoint"
    assert CheckpointStorage(ckpt, 3).latest() == info.value.savepoint  # restore_from="latest"
