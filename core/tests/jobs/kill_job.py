"""A bounded job for the process-kill tests: DataGen -> map -> file sink, 100 ms checkpoints.

Usage: python kill_job.py OUTPUT_DIR CHECKPOINT_DIR COUNT MODE
MODE is exactly_once, at_least_once, async (an async I/O lookup before an at-least-once sink),
windows (event-time windows whose accumulators are mutated in place, into an exactly-once sink) or
rocksdb (a keyed running reduce on the RocksDB backend with incremental checkpoints, into an
exactly-once sink).
Every run resumes from the newest checkpoint in CHECKPOINT_DIR.
"""

import asyncio
import random
import sys
from datetime import timedelta
from pathlib import Path

from headwater.core import (
    AggregateFunction,
    AsyncDataStream,
    CheckpointConfig,
    DataGenSource,
    StateBackend,
    StreamEnvironment,
    TumblingEventTimeWindows,
    WatermarkStrategy,
)
from headwater.core.testing import FileAppendSink, FileTwoPhaseSink


def record(index: int, rng: random.Random) -> dict[str, int]:
    return {"id": index, "value": rng.randrange(1_000_000)}


async def lookup(r: dict[str, int]) -> dict[str, int]:
    await asyncio.sleep(0.002)
    return r


class CountIds(AggregateFunction[dict[str, int], list[int], list[int]]):
    """[count, sum of ids]; the accumulator is mutated in place on purpose."""

    def create_accumulator(self) -> list[int]:
        return [0, 0]

    def add(self, value: dict[str, int], accumulator: list[int]) -> list[int]:
        accumulator[0] += 1
        accumulator[1] += value["id"]
        return accumulator

    def get_result(self, accumulator: list[int]) -> list[int]:
        return list(accumulator)


def main() -> None:
    output, checkpoints, count, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    rocksdb = mode == "rocksdb"
    env = StreamEnvironment(
        parallelism=2,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=100),
            storage=Path(checkpoints),
            restore_from="latest",
            incremental=rocksdb,
            incremental_full_every=4,
        ),
        state_backend=StateBackend.rocksdb(Path(checkpoints) / "rocksdb") if rocksdb else None,
    )
    sink = FileTwoPhaseSink(output) if mode == "exactly_once" else FileAppendSink(output)
    if mode == "windows":
        watermarks = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
            lambda r, _t: r["id"]
        )
        (
            env.from_source(
                DataGenSource(record, count=count, rows_per_second=40_000, seed=7, num_splits=1),
                watermarks,
                name="gen",
            )
            .key_by(lambda r: r["value"] % 10)
            .window(TumblingEventTimeWindows.of(timedelta(seconds=1)))
            .aggregate(CountIds())
            .sink_to(FileTwoPhaseSink(output))
        )
        env.execute("kill-test-windows")
        return
    if rocksdb:
        (
            env.from_source(
                DataGenSource(record, count=count, rows_per_second=40_000, seed=7, num_splits=1),
                name="gen",
            )
            .map(lambda r: {"key": r["id"] % 1000, "n": 1, "sum": r["value"], "last": r["id"]})
            .key_by(lambda r: r["key"])
            .reduce(lambda a, b: {**b, "n": a["n"] + 1, "sum": a["sum"] + b["sum"]})
            .sink_to(FileTwoPhaseSink(output))
        )
        env.execute("kill-test-rocksdb")
        return
    stream = env.from_source(
        DataGenSource(record, count=count, rows_per_second=40_000, seed=7), name="gen"
    ).map(lambda r: {"id": r["id"], "value": r["value"] * 2})
    if mode == "async":
        stream = AsyncDataStream.unordered_wait(stream, lookup, timedelta(seconds=5), capacity=200)
    stream.rebalance().sink_to(sink)
    env.execute("kill-test")


if __name__ == "__main__":
    main()
