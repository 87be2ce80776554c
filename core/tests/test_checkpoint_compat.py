"""Checkpoints written by earlier releases still restore (state is versioned, never pickled).

Each release adds a fixture made by ``fixtures/make_savepoint.py``; this test restores every one of
them, with another parallelism, and checks that the job finishes with exact results.
"""

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from headwater.core import CheckpointConfig, CollectSink, StreamEnvironment

FIXTURES = Path(__file__).parent / "fixtures"
SAVEPOINTS = sorted(p for p in FIXTURES.glob("savepoint-*") if p.is_dir())


def fixture_job() -> Any:
    spec = importlib.util.spec_from_file_location("make_savepoint", FIXTURES / "make_savepoint.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("savepoint", SAVEPOINTS, ids=[p.name for p in SAVEPOINTS])
def test_savepoints_of_earlier_releases_restore(savepoint: Path) -> None:
    job = fixture_job()
    metadata = json.loads((savepoint / "_metadata").read_text())
    assert metadata["format_version"] == 1
    env = StreamEnvironment(
        parallelism=3, checkpointing=CheckpointConfig(restore_from=str(savepoint))
    )
    totals: CollectSink[Any] = CollectSink()
    windows: CollectSink[Any] = CollectSink()
    job.build(env, totals, windows)
    env.execute("restored-fixture")
    final: dict[int, int] = {}
    for record in totals.results():
        final[record["key"]] = max(final.get(record["key"], 0), record["n"])
    # Keyed state came back from the savepoint: the running totals end at the full counts.
    assert final == {k: len(range(k, job.COUNT, 7)) for k in range(7)}
    # Windows that had not fired yet came back with their partial counts and fired complete.
    fired = {(r["key"], r["ts"] // 5000): r["n"] for r in windows.results()}
    assert fired, "windows fired after the restore"
    for (key, window), n in fired.items():
        assert n == len([i for i in range(job.COUNT) if i % 7 == key and i * 10 // 5000 == window])


def test_there_is_a_fixture_for_this_release() -> None:
    from headwater.core import __version__

    assert (FIXTURES / f"savepoint-{__version__}" / "_metadata").is_file(), (
        "run core/tests/fixtures/make_savepoint.py for this release"
    )
