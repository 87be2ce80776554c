"""Completed checkpoints are announced to every task at once, without holding back the next one;
a failing snapshot fails its checkpoint (and the job) instead of leaving anything waiting; what a
source sends downstream respects the batch size."""

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from headwater.core import (
    CheckpointConfig,
    CheckpointError,
    CollectionSource,
    CollectSink,
    CommitRequest,
    Committer,
    DataGenSource,
    ExecutionConfig,
    JobFailedError,
    Sink,
    SinkWriter,
    StreamEnvironment,
    WriterInitContext,
)
from headwater.core._runtime._storage import list_checkpoints


class BlockingFirstCommitSink(CollectSink[Any]):
    """A CollectSink whose first commit waits until ``more`` later checkpoints have completed.

    With notifications awaited before the next trigger, those checkpoints never come: the
    commit gives up after ``give_up`` seconds and records that it did.
    """

    def __init__(self, storage: Path, more: int, give_up: float = 20.0) -> None:
        super().__init__()
        self.storage = storage
        self.more = more
        self.give_up = give_up
        self.completed_while_blocked: list[int] = []
        self.gave_up = False
        self.commits = 0
        self.released = False
        """The blocked commit has returned (either way)."""

    def create_committer(self, context: WriterInitContext) -> Committer[str]:
        inner = super().create_committer(context)
        sink = self

        class _Blocking(Committer[str]):
            async def commit(self, requests: Sequence[CommitRequest[str]]) -> None:
                sink.commits += 1
                if sink.commits == 1:
                    first = max(i for i, _ in list_checkpoints(sink.storage))
                    loop = asyncio.get_running_loop()
                    deadline = loop.time() + sink.give_up
                    while loop.time() < deadline:
                        ids = [i for i, _ in list_checkpoints(sink.storage) if i > first]
                        if len(ids) >= sink.more:
                            sink.completed_while_blocked = ids
                            break
                        await asyncio.sleep(0.01)
                    else:
                        sink.gave_up = True
                    await inner.commit(requests)
                    sink.released = True
                    return
                await inner.commit(requests)

        return _Blocking()


def test_a_blocked_commit_does_not_hold_back_later_checkpoints(tmp_path: Path) -> None:
    storage = tmp_path / "checkpoints"
    sink = BlockingFirstCommitSink(storage, more=3)

    async def main() -> None:
        env = StreamEnvironment(
            parallelism=2,
            checkpointing=CheckpointConfig(
                interval=timedelta(milliseconds=50), storage=storage, retained=10
            ),
        )
        env.from_source(DataGenSource(lambda i, _r: i, count=10**9, rows_per_second=2000)).sink_to(
            sink
        )
        client = await env.execute_async("blocked commit")
        while not sink.released:
            await asyncio.sleep(0.01)
        await client.cancel()

    asyncio.run(main())
    assert not sink.gave_up, "no checkpoint completed while a commit was blocked"
    assert len(sink.completed_while_blocked) >= 3
    # The later commits covered everything the blocked one had not: nothing committed twice.
    results = sink.results()
    assert len(results) == len(set(results))


class BatchSizes(Sink[int]):
    """Records the size of every batch its writer gets."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def create_writer(self, context: WriterInitContext) -> SinkWriter[int]:
        sizes = self.sizes

        class _Writer(SinkWriter[int]):
            async def write_batch(self, records: Sequence[int]) -> None:
                sizes.append(len(records))

            async def flush(self, end_of_input: bool) -> None:
                pass

        return _Writer()


def test_a_large_poll_goes_downstream_in_batches_of_at_most_batch_size() -> None:
    """A reader emitting 5,000 records in one poll (a large fetch) is sent in slices."""
    env = StreamEnvironment(execution=ExecutionConfig(batch_size=1000))
    sink = BatchSizes()
    env.from_source(CollectionSource(list(range(12_000)), batch_size=5000)).sink_to(sink)
    env.execute("batch sizes")
    assert sum(sink.sizes) == 12_000
    assert max(sink.sizes) == 1000


class FailingSnapshotSink(BatchSizes):
    """Its writer's snapshot raises (after ``after`` successful ones)."""

    def __init__(self, after: int = 0) -> None:
        super().__init__()
        self.after = after

    def create_writer(self, context: WriterInitContext) -> SinkWriter[int]:
        sink = self

        class _Writer(SinkWriter[int]):
            async def write_batch(self, records: Sequence[int]) -> None:
                pass

            async def flush(self, end_of_input: bool) -> None:
                pass

            def snapshot_state(self, checkpoint_id: int) -> list[Any]:
                if sink.after <= 0:
                    raise RuntimeError("state cannot be snapshotted")
                sink.after -= 1
                return []

        return _Writer()


def run_until_done(env: StreamEnvironment) -> BaseException:
    """Run the job; it must end (with a failure) within a generous guard, not hang."""

    async def main() -> None:
        client = await env.execute_async("snapshot failure")
        await asyncio.wait_for(client.wait(), timeout=60)

    with pytest.raises(JobFailedError) as info:
        asyncio.run(main())
    return info.value


@pytest.mark.parametrize("checkpointing", [False, True])
def test_a_failing_final_checkpoint_fails_the_bounded_job(checkpointing: bool) -> None:
    """The final checkpoint snapshots finished tasks: an error there fails the job, naming it."""
    interval = timedelta(seconds=30) if checkpointing else None
    env = StreamEnvironment(parallelism=2, checkpointing=CheckpointConfig(interval=interval))
    env.from_collection(list(range(100))).sink_to(FailingSnapshotSink())
    error = run_until_done(env)
    assert "state cannot be snapshotted" in str(error)


def test_a_failing_periodic_checkpoint_fails_the_job() -> None:
    env = StreamEnvironment(
        checkpointing=CheckpointConfig(interval=timedelta(milliseconds=50)),
    )
    env.from_source(DataGenSource(lambda i, _r: i, count=10**9, rows_per_second=2000)).sink_to(
        FailingSnapshotSink(after=2)
    )
    error = run_until_done(env)
    assert "state cannot be snapshotted" in str(error)


def test_a_failing_savepoint_reaches_its_caller(tmp_path: Path) -> None:
    env = StreamEnvironment()
    env.from_source(DataGenSource(lambda i, _r: i, count=10**9, rows_per_second=2000)).sink_to(
        FailingSnapshotSink()
    )

    async def main() -> None:
        client = await env.execute_async("savepoint failure")
        with pytest.raises(CheckpointError, match="state cannot be snapshotted"):
            await asyncio.wait_for(client.trigger_savepoint(tmp_path / "sp"), timeout=60)
        with pytest.raises(JobFailedError):
            await asyncio.wait_for(client.wait(), timeout=60)

    asyncio.run(main())
