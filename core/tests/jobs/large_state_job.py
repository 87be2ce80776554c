"""A keyed reduce on RocksDB whose state is larger than the memory its process may use.

Usage: python large_state_job.py PHASE WORK_DIR KEYS PAYLOAD_BYTES DATA_LIMIT_MB
PHASE ``fill`` runs until every key has state, then stops with a savepoint in WORK_DIR/savepoint;
``restore`` restores from it and runs to the end of the input. Each writes its output
(``key total crc32-of-payload`` per record) to WORK_DIR/out-PHASE.txt. The process's data segment
(heap and private mappings: RLIMIT_DATA) is capped at DATA_LIMIT_MB first, so the job fails with a
MemoryError if a snapshot or a restore holds the state in memory.
"""

import asyncio
import hashlib
import resource
import sys
import zlib
from pathlib import Path
from typing import Any

from headwater.core import (
    CheckpointConfig,
    DataGenSource,
    Sink,
    SinkWriter,
    StateBackend,
    StreamEnvironment,
)

ROUNDS = 2
"""Every key gets this many records."""


def payload(index: int, size: int) -> bytes:
    """The record's payload: ``size`` bytes derived from its index."""
    block = hashlib.blake2b(index.to_bytes(8, "big")).digest()  # 64 bytes
    return (block * (size // 64 + 1))[:size]


class LinesSink(Sink[Any]):
    """Appends ``key total crc`` lines to a file; counts records in ``seen``."""

    seen = 0

    def __init__(self, path: Path) -> None:
        self.path = path

    def create_writer(self, context: Any) -> SinkWriter[Any]:
        path = self.path

        class Writer(SinkWriter[Any]):
            async def write_batch(self, batch: Any) -> None:
                with open(path, "a") as f:
                    f.writelines(f"{k} {total} {zlib.crc32(data)}\n" for k, total, data in batch)
                LinesSink.seen += len(batch)

        return Writer()


def build(env: StreamEnvironment, keys: int, sink: LinesSink) -> None:
    size = int(sys.argv[4])
    source = DataGenSource(
        lambda i, _rng: (i % keys, i, payload(i, size)), count=keys * ROUNDS, batch_size=200
    )
    (
        env.from_source(source)
        .uid("gen")
        .key_by(lambda r: r[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1], b[2]))
        .uid("reduce")
        .sink_to(sink)
        .uid("lines")
    )


async def fill(work: Path, keys: int) -> None:
    env = StreamEnvironment(parallelism=1, state_backend=StateBackend.rocksdb(work / "rocks-fill"))
    build(env, keys, LinesSink(work / "out-fill.txt"))
    client = await env.execute_async("large-state-fill")
    while LinesSink.seen < keys:
        await asyncio.sleep(0.05)
    await client.stop_with_savepoint(work / "savepoint")


def restore(work: Path, keys: int) -> None:
    env = StreamEnvironment(
        parallelism=1,
        state_backend=StateBackend.rocksdb(work / "rocks-restore"),
        # The job's final checkpoint goes to files too (without storage it is kept in memory).
        checkpointing=CheckpointConfig(
            storage=work / "checkpoints", restore_from=str(work / "savepoint")
        ),
    )
    build(env, keys, LinesSink(work / "out-restore.txt"))
    env.execute("large-state-restore")


def main() -> None:
    phase, work, keys, limit_mb = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[5]
    limit = int(limit_mb) << 20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    if phase == "fill":
        asyncio.run(fill(work, keys))
    else:
        restore(work, keys)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
