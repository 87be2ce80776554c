"""A job for the Ctrl-C / SIGTERM tests: DataGen -> keyed running reduce -> exactly-once files.

Usage: python interrupt_job.py OUTPUT_DIR CHECKPOINT_DIR COUNT ROWS_PER_SECOND
The reduce keeps Decimals and datetimes in keyed state, so a savepoint carries real Python values.
"""

import random
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from headwater.core import CheckpointConfig, DataGenSource, StreamEnvironment
from headwater.core.testing import FileTwoPhaseSink

START = datetime(2026, 1, 1, tzinfo=UTC)


def record(index: int, rng: random.Random) -> dict[str, Any]:
    return {
        "id": index,
        "key": index % 7,
        "amount": Decimal(rng.randrange(1_000_000)) / 100,
        "at": START + timedelta(seconds=index),
    }


def combine(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {**b, "n": a["n"] + 1, "amount": a["amount"] + b["amount"], "at": max(a["at"], b["at"])}


def running_totals(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the job writes, computed directly: one running total per record, per key."""
    totals: dict[int, dict[str, Any]] = {}
    out = []
    for r in records:
        r = {**r, "n": 1}
        totals[r["key"]] = combine(totals[r["key"]], r) if r["key"] in totals else r
        out.append(as_json(totals[r["key"]]))
    return out


def as_json(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "amount": str(r["amount"]), "at": r["at"].isoformat()}


def main() -> None:
    output, checkpoints, count, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    env = StreamEnvironment(
        parallelism=2,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=100), storage=Path(checkpoints)
        ),
    )
    (
        env.from_source(
            DataGenSource(record, count=count, rows_per_second=rate, seed=11, num_splits=1),
            name="gen",
        )
        .uid("gen")
        .map(lambda r: {**r, "n": 1})
        .uid("tag")
        .key_by(lambda r: r["key"])
        .reduce(combine)
        .uid("totals")
        .map(as_json)
        .uid("json")
        .sink_to(FileTwoPhaseSink(output))
        .uid("files")
    )
    env.execute("interrupt-test")


if __name__ == "__main__":
    main()
