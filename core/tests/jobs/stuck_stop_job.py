"""A job whose stop cannot finish: its sink's commits never end, so a savepoint never completes.

Usage: python stuck_stop_job.py CHECKPOINT_DIR
For the test of the second Ctrl-C, which must end the process at once.
"""

import sys
from datetime import timedelta
from pathlib import Path

from headwater.core import CheckpointConfig, DataGenSource, StreamEnvironment
from headwater.core.testing import SlowCommitSink


def main() -> None:
    env = StreamEnvironment(
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=100), storage=Path(sys.argv[1])
        )
    )
    env.from_source(DataGenSource(lambda i, _rng: i, rows_per_second=1000)).sink_to(
        SlowCommitSink(delay=3600)
    )
    env.execute("stuck-stop")


if __name__ == "__main__":
    main()
