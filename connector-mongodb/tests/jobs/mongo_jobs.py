"""Jobs of the MongoDB kill tests (run by connector-testing's jobrunner; tests put this directory
on ``PYTHONPATH``)."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from headwater.connectors.mongodb import (
    MongoSink,
    MongoSinkOptions,
    MongoSourceOptions,
)
from headwater.core import (
    CheckpointConfig,
    DataGenSource,
    DeliveryGuarantee,
    ExponentialBackoffRestart,
    StreamEnvironment,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mongo_helpers import ThrottledMongoSource


def _env(checkpoint_dir: Path, parallelism: int) -> StreamEnvironment:
    return StreamEnvironment(
        parallelism=parallelism,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=200),
            timeout=timedelta(seconds=30),
            storage=checkpoint_dir,
            restore_from="latest",
        ),
        restart_strategy=ExponentialBackoffRestart(initial=timedelta(milliseconds=100), attempts=3),
    )


def as_document(n: int) -> dict[str, Any]:
    """The document of integer ``n`` (keyed by it)."""
    return {"_id": n, "n": n}


def as_insert(n: int) -> dict[str, Any]:
    """The document of integer ``n`` for an insert-only collection (server-made ``_id``)."""
    return {"n": n}


def mongo_sink_job(
    *,
    checkpoint_dir: Path,
    parallelism: int,
    count: str,
    rate: str,
    uri: str,
    database: str,
    collection: str,
    guarantee: str,
    mode: str = "upsert",
) -> StreamEnvironment:
    """``[0, count)`` at ``rate`` records/s into ``collection`` (``mode``: upsert or insert)."""
    env = _env(checkpoint_dir, parallelism)
    options = MongoSinkOptions(
        uri=uri,
        database=database,
        collection=collection,
        delivery_guarantee=DeliveryGuarantee(guarantee),
        write_mode="insert" if mode == "insert" else "upsert",
        max_time_in_buffer=timedelta(milliseconds=100),
    )
    source = DataGenSource(lambda i, _rng: i, count=int(count), rows_per_second=float(rate))
    to_document = as_insert if mode == "insert" else as_document
    env.from_source(source).sink_to(MongoSink(options, to_document=to_document))
    return env


def changelog_job(
    *,
    checkpoint_dir: Path,
    parallelism: int,
    uri: str,
    database: str,
    collection: str,
    target: str,
    rate: str,
) -> StreamEnvironment:
    """``startup_mode=initial`` changelog of ``collection`` into ``target`` (insert-only log)."""
    env = _env(checkpoint_dir, parallelism)
    source = ThrottledMongoSource(
        MongoSourceOptions(
            uri=uri, database=database, collection=collection, startup_mode="initial",
            output="change_event", partition_strategy="pagination", partition_records=300,
            fetch_size=100,
        ),
        rate=float(rate),
    )  # fmt: skip
    log = MongoSinkOptions(
        uri=uri, database=database, collection=target, write_mode="insert",
        delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE,
    )  # fmt: skip
    env.from_source(source).sink_to(MongoSink(log, to_document=_log_entry))
    return env


def _log_entry(event: Any) -> dict[str, Any]:
    return {
        "op": event.operation,
        "key": event.key["_id"],
        "doc": event.full_document,
        "t": event.cluster_time,
    }
