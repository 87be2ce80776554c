"""The RocksDB keyed-state backend, incremental checkpoints, and max_parallelism changes refused
for every kind of keyed state."""

import asyncio
import importlib.util
import json
import subprocess
import sys
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from headwater.core import (
    AggregateFunction,
    CheckpointConfig,
    CollectSink,
    DataGenSource,
    JobFailedError,
    KeyedProcessFunction,
    ListStateDescriptor,
    MapStateDescriptor,
    StateBackend,
    StateTtlConfig,
    StreamEnvironment,
    TumblingEventTimeWindows,
    ValueStateDescriptor,
    WatermarkStrategy,
    _state,
)
from headwater.core._graph import NodeKind
from headwater.core._keygroups import key_group_range
from headwater.core._rocksdb_state import RocksDBStore
from headwater.core._runtime._restore import RestoredJob
from headwater.core._runtime._storage import CheckpointStorage, list_checkpoints, read_metadata
from headwater.core._state_files import write_chunks_to_bytes
from headwater.core.savepoints import read_checkpoint

COUNT = 3000
KEYS = 40


def event(index: int, _rng: Any) -> tuple[tuple[str, int], int, int]:
    return (("k", index % KEYS), index, index * 10)


def backend_for(kind: str, tmp_path: Path, mp: int = 16) -> _state.KeyedStateBackend:
    store = RocksDBStore(tmp_path / "db", "unit") if kind == "rocksdb" else None
    return _state.KeyedStateBackend(mp, operator="op", store=store, track_changes=True)


@pytest.mark.parametrize("kind", ["memory", "rocksdb"])
def test_same_api_ttl_and_restore_across_backends(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_000_000]
    monkeypatch.setattr(_state, "_now_ms", lambda: now[0])
    backend = backend_for(kind, tmp_path)
    value = backend.get_state(ValueStateDescriptor("v", default=0))
    items = backend.get_state(ListStateDescriptor("l"))
    mapping = backend.get_state(MapStateDescriptor("m"))
    short = backend.get_state(
        ValueStateDescriptor("ttl", ttl=StateTtlConfig(ttl=timedelta(seconds=1)))
    )
    for key in [(1, "a"), (2, "b"), (1, "a")]:
        backend.current_key = key
        value.update(value.value() + 1)
        items.add(key)
        mapping.put(key[0], {key})
        short.update("soon gone")
    backend.current_key = (1, "a")
    assert (value.value(), items.get(), mapping.items()) == (
        2,
        [(1, "a"), (1, "a")],
        [(1, {(1, "a")})],
    )
    now[0] += 2000
    assert short.value() is None  # expired
    # Restore into the other backend kind, at another parallelism's share of key groups.
    other = backend_for("memory" if kind == "rocksdb" else "rocksdb", tmp_path / "other")
    other.restore_files([[write_chunks_to_bytes(backend.snapshot())]])
    other.current_key = (1, "a")
    assert other.get_state(ValueStateDescriptor("v", default=0)).value() == 2
    assert other.get_state(ListStateDescriptor("l")).get() == [(1, "a"), (1, "a")]
    assert (
        other.get_state(
            ValueStateDescriptor("ttl", ttl=StateTtlConfig(ttl=timedelta(seconds=1)))
        ).value()
        is None
    )
    backend.close()
    other.close()


@pytest.mark.parametrize("kind", ["memory", "rocksdb"])
def test_incremental_snapshot_holds_only_changed_entries(kind: str, tmp_path: Path) -> None:
    backend = backend_for(kind, tmp_path)
    value = backend.get_state(ValueStateDescriptor("v"))
    for k in range(100):
        backend.current_key = k
        value.update(k)
    full = backend.snapshot(full=False)  # everything changed since the start
    assert sum(len(entries) for _, name, entries in full if name == "v") == 100
    backend.current_key = 5
    value.update(500)
    backend.current_key = 6
    value.clear()
    delta = backend.snapshot(full=False)
    entries = sorted(
        (_state.decode_state(k), None if v is None else _state.decode_state(v))
        for _, name, entries in delta
        for k, v in entries
        if name == "v"
    )
    assert entries == [(5, 500), (6, None)]
    backend.close()


def reduce_job(
    env: StreamEnvironment, sink: CollectSink[Any], rate: int, seen: list[int] | None = None
) -> None:
    """A running sum per key; ``seen`` counts the records read (to stop in the middle)."""
    (
        env.from_source(
            DataGenSource(event, count=COUNT, rows_per_second=rate, num_splits=1), name="gen"
        )
        .uid("gen")
        .map(lambda e: seen.append(1) or e if seen is not None else e)
        .key_by(lambda e: e[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1], b[2]))
        .uid("sums")
        .sink_to(sink)
        .uid("sink")
    )


def expected_running_sums() -> list[tuple[tuple[str, int], int, int]]:
    sums: dict[Any, int] = {}
    out = []
    for i in range(COUNT):
        key, n, ts = event(i, None)
        sums[key] = sums.get(key, 0) + n
        out.append((key, sums[key], ts))
    return out


@pytest.mark.parametrize(
    ("before", "after"), [("rocksdb", "rocksdb"), ("rocksdb", "memory"), ("memory", "rocksdb")]
)
def test_rocksdb_reduce_restores_at_another_parallelism_exactly(
    before: str, after: str, tmp_path: Path
) -> None:
    def backend(kind: str) -> StateBackend:
        return (
            StateBackend.rocksdb(tmp_path / "rocks") if kind == "rocksdb" else StateBackend.memory()
        )

    savepoint = tmp_path / "sp"
    first: CollectSink[Any] = CollectSink()

    async def stop_midway() -> None:
        env = StreamEnvironment(parallelism=2, state_backend=backend(before))
        seen: list[int] = []
        reduce_job(env, first, rate=6000, seen=seen)
        client = await env.execute_async("rocks-1")
        while len(seen) < 100:  # the input takes 0.5 s at least: stop in the middle
            await asyncio.sleep(0.01)
        await client.stop_with_savepoint(savepoint)

    asyncio.run(stop_midway())
    assert 0 < len(first.results()) < COUNT
    # The savepoint, read without running the job: every key's newest running sum.
    reader = read_checkpoint(savepoint)
    assert {op.uid: op.parallelism for op in reader.operators()}["sums"] == 2
    newest = {r[0]: r for r in first.results()}
    assert dict(reader.keyed_state("sums", "reduce")) == newest
    assert reader.keyed_entry_count("sums") == len(newest)
    assert [len(state["splits"]) for state in reader.operator_state("gen")] == [1, 0]
    second: CollectSink[Any] = CollectSink()
    env = StreamEnvironment(
        parallelism=3,
        state_backend=backend(after),
        checkpointing=CheckpointConfig(restore_from=str(savepoint)),
    )
    reduce_job(env, second, rate=1_000_000)
    env.execute("rocks-2")
    assert sorted(first.results() + second.results()) == sorted(expected_running_sums())
    assert not list((tmp_path / "rocks").glob("*/*")), "closed subtasks delete their databases"


class Count(KeyedProcessFunction[Any, Any]):
    def open(self, context: Any) -> None:
        self.count = context.get_state(ValueStateDescriptor("count", default=0))

    def process_element(self, value: Any, ctx: Any) -> Iterator[Any]:
        self.count.update(self.count.value() + 1)
        yield (ctx.current_key, self.count.value())


def test_incremental_checkpoints_write_changes_and_delete_unreferenced_files(
    tmp_path: Path,
) -> None:
    storage = tmp_path / "ckpt"
    env = StreamEnvironment(
        parallelism=2,
        state_backend=StateBackend.rocksdb(tmp_path / "rocks"),
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=100),
            storage=storage,
            retained=2,
            incremental=True,
            incremental_full_every=3,
        ),
    )
    sink: CollectSink[Any] = CollectSink()
    (
        env.from_source(DataGenSource(event, count=COUNT, rows_per_second=1500, num_splits=1))
        .key_by(lambda e: e[0])
        .process(Count())
        .uid("count")
        .sink_to(sink)
    )
    result = env.execute("incremental")
    assert result.checkpoints >= 4
    finals: dict[Any, int] = {}
    for key, n in sink.results():
        finals[key] = max(finals.get(key, 0), n)
    assert finals == {("k", k): COUNT // KEYS for k in range(KEYS)}
    retained = [path for _, path in list_checkpoints(storage)]
    assert len(retained) == 2
    referenced = {f for path in retained for f in read_metadata(path)["shared_files"]}
    on_disk = {p.name for p in (storage / "shared").iterdir()}
    # Files no retained checkpoint needs were deleted (dozens were written); at most the two
    # subtasks' files of a checkpoint still pending when the job ended may remain.
    assert referenced and referenced <= on_disk and len(on_disk - referenced) <= 2
    # The latest checkpoint's chain of files restores, spread over another parallelism.
    restored = RestoredJob(read_metadata(retained[-1]), retained[-1])
    counts: dict[Any, int] = {}
    for subtask in range(3):
        share = restored.subtask_state("count", NodeKind.KEYED_PROCESS, subtask, 3, 128)
        assert share is not None
        backend = _state.KeyedStateBackend(128)
        backend.restore(share["keyed"])
        backend.restore_files(share["keyed_sources"], key_group_range(subtask, 128, 3))
        state = backend.get_state(ValueStateDescriptor("count"))
        for key in finals:
            backend.current_key = key
            if state.value() is not None:
                assert key not in counts, "each key restores in exactly one subtask"
                counts[key] = state.value()
    assert counts == finals
    # The public reader merges the same chain.
    reader = read_checkpoint(retained[-1])
    assert dict(reader.keyed_state("count", ValueStateDescriptor("count"))) == finals


class Avg(AggregateFunction[Any, list[int], float]):
    def create_accumulator(self) -> list[int]:
        return [0, 0]

    def add(self, value: Any, accumulator: list[int]) -> list[int]:
        return [accumulator[0] + value[1], accumulator[1] + 1]

    def get_result(self, accumulator: list[int]) -> float:
        return accumulator[0] / accumulator[1]


class Kinds(KeyedProcessFunction[Any, Any]):
    """Keeps one kind of keyed state (or a timer) per key."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def open(self, context: Any) -> None:
        if self.kind == "value":
            self.state = context.get_state(ValueStateDescriptor("s"))
        elif self.kind == "list":
            self.state = context.get_state(ListStateDescriptor("s"))
        elif self.kind == "map":
            self.state = context.get_state(MapStateDescriptor("s"))

    def process_element(self, value: Any, ctx: Any) -> Iterator[Any]:
        if self.kind == "value":
            self.state.update(value)
        elif self.kind == "list":
            self.state.add(value)
        elif self.kind == "map":
            self.state.put(value[1], value)
        else:
            ctx.timer_service.register_event_time_timer(10**12)
        return iter(())


def keyed_kind_job(env: StreamEnvironment, kind: str) -> None:
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda e, _t: e[2]
    )
    keyed = (
        env.from_source(
            DataGenSource(event, count=10**6, rows_per_second=2000, num_splits=1),
            strategy,
            name="gen",
        )
        .uid("gen")
        .key_by(lambda e: e[0])
    )
    if kind == "reduce":
        stream = keyed.reduce(lambda a, b: b)
    elif kind == "window":
        stream = keyed.window(TumblingEventTimeWindows.of(timedelta(hours=1))).aggregate(Avg())
    else:
        stream = keyed.process(Kinds(kind))
    stream.uid("state").sink_to(CollectSink()).uid("sink")


@pytest.mark.parametrize("kind", ["reduce", "value", "list", "map", "timers", "window"])
def test_restore_with_another_max_parallelism_is_refused_for_every_keyed_state(
    kind: str, tmp_path: Path
) -> None:
    savepoint = tmp_path / "sp"

    async def take() -> None:
        env = StreamEnvironment(parallelism=2, max_parallelism=64)
        keyed_kind_job(env, kind)
        client = await env.execute_async("mp-1")
        await asyncio.sleep(0.2)
        await client.stop_with_savepoint(savepoint)

    asyncio.run(take())
    env = StreamEnvironment(
        parallelism=2,
        max_parallelism=128,
        checkpointing=CheckpointConfig(restore_from=str(savepoint)),
    )
    keyed_kind_job(env, kind)
    with pytest.raises(JobFailedError, match="max_parallelism 64, the job 128"):
        env.execute("mp-2")


def test_files_of_checkpoints_that_never_completed_are_removed_at_start(tmp_path: Path) -> None:
    storage = CheckpointStorage(tmp_path, retained=2)
    shared = tmp_path / "shared"
    shared.mkdir()
    for name in ("kept", "orphan"):
        (shared / name).write_bytes(b"x")
    storage.write(1, json.dumps({"format_version": 2, "shared_files": ["kept"]}).encode())
    storage.remove_orphans()
    assert sorted(p.name for p in shared.iterdir()) == ["kept"]


LARGE_STATE_JOB = Path(__file__).parent / "jobs" / "large_state_job.py"
LARGE_KEYS = 16_000
LARGE_PAYLOAD = 16_384
"""16,000 keys of 16 KiB: 262 MB of keyed state, more than the process may allocate."""
DATA_LIMIT_MB = 250
"""The job's RLIMIT_DATA: an interpreter running a RocksDB job needs about 100-190 MB of it."""


def _run_large_state_job(phase: str, work: Path) -> None:
    args = [str(LARGE_KEYS), str(LARGE_PAYLOAD), str(DATA_LIMIT_MB)]
    done = subprocess.run(
        [sys.executable, str(LARGE_STATE_JOB), phase, str(work), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{phase} failed ({done.returncode}): {done.stderr[-3000:]}"


@pytest.mark.slow
def test_rocksdb_state_larger_than_memory_survives_a_savepoint_and_a_restore(
    tmp_path: Path,
) -> None:
    """A full savepoint and a restore stream the state; neither holds it in memory.

    The job's process may allocate at most DATA_LIMIT_MB (RLIMIT_DATA), less than its state: the
    release before this one built the savepoint in memory and died with a MemoryError.
    """
    _run_large_state_job("fill", tmp_path)
    savepoint_bytes = sum(f.stat().st_size for f in (tmp_path / "savepoint").iterdir())
    assert savepoint_bytes > DATA_LIMIT_MB << 20  # a self-contained copy of the whole state
    _run_large_state_job("restore", tmp_path)
    # The last output of every key, over both runs, is the reduce computed directly.
    last: dict[int, tuple[int, int]] = {}
    for phase in ("fill", "restore"):
        for line in (tmp_path / f"out-{phase}.txt").read_text().splitlines():
            key, total, crc = map(int, line.split())
            last[key] = (total, crc)
    spec = importlib.util.spec_from_file_location("large_state_job", LARGE_STATE_JOB)
    assert spec is not None and spec.loader is not None
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    rounds = job.ROUNDS
    expected = {}
    for key in range(LARGE_KEYS):
        indexes = range(key, LARGE_KEYS * rounds, LARGE_KEYS)
        newest = job.payload(indexes[-1], LARGE_PAYLOAD)
        expected[key] = (sum(indexes), zlib.crc32(newest))
    assert last == expected
