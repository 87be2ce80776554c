"""A job for the process-kill tests; every run resumes from the newest checkpoint.

Usage: python kill_job.py URL TABLE CHECKPOINT_DIR COUNT {upsert,exactly_once}

- ``upsert``: DataGen -> key_by -> reduce(sum) -> JDBC upsert on the key (at-least-once).
- ``exactly_once``: DataGen -> JDBC plain insert, exactly-once (staging table + commit log).
"""

import random
import sys
from datetime import timedelta
from pathlib import Path

from headwater.connectors.jdbc import JdbcSink, JdbcSinkOptions
from headwater.core import CheckpointConfig, DataGenSource, DeliveryGuarantee, StreamEnvironment

KEYS = 50


def record(index: int, rng: random.Random) -> dict[str, int]:
    return {"id": index, "k": index % KEYS, "v": rng.randrange(1000)}


def main() -> None:
    url, table, checkpoints, count, mode = sys.argv[1:6]
    env = StreamEnvironment(
        parallelism=2,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=150), storage=Path(checkpoints), restore_from="latest"
        ),
    )
    source = DataGenSource(record, count=int(count), rows_per_second=15_000, seed=3)
    stream = env.from_source(source, name="gen").uid("gen")
    if mode == "upsert":
        sums = (
            stream.map(lambda r: {"k": r["k"], "v": r["v"]})
            .key_by(lambda r: r["k"])
            .reduce(lambda a, b: {"k": a["k"], "v": a["v"] + b["v"]})
            .uid("sum")
        )
        options = JdbcSinkOptions(url=url, table=table, key_columns=("k",), batch_size=500)
        sums.sink_to(JdbcSink(options)).uid("sink")
    else:
        options = JdbcSinkOptions(
            url=url,
            table=table,
            columns=("id", "v"),
            batch_size=500,
            delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE,
        )
        stream.rebalance().sink_to(JdbcSink(options)).uid("sink")
    env.execute(f"jdbc-kill-{mode}")


if __name__ == "__main__":
    main()
