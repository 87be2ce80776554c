"""The headwater command line."""

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from headwater.core import CheckpointConfig, NumberSequenceSource, StreamEnvironment
from headwater.core._cli import main
from headwater.core.testing import FileTwoPhaseSink

JOB = """
from headwater.core import StreamEnvironment
env = StreamEnvironment()
env.from_collection([1, 2, 3]).map(lambda x: x * 7).print()
env.execute("cli-job")
"""


def test_run_a_job_file(tmp_path: Path) -> None:
    job = tmp_path / "job.py"
    job.write_text(JOB)
    result = subprocess.run(
        [sys.executable, "-m", "headwater.core._cli", "run", str(job)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7", "14", "21"]


def test_run_module_function(tmp_path: Path) -> None:
    (tmp_path / "myjob.py").write_text(
        "def main():\n" + "".join(f"    {line}\n" for line in JOB.strip().splitlines())
    )
    result = subprocess.run(
        [sys.executable, "-m", "headwater.core._cli", "run", "--quiet", "myjob:main"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7", "14", "21"]


def test_checkpoints_list_and_show(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    env = StreamEnvironment(
        parallelism=2,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=50), storage=tmp_path / "ckpt"
        ),
    )
    env.from_source(NumberSequenceSource(0, 100)).uid("numbers").sink_to(
        FileTwoPhaseSink(tmp_path / "o")
    ).uid("files")
    env.execute("inspect-me")
    assert main(["checkpoints", "list", str(tmp_path / "ckpt"), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[-1]["kind"] == "final" and listed[-1]["job_name"] == "inspect-me"
    assert main(["checkpoints", "show", listed[-1]["path"]]) == 0
    shown = capsys.readouterr().out
    assert "numbers" in shown and "files" in shown and "inspect-me" in shown


def test_checkpoints_show_reports_a_missing_checkpoint(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["checkpoints", "show", str(tmp_path)]) == 1
    assert "no checkpoint metadata" in capsys.readouterr().err


def test_connectors_lists_the_builtin_datagen(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["connectors", "--json"]) == 0
    rows = {r["identifier"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["datagen"]["distribution"] == "headwater-core"
    assert rows["datagen"]["compatible"] is True
