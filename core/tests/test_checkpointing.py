"""Checkpoints, two-phase commit and recovery inside one process, with failures injected at each phase."""

import asyncio
import json
import random
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from headwater.core import (
    AsyncDataStream,
    CheckpointConfig,
    CheckpointError,
    CollectSink,
    CommitRequest,
    Committer,
    CommittingSinkWriter,
    ConfigurationError,
    DataGenSource,
    DiscardingSink,
    ExecutionConfig,
    FixedDelayRestart,
    JobFailedError,
    JobStatus,
    NoRestart,
    Sink,
    SinkWriter,
    StreamEnvironment,
    WriterInitContext,
)
from headwater.core.testing import FileAppendSink, FileTwoPhaseSink, SlowCommitSink, read_records

COUNT = 6000


def gen(index: int, rng: random.Random) -> int:
    return index


def env_for(tmp: Path, **overrides: Any) -> StreamEnvironment:
    return StreamEnvironment(
        parallelism=overrides.pop("parallelism", 2),
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=40), storage=tmp / "ckpt", **overrides
        ),
        restart_strategy=FixedDelayRestart(attempts=5, delay=timedelta(milliseconds=10)),
        execution=ExecutionConfig(batch_size=100),
    )


def slow_source(count: int = COUNT) -> DataGenSource[int]:
    return DataGenSource(gen, count=count, rows_per_second=30_000)


class FailOnce:
    """Raises once, the first time ``trigger`` is called with ``armed`` set."""

    def __init__(self) -> None:
        self.fired = 0

    def fail(self, where: str) -> None:
        self.fired += 1
        raise RuntimeError(f"injected failure {where}")


def assert_exactly_once(records: list[Any], count: int = COUNT) -> None:
    counts = Counter(records)
    assert [r for r, n in counts.items() if n > 1] == []
    assert sorted(counts) == list(range(count))


def test_failure_before_a_barrier_restarts_from_the_checkpoint_exactly_once(tmp_path: Path) -> None:
    injector = FailOnce()

    def maybe_fail(x: int) -> int:
        if x == COUNT // 2 and not injector.fired:
            injector.fail("in map")
        return x

    env = env_for(tmp_path)
    env.from_source(slow_source()).map(maybe_fail).sink_to(FileTwoPhaseSink(tmp_path / "out"))
    result = env.execute("before-barrier")
    assert injector.fired == 1
    assert result.restarts == 1
    assert result.checkpoints >= 2
    assert_exactly_once(read_records(tmp_path / "out"))


class FlakySink(FileTwoPhaseSink):
    """Fails once at a chosen phase: prepare_commit, commit (before or midway), or restore."""

    def __init__(self, directory: Path, phase: str) -> None:
        super().__init__(directory)
        self.phase = phase
        self.injector = FailOnce()
        self.commits = 0
        self.prepares = 0

    def create_writer(
        self, context: WriterInitContext
    ) -> CommittingSinkWriter[Any, dict[str, str]]:
        if self.phase == "restore" and context.attempt == 1 and not self.injector.fired:
            self.injector.fail("during restore")
        writer = super().create_writer(context)
        if self.phase != "prepare_commit":
            return writer
        sink = self
        original = writer.prepare_commit

        async def prepare_commit() -> list[dict[str, str]]:
            sink.prepares += 1
            if sink.prepares >= 3 and not sink.injector.fired:
                # A later checkpoint's pre-commit fails once an earlier one is committed. Commits
                # run in the background (they never wait for this checkpoint): give them a moment.
                for _ in range(1000):
                    if sink.commits:
                        break
                    await asyncio.sleep(0.005)
                if not sink.injector.fired:  # both subtasks may have waited: fail only once
                    sink.injector.fail("in prepare_commit")
            return await original()

        writer.prepare_commit = prepare_commit  # type: ignore[method-assign]
        return writer

    def create_committer(self, context: WriterInitContext) -> Committer[dict[str, str]]:
        inner = super().create_committer(context)
        sink = self

        class Wrapped(Committer[dict[str, str]]):
            async def commit(self, requests: Sequence[CommitRequest[dict[str, str]]]) -> None:
                sink.commits += 1
                if sink.phase == "before_commit" and sink.commits == 3 and not sink.injector.fired:
                    sink.injector.fail("between pre-commit and commit")
                if sink.phase == "during_commit" and sink.commits == 3 and not sink.injector.fired:
                    await inner.commit(requests[:1])
                    sink.injector.fail("midway through a commit")
                await inner.commit(requests)

        return Wrapped()


@pytest.mark.parametrize("phase", ["prepare_commit", "before_commit", "during_commit"])
def test_failures_around_commit_keep_exactly_once(tmp_path: Path, phase: str) -> None:
    sink = FlakySink(tmp_path / "out", phase)
    env = env_for(tmp_path)
    env.from_source(slow_source()).sink_to(sink)
    result = env.execute(f"fail-{phase}")
    assert sink.injector.fired == 1
    assert result.restarts == 1
    assert_exactly_once(read_records(tmp_path / "out"))


def test_failure_during_restore_is_retried(tmp_path: Path) -> None:
    injector = FailOnce()

    def maybe_fail(x: int) -> int:
        if x == 1000 and not injector.fired:
            injector.fail("in map")
        return x

    sink = FlakySink(tmp_path / "out", "restore")
    env = env_for(tmp_path)
    env.from_source(slow_source()).map(maybe_fail).sink_to(sink)
    result = env.execute("fail-restore")
    assert injector.fired == 1 and sink.injector.fired == 1
    assert result.restarts == 2
    assert_exactly_once(read_records(tmp_path / "out"))


def test_non_transactional_sink_is_at_least_once(tmp_path: Path) -> None:
    injector = FailOnce()

    def maybe_fail(x: int) -> int:
        if x == 4000 and not injector.fired:
            injector.fail("in map")
        return x

    env = env_for(tmp_path)
    env.from_source(slow_source()).map(maybe_fail).sink_to(FileAppendSink(tmp_path / "out"))
    result = env.execute("alo")
    assert result.restarts == 1
    records = read_records(tmp_path / "out")
    assert set(records) == set(range(COUNT))
    assert len(records) >= COUNT


def test_no_restart_strategy_fails_the_job(tmp_path: Path) -> None:
    env = StreamEnvironment(restart_strategy=NoRestart())
    env.from_collection([1, 0]).map(lambda x: 1 // x).print()
    with pytest.raises(JobFailedError, match="after 0 restart"):
        env.execute("no-restart")


def test_checkpoint_metadata_and_retention(tmp_path: Path) -> None:
    env = env_for(tmp_path, retained=2)
    env.from_source(slow_source()).sink_to(FileTwoPhaseSink(tmp_path / "out"))
    result = env.execute("retention")
    chk = sorted((tmp_path / "ckpt").glob("chk-*"))
    assert len(chk) == 2
    assert result.last_checkpoint == chk[-1] or result.last_checkpoint in chk
    metadata = json.loads((chk[-1] / "_metadata").read_text())
    assert metadata["format_version"] == 2 and metadata["state_codec"] == 1
    assert metadata["kind"] == "final"
    assert not list((tmp_path / "ckpt").rglob("*.tmp-*"))


def test_restore_latest_resumes_and_does_not_repeat(tmp_path: Path) -> None:
    env = env_for(tmp_path, restore_from="latest")
    env.from_source(slow_source()).sink_to(FileTwoPhaseSink(tmp_path / "out"))
    env.execute("first")
    # A second run restores the final checkpoint: every source is done, nothing is written again.
    env2 = env_for(tmp_path, restore_from="latest")
    env2.from_source(slow_source()).sink_to(FileTwoPhaseSink(tmp_path / "out"))
    result = env2.execute("again")
    assert result.metrics.get("Sink: FileTwoPhaseSink", {}).get("numRecordsIn", 0) == 0
    assert_exactly_once(read_records(tmp_path / "out"))


def keyed_job(env: StreamEnvironment, sink: CollectSink[Any], count: int) -> None:
    (
        env.from_source(DataGenSource(gen, count=count, rows_per_second=20_000), name="gen")
        .uid("gen")
        .map(lambda x: (f"k{x % 5}", 1))
        .key_by(lambda t: t[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .uid("sum")
        .sink_to(sink)
        .uid("sink")
    )


def test_stop_with_savepoint_then_restore_with_another_parallelism(tmp_path: Path) -> None:
    count = 8000

    async def first_run() -> Path:
        env = env_for(tmp_path, parallelism=2)
        sink: CollectSink[Any] = CollectSink()
        keyed_job(env, sink, count)
        client = await env.execute_async("savepoint")
        await asyncio.sleep(0.15)
        assert client.status is JobStatus.RUNNING
        saved = await client.stop_with_savepoint(tmp_path / "sp")
        first.extend(sink.results())
        return saved

    first: list[Any] = []
    savepoint = asyncio.run(first_run())
    assert (savepoint / "_metadata").is_file()
    assert 0 < len(first) < count

    env = env_for(tmp_path, parallelism=3, restore_from=str(savepoint))
    sink: CollectSink[Any] = CollectSink()
    keyed_job(env, sink, count)
    env.execute("restored")
    second = sink.results()
    assert len(first) + len(second) == count  # every record reduced exactly once
    final: dict[str, int] = {}
    for key, total in first + second:
        final[key] = max(final.get(key, 0), total)
    assert final == {f"k{k}": count // 5 for k in range(5)}


def test_restoring_state_of_an_unknown_operator_is_refused(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    keyed_job(env, CollectSink(), 500)
    result = env.execute("source-job")
    assert result.last_checkpoint is not None
    other = env_for(tmp_path, restore_from=str(result.last_checkpoint))
    other.from_collection([1]).sink_to(CollectSink())
    with pytest.raises(CheckpointError, match="sum"):
        other.execute("other")


def test_cancel_stops_an_unbounded_job(tmp_path: Path) -> None:
    async def main() -> JobStatus:
        env = env_for(tmp_path)
        env.from_source(DataGenSource(gen, rows_per_second=1000)).sink_to(
            FileAppendSink(tmp_path / "o")
        )
        client = await env.execute_async("unbounded")
        await asyncio.sleep(0.2)
        await client.cancel()
        return client.status

    assert asyncio.run(main()) is JobStatus.CANCELED


def test_cancel_before_the_first_attempt_starts_stops_the_job(tmp_path: Path) -> None:
    """A cancel right after ``execute_async`` (no attempt yet) is not lost: the job never runs on."""

    async def main() -> JobStatus:
        env = env_for(tmp_path)
        env.from_source(DataGenSource(gen, rows_per_second=1000)).sink_to(
            FileAppendSink(tmp_path / "o")
        )
        client = await env.execute_async("unbounded")
        assert client.status is JobStatus.CREATED  # no attempt exists yet
        # In this task (wait_for would start the attempt first); a guard against a hang, not a
        # time limit: an ignored cancel waits for the unbounded job forever.
        async with asyncio.timeout(60):
            await client.cancel()
        return client.status

    assert asyncio.run(main()) is JobStatus.CANCELED


def test_cancel_while_restarting_stops_the_job(tmp_path: Path) -> None:
    """A cancel between a failed attempt and the next one is not lost: no new attempt runs on."""
    failure = FailOnce()

    def fail_first(record: int) -> int:
        if not failure.fired:
            failure.fail("in the first attempt")
        return record

    async def main() -> JobStatus:
        env = env_for(tmp_path)
        env.restart_strategy = FixedDelayRestart(attempts=5, delay=timedelta(seconds=2))
        env.from_source(DataGenSource(gen, rows_per_second=1000)).map(fail_first).sink_to(
            FileAppendSink(tmp_path / "o")
        )
        client = await env.execute_async("unbounded")
        # Guards against a hang, not time limits: an ignored cancel waits for the job forever.
        async with asyncio.timeout(60):
            while client.status is not JobStatus.RESTARTING:
                await asyncio.sleep(0.01)
            await client.cancel()
        return client.status

    assert asyncio.run(main()) is JobStatus.CANCELED


class RetryingCommitSink(FileTwoPhaseSink):
    """Its committer answers ``retry_later`` for the first ``refusals`` commit calls."""

    def __init__(self, directory: Path, refusals: int) -> None:
        super().__init__(directory)
        self.refusals = refusals
        self.calls = 0

    def create_committer(self, context: WriterInitContext) -> Committer[dict[str, str]]:
        inner = super().create_committer(context)
        sink = self

        class Reluctant(Committer[dict[str, str]]):
            async def commit(self, requests: Sequence[CommitRequest[dict[str, str]]]) -> None:
                sink.calls += 1
                if sink.calls <= sink.refusals:
                    for request in requests:
                        request.retry_later()
                    return
                await inner.commit(requests)

        return Reluctant()


def test_a_bounded_job_does_not_end_with_commits_pending(tmp_path: Path) -> None:
    env = StreamEnvironment(restart_strategy=NoRestart())  # no periodic checkpoints: only the final
    sink = RetryingCommitSink(tmp_path / "out", refusals=3)
    env.from_collection(list(range(500))).sink_to(sink)
    result = env.execute("reluctant-commits")
    assert result.restarts == 0
    assert sink.calls == 4  # the final checkpoint's commit, then three retries
    assert sorted(read_records(tmp_path / "out")) == list(range(500))


def test_commits_that_never_succeed_fail_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headwater.core._runtime import _executor

    monkeypatch.setattr(_executor, "FINAL_COMMIT_RETRIES", 2)
    env = StreamEnvironment(restart_strategy=NoRestart())
    env.from_collection([1, 2, 3]).sink_to(RetryingCommitSink(tmp_path / "out", refusals=99))
    with pytest.raises(JobFailedError, match="commits still pending"):
        env.execute("never-committed")
    assert read_records(tmp_path / "out") == []


def test_stop_with_savepoint_emits_and_commits_nothing_past_it(tmp_path: Path) -> None:
    """After a stop with savepoint the sink holds exactly the records before the savepoint.

    Commits are slow, so periodic checkpoints would be triggered while the savepoint completes;
    records past the savepoint must neither be committed nor flushed, or the restored job
    delivers them a second time.
    """
    sink = SlowCommitSink()
    file_out = tmp_path / "alo"

    def job(env: StreamEnvironment) -> None:
        stream = env.from_source(
            DataGenSource(gen, rows_per_second=20_000, num_splits=1, batch_size=50)
        ).uid("gen")
        stream.sink_to(sink).uid("collect")
        stream.sink_to(FileAppendSink(file_out)).uid("append")

    async def run(restore_from: str | None, seconds: float, savepoint: Path) -> Path:
        env = env_for(tmp_path, parallelism=1, restore_from=restore_from)
        job(env)
        client = await env.execute_async("stop")
        await asyncio.sleep(seconds)
        return await client.stop_with_savepoint(savepoint)

    first = asyncio.run(run(None, 0.5, tmp_path / "sp1"))
    after_first = sink.results()
    asyncio.run(run(str(first), 0.5, tmp_path / "sp2"))
    combined = sink.results()
    assert len(combined) > len(after_first) > 0
    assert combined == list(range(len(combined))), "a record committed twice or skipped"
    appended = read_records(file_out)
    assert sorted(appended) == list(range(len(appended))), "a record flushed twice or skipped"
    assert len(appended) == len(combined)


class _StallOnce(Sink[Any]):
    """Counts records; the snapshot after ``stall`` is set hangs for a second, once."""

    def __init__(self) -> None:
        self.stall = False
        self.records = 0

    def create_writer(self, context: WriterInitContext) -> SinkWriter[Any]:
        owner = self

        class Writer(SinkWriter[Any]):
            async def write_batch(self, records: Sequence[Any]) -> None:
                owner.records += len(records)

            async def flush(self, end_of_input: bool) -> None:
                if owner.stall:
                    owner.stall = False
                    await asyncio.sleep(1.0)

        return Writer()


def test_a_failed_stop_with_savepoint_leaves_the_job_running(tmp_path: Path) -> None:
    """A stop whose savepoint expires does not stop the job: sources resume, checkpoints go on."""
    sink = _StallOnce()

    async def run() -> None:
        env = env_for(tmp_path, parallelism=1, timeout=timedelta(milliseconds=300))
        source = env.from_source(DataGenSource(gen, rows_per_second=5_000, num_splits=1))
        source.rebalance().sink_to(sink)  # a source task and an operator task to resume
        client = await env.execute_async("failed stop")
        await asyncio.sleep(0.2)
        sink.stall = True
        with pytest.raises(TimeoutError):
            await client.stop_with_savepoint(tmp_path / "sp")
        assert client.status is JobStatus.RUNNING
        before = (sink.records, client._executor.completed)
        for _ in range(100):  # the stalled snapshot ends 1 s after it began
            await asyncio.sleep(0.05)
            if client._executor.completed > before[1] + 1:
                break
        assert sink.records > before[0], "the sources did not resume"
        assert client._executor.completed > before[1] + 1, "no checkpoint after the failed stop"
        saved = await client.stop_with_savepoint(tmp_path / "sp")
        assert (saved / "_metadata").is_file()

    asyncio.run(run())


def test_stop_with_savepoint_holds_back_async_results_past_it(tmp_path: Path) -> None:
    """Async I/O results that complete after the stop's barrier are not emitted.

    The calls in flight are in the savepoint and issued again by the restored job: emitting their
    results as well would deliver them twice to an at-least-once sink.
    """
    written: list[int] = []

    class EagerSink(Sink[int]):
        """Writes on arrival (as Kafka's at-least-once sink sends), so nothing waits for a flush."""

        def create_writer(self, context: WriterInitContext) -> SinkWriter[int]:
            class Writer(SinkWriter[int]):
                async def write_batch(self, records: Sequence[int]) -> None:
                    written.extend(records)

                async def flush(self, end_of_input: bool) -> None:
                    pass

            return Writer()

    async def lookup(value: int) -> int:
        await asyncio.sleep(0.05)
        return value

    async def run(restore_from: str | None, savepoint: Path) -> Path:
        env = env_for(tmp_path, parallelism=1, restore_from=restore_from)
        stream = env.from_source(
            DataGenSource(gen, rows_per_second=2_000, num_splits=1, batch_size=20)
        ).uid("gen")
        results = AsyncDataStream.unordered_wait(
            stream.rebalance(), lookup, timedelta(seconds=5), capacity=50
        ).uid("lookup")
        results.sink_to(EagerSink()).uid("eager")
        # Slow commits keep the job alive a while after the barrier, while calls complete.
        stream.sink_to(SlowCommitSink()).uid("slow commits")
        client = await env.execute_async("async stop")
        await asyncio.sleep(0.4)
        return await client.stop_with_savepoint(savepoint)

    first = asyncio.run(run(None, tmp_path / "sp1"))
    asyncio.run(run(str(first), tmp_path / "sp2"))
    assert len(written) > 100
    duplicates = [v for v, n in Counter(written).items() if n > 1]
    assert not duplicates, f"written twice: {sorted(duplicates)[:20]}"


def _unbounded_job(
    sink: Sink[Any], checkpointing: CheckpointConfig | None = None
) -> StreamEnvironment:
    env = StreamEnvironment(parallelism=1, checkpointing=checkpointing)
    env.from_source(DataGenSource(lambda i, _rng: i), name="endless").sink_to(sink)
    return env


@pytest.mark.parametrize(
    ("sink", "guarantee"),
    [
        (lambda tmp: FileAppendSink(tmp), "at_least_once"),
        (lambda tmp: FileTwoPhaseSink(tmp), "exactly_once"),
    ],
    ids=["at-least-once", "exactly-once"],
)
def test_a_guaranteeing_sink_behind_an_unbounded_source_needs_checkpoints(
    tmp_path: Path, sink: Any, guarantee: str
) -> None:
    """Without checkpoints such a sink would never commit (or never be replayed): refused."""
    env = _unbounded_job(sink(tmp_path))
    with pytest.raises(ConfigurationError) as info:
        env.build()
    message = str(info.value)
    assert f"configured for {guarantee}" in message
    assert "unbounded source (endless)" in message
    assert "CheckpointConfig(interval=...)" in message
    # With checkpoints it is accepted, and a sink that guarantees nothing needs none.
    _unbounded_job(sink(tmp_path), CheckpointConfig(interval=timedelta(seconds=1))).build()
    _unbounded_job(DiscardingSink()).build()


def test_a_bounded_source_needs_no_checkpoints_for_any_sink(tmp_path: Path) -> None:
    env = StreamEnvironment(parallelism=1)
    env.from_collection([1, 2, 3]).sink_to(FileTwoPhaseSink(tmp_path))
    env.build()
