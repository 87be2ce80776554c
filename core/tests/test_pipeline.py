"""Pipeline files: ``headwater run pipeline.toml`` with the built-in datagen and print connectors."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from headwater.core import ConfigurationError, load_pipeline
from headwater.core.testing import run_cli

FUNCTIONS = """
def click(i, rng):
    return {"user": f"u{i % 3}", "n": i}

def even(record):
    return record["n"] % 2 == 0

def show(record):
    return f"{record['user']}={record['n']}"

def twice(text):
    return [text, text.upper()]

def user(record):
    return record["user"]

def add(a, b):
    return {"user": a["user"], "n": a["n"] + b["n"]}
"""

PIPELINE = """
[job]
name = "clicks"
parallelism = 1

[checkpointing]
interval = "50ms"
storage = "checkpoints"

[source]
connector = "datagen"
generator = "pipeline_functions:click"
[source.options]
count = 8

[[steps]]
filter = "pipeline_functions:even"

[[steps]]
map = "pipeline_functions:show"

[[steps]]
flat_map = "pipeline_functions:twice"

[sink]
connector = "print"
prefix = "> "
"""


def write(directory: Path, pipeline: str) -> Path:
    (directory / "pipeline_functions.py").write_text(FUNCTIONS)
    path = directory / "pipeline.toml"
    path.write_text(textwrap.dedent(pipeline))
    return path


def run_pipeline(path: Path) -> subprocess.CompletedProcess[str]:
    # from another directory: paths in the file are relative to the file, not the cwd
    return run_cli("run", "--quiet", str(path), cwd=path.parent.parent)


@pytest.mark.slow
def test_headwater_run_executes_a_pipeline_file(tmp_path: Path) -> None:
    directory = tmp_path / "job"
    directory.mkdir()
    done = run_pipeline(write(directory, PIPELINE))
    assert done.returncode == 0, done.stderr
    expected = [f"> {s}" for n in (0, 2, 4, 6) for s in (f"u{n % 3}={n}", f"U{n % 3}={n}")]
    assert done.stdout.splitlines() == expected
    assert list((directory / "checkpoints").glob("chk-*/_metadata")), "checkpoints under the file"


def test_the_job_is_built_with_the_files_settings(tmp_path: Path) -> None:
    pipeline = load_pipeline(
        write(tmp_path, PIPELINE.replace("parallelism = 1", "parallelism = 3"))
    )
    assert pipeline.name == "clicks"
    assert pipeline.env.parallelism == 3
    assert pipeline.env.checkpointing.interval is not None
    assert pipeline.env.checkpointing.interval.total_seconds() == 0.05
    assert pipeline.env.checkpointing.storage == tmp_path / "checkpoints"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ('connector = "print"', 'connector = "nope"'),
            r"\[sink\] connector: connector 'nope' is not installed \(installed: .*datagen",
        ),
        (
            ('interval = "50ms"', 'interval = "soon"'),
            r"\[checkpointing\] interval: expected a duration",
        ),
        (
            ("parallelism = 1", "parallelism = 1\nworkers = 2"),
            r"\[job\]: unknown key\(s\): 'workers'",
        ),
        (
            ('filter = "pipeline_functions:even"', 'filter = "pipeline_functions:odd"'),
            r"\[\[steps\]\] #1 filter: cannot import 'pipeline_functions:odd'",
        ),
        (
            ('filter = "pipeline_functions:even"', 'windowed = "pipeline_functions:even"'),
            r"\[\[steps\]\] #1: expected exactly one of map, filter, flat_map, key_by, reduce, window",
        ),
        (
            ("count = 8", "count = 8\nrate = 5"),
            r"\[source\] options: unknown key\(s\): 'rate'",
        ),
        (('prefix = "> "', 'prefix = "> "\ncolor = "red"'), r"\[sink\]: unknown key\(s\): 'color'"),
        (
            ('generator = "pipeline_functions:click"', ""),
            r"\[source\] generator: datagen needs a generator",
        ),
        (("[sink]", "[sinks]"), r"unknown key\(s\): 'sinks' \(did you mean 'sink'\?\)"),
        (
            ('interval = "50ms"', 'intervall = "50ms"'),
            r"\[checkpointing\]: unknown key\(s\): 'intervall' \(did you mean 'interval'\?\)",
        ),
        (
            ("count = 8", "count = 8\ngenerator = 'pipeline_functions:click'"),
            r"\[source\] options: unknown key\(s\): 'generator' belongs at the \[source\] "
            r"level, beside 'connector'",
        ),
        (
            ('connector = "datagen"', 'connector = "datagen"\ncount = 8'),
            r"\[source\]: unknown key\(s\): 'count' belongs under \[source.options\]",
        ),
        (
            ('name = "clicks"', 'name = "clicks"\ninterval = "1s"'),
            r"\[job\]: unknown key\(s\): 'interval' belongs under \[checkpointing\]",
        ),
        (
            ('connector = "print"', 'connector = "prnt"'),
            r"connector 'prnt' is not installed \(did you mean 'print'\?\)",
        ),
        (("parallelism = 1", "parallelism = 0"), r"\[job\] parallelism: expected an integer >= 1"),
        (
            ("count = 8", 'count = "ten"'),
            r"DataGenSource: count must be an integer or None, got 'ten'",
        ),
    ],
)
def test_mistakes_name_the_file_and_the_key(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    old, new = edit
    assert old in PIPELINE
    path = write(tmp_path, PIPELINE.replace(old, new, 1))
    with pytest.raises(ConfigurationError, match=message) as caught:
        load_pipeline(path)
    assert str(path) in str(caught.value)


@pytest.mark.slow
def test_the_cli_reports_a_bad_pipeline_without_a_traceback(tmp_path: Path) -> None:
    directory = tmp_path / "job"
    directory.mkdir()
    done = run_pipeline(
        write(directory, PIPELINE.replace("[source]", "[source]\nconnector2 = 1", 1))
    )
    assert done.returncode == 1
    assert "headwater: error: ConfigurationError:" in done.stderr and "connector2" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_key_by_and_reduce_keep_running_values_per_key(tmp_path: Path) -> None:
    keyed = PIPELINE.replace(
        '[[steps]]\nfilter = "pipeline_functions:even"',
        '[[steps]]\nkey_by = "pipeline_functions:user"\n[[steps]]\nreduce = "pipeline_functions:add"',
    ).replace('[[steps]]\nflat_map = "pipeline_functions:twice"\n', "")
    assert "key_by" in keyed and "flat_map" not in keyed
    done = run_pipeline(write(tmp_path, keyed))
    assert done.returncode == 0, done.stderr
    totals: dict[str, int] = {}
    expected = []
    for n in range(8):  # records n of user u(n % 3), running sums per user
        key = f"u{n % 3}"
        totals[key] = totals.get(key, 0) + n
        expected.append(f"> {key}={totals[key]}")
    assert done.stdout.splitlines() == expected


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ('[[steps]]\nreduce = "pipeline_functions:add"', r"#1: reduce must follow a key_by step"),
        (
            '[[steps]]\nkey_by = "pipeline_functions:user"\n[[steps]]\nmap = "pipeline_functions:show"',
            r"#2: a key_by step is followed by reduce or window, not map",
        ),
        ('[[steps]]\nkey_by = "pipeline_functions:user"', r"the last key_by step needs a reduce"),
    ],
)
def test_key_by_needs_a_reduce(tmp_path: Path, steps: str, message: str) -> None:
    start = PIPELINE.index("[[steps]]")
    end = PIPELINE.index("[sink]")
    with pytest.raises(ConfigurationError, match=message):
        load_pipeline(write(tmp_path, PIPELINE[:start] + steps + "\n\n" + PIPELINE[end:]))
