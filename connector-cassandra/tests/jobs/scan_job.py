"""A job for the source's process-kill test; every run resumes from the newest checkpoint.

Usage: python scan_job.py HOST PORT KEYSPACE CHECKPOINT_DIR OUT_DIR

A bounded read of ``rows`` (pages of 5 rows, so a scan spans many checkpoints and kills) -> ``[p, c]`` into an
exactly-once file sink: the files hold each row as many times as the source emitted it. The map
sleeps 0.6 ms a row, so the scan takes at least 30 s of uptime whatever the machine's load: the
test's five kills (at most 27.5 s of uptime) all land before it ends.
"""

import sys
import time
from datetime import timedelta
from pathlib import Path

from headwater.connectors.cassandra import (
    CassandraConnectionOptions,
    CassandraSource,
    CassandraSourceOptions,
)
from headwater.core import CheckpointConfig, StreamEnvironment
from headwater.core.testing import FileTwoPhaseSink


def _pair(row: dict[str, int]) -> list[int]:
    time.sleep(0.0006)
    return [row["p"], row["c"]]


def main() -> None:
    host, port, keyspace, checkpoints, out = sys.argv[1:6]
    env = StreamEnvironment(
        parallelism=2,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=200), storage=Path(checkpoints), restore_from="latest"
        ),
    )
    source = CassandraSource(
        CassandraSourceOptions(
            connection=CassandraConnectionOptions(
                contact_points=(host,), port=int(port), protocol_version=3
            ),
            keyspace=keyspace,
            table="rows",
            split_count=6,
            fetch_size=5,
        )
    )
    rows = env.from_source(source, name="scan").uid("scan")
    rows.map(_pair).uid("pairs").sink_to(FileTwoPhaseSink(out)).uid("files")
    env.execute("cassandra-scan-kill")


if __name__ == "__main__":
    main()
