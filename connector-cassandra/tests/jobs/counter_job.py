"""A job for the process-kill tests of the sink; every run resumes from the newest checkpoint.

Usage: python counter_job.py HOST PORT KEYSPACE CHECKPOINT_DIR COUNT {exactly_once,at_least_once}

DataGen ``[0, COUNT)`` -> ``UPDATE hits SET n = n + 1 WHERE k = index % KEYS``: a counter, so
every repeated write shows as a count above ``COUNT / KEYS`` and every lost one below it.
"""

import sys
from datetime import timedelta
from pathlib import Path

from headwater.connectors.cassandra import (
    CassandraConnectionOptions,
    CassandraSink,
    CassandraSinkOptions,
)
from headwater.core import CheckpointConfig, DataGenSource, DeliveryGuarantee, StreamEnvironment

KEYS = 100


def record(index: int, _rng: object) -> dict[str, int]:
    return {"k": index % KEYS}


def main() -> None:
    host, port, keyspace, checkpoints, count, mode = sys.argv[1:7]
    env = StreamEnvironment(
        parallelism=2,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=200), storage=Path(checkpoints), restore_from="latest"
        ),
    )
    # 45,000 records at 600/s need 75 s of uptime: more than the 10 kills' 70 s at most, so
    # every kill lands however fast the machine is (at 1,500/s an idle machine finished first).
    source = DataGenSource(record, count=int(count), rows_per_second=600, num_splits=2)
    sink = CassandraSink(
        CassandraSinkOptions(
            connection=CassandraConnectionOptions(
                contact_points=(host,), port=int(port), protocol_version=3
            ),
            keyspace=keyspace,
            cql=f"UPDATE {keyspace}.hits SET n = n + 1 WHERE k = :k",
            delivery_guarantee=DeliveryGuarantee(mode),
        )
    )
    env.from_source(source, name="gen").uid("gen").sink_to(sink).uid("sink")
    env.execute(f"cassandra-kill-{mode}")


if __name__ == "__main__":
    main()
