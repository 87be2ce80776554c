"""A job for the progress and summary tests: DataGen -> double -> thirds -> exactly-once files.

Usage: python progress_job.py OUTPUT_DIR CHECKPOINT_DIR COUNT ROWS_PER_SECOND
"""

import random
import sys
from pathlib import Path

from headwater.core import CheckpointConfig, DataGenSource, StreamEnvironment
from headwater.core.testing import FileTwoPhaseSink


def number(index: int, rng: random.Random) -> int:
    return index


def double(x: int) -> int:
    return x * 2


def third(x: int) -> bool:
    return x % 3 == 0


def main() -> None:
    output, checkpoints, count, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    env = StreamEnvironment(
        parallelism=2,
        checkpointing=CheckpointConfig(interval="200ms", storage=Path(checkpoints)),
    )
    (
        env.from_source(DataGenSource(number, count=count, rows_per_second=rate), name="numbers")
        .map(double, name="double")
        .filter(third, name="thirds")
        .sink_to(FileTwoPhaseSink(output), name="files")
    )
    env.execute("progress-test")


if __name__ == "__main__":
    main()
