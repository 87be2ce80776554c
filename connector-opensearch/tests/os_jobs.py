"""Jobs for the process-kill tests (run by ``headwater.connectors.testing.jobrunner``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from headwater.connectors.opensearch import (
    Flavor,
    OpenSearchClientOptions,
    OpenSearchSink,
    OpenSearchSinkOptions,
)
from headwater.core import (
    CheckpointConfig,
    DataGenSource,
    ExponentialBackoffRestart,
    StreamEnvironment,
)

KEYS = 500
"""Distinct ids of the ``versioned`` mode."""


def _record(index: int, _rng: Any) -> dict[str, int]:
    return {"n": index, "key": index % KEYS}


def _sink(url: str, flavor: str, index: str, **ids: Any) -> OpenSearchSink[dict[str, int]]:
    options = OpenSearchSinkOptions(
        client=OpenSearchClientOptions(hosts=(url,), flavor=Flavor(flavor)),
        index=index,
        writer={"max_batch_size": 200, "max_time_in_buffer": timedelta(milliseconds=100)},
        **ids,
    )
    return OpenSearchSink(options)


def opensearch_job(
    *,
    checkpoint_dir: Path,
    parallelism: int,
    count: str,
    rate: str,
    url: str,
    flavor: str,
    index: str,
    mode: str = "server_ids",
) -> StreamEnvironment:
    """``[0, count)`` at ``rate`` records/s as ``{"n": i, "key": i % 500}``.

    ``mode``: ``server_ids`` writes into ``index`` with ids the server generates (the
    conformance suite reads ``n`` back and sees every replayed record); ``kill`` writes each record twice: into ``index`` with id ``key`` and external
    version ``n`` (each id keeps its latest ``n``), and into ``index_server_ids`` with ids the
    server generates (each replay adds copies).
    """
    env = StreamEnvironment(
        parallelism=parallelism,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=200), storage=checkpoint_dir, restore_from="latest"
        ),
        restart_strategy=ExponentialBackoffRestart(initial=timedelta(milliseconds=100), attempts=3),
    )
    source = DataGenSource(_record, count=int(count), rows_per_second=float(rate))
    records = env.from_source(source).uid("numbers")
    if mode == "server_ids":
        records.sink_to(_sink(url, flavor, index)).uid("sink")
    else:
        records.sink_to(_sink(url, flavor, index, id_fields=("key",), version_field="n")).uid(
            "versioned"
        )
        records.sink_to(_sink(url, flavor, f"{index}_server_ids")).uid("server_ids")
    return env
