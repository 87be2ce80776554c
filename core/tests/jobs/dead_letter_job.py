"""A bounded job for the dead-letter tests: a source whose every 5th record is also a dead letter.

Usage: python dead_letter_job.py OUTPUT_DIR CHECKPOINT_DIR COUNT
The records go to OUTPUT_DIR/main and the source's dead letters to OUTPUT_DIR/letters, both
exactly-once JSON-lines sinks; every run resumes from the newest checkpoint in CHECKPOINT_DIR.
"""

import random
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from headwater.core import CheckpointConfig, DataGenSource, StreamEnvironment, emit_dead_letter
from headwater.core.testing import FileTwoPhaseSink


def record(index: int, rng: random.Random) -> dict[str, int]:
    return {"id": index, "value": rng.randrange(1_000_000)}


class ReportingSource(DataGenSource[dict[str, int]]):
    """DataGen that also reports every 5th record it emits as a dead letter, while it polls (as a
    format's error policy does); the generator itself stays pure (a restore replays it)."""

    def _producer(self) -> Callable[[int, int], list[dict[str, int]]]:
        produce = super()._producer()

        def reporting(start: int, stop: int) -> list[dict[str, int]]:
            chunk = produce(start, stop)
            for r in chunk:
                if r["id"] % 5 == 0:
                    emit_dead_letter({"position": r["id"], "payload": r["value"]})
            return chunk

        return reporting


def main() -> None:
    output, checkpoints, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    env = StreamEnvironment(
        parallelism=2,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=100), storage=Path(checkpoints), restore_from="latest"
        ),
    )
    stream = env.from_source(
        ReportingSource(record, count=count, rows_per_second=4_000, seed=3), name="gen"
    ).uid("gen")
    stream.sink_to(FileTwoPhaseSink(output / "main")).uid("main")
    stream.dead_letters().sink_to(FileTwoPhaseSink(output / "letters")).uid("letters")
    env.execute("dead-letters")


if __name__ == "__main__":
    main()
