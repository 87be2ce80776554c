"""OpenSearchSource on both servers: resume inside a slice, an expired point in time, queries."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from headwater.connectors.opensearch import OpenSearchSource, OpenSearchSourceOptions
from headwater.connectors.opensearch._client import close_point_in_time, create_client
from headwater.core import CheckpointConfig, CollectSink, StreamEnvironment
from headwater.core.savepoints import read_checkpoint
from os_helpers import Server

COUNT = 3000


def _documents(count: int) -> list[dict[str, Any]]:
    start = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    return [
        {
            "n": n,
            "at": (start + dt.timedelta(minutes=n)).isoformat(),
            "price": f"{n / 8:.3f}",
            "tags": ["even" if n % 2 == 0 else "odd", f"m{n % 7}"],
        }
        for n in range(count)
    ]


def _slow(document: dict[str, Any]) -> dict[str, Any]:
    time.sleep(0.001)  # the read must still be going when the savepoint is taken
    return document


def _source(server: Server, index: str, **options: Any) -> OpenSearchSource[Any]:
    settings: dict[str, Any] = {"slices": 2, "fetch_size": 50, **options}
    return OpenSearchSource(
        OpenSearchSourceOptions(client=server.options(), index=index, **settings)
    )


async def _run(
    source: OpenSearchSource[Any],
    sink: CollectSink[Any],
    *,
    restore: str | None = None,
    savepoint: Path | None = None,
) -> Path | None:
    env = StreamEnvironment(
        parallelism=2,
        checkpointing=CheckpointConfig(interval=timedelta(milliseconds=100), restore_from=restore),
    )
    env.from_source(source).uid("source").map(_slow).uid("slow").sink_to(sink).uid("sink")
    client = await env.execute_async("opensearch source test")
    if savepoint is None:
        await client.wait()
        return None
    await asyncio.sleep(1.0)
    return await client.stop_with_savepoint(savepoint)


def _stop_midway(
    server: Server, index: str, sink: CollectSink[Any], tmp_path: Path, **options: Any
) -> Path:
    path = asyncio.run(_run(_source(server, index, **options), sink, savepoint=tmp_path / "sp"))
    assert path is not None
    first = len(sink.results())
    assert 0 < first < COUNT, f"the savepoint must fall inside the read, got {first} of {COUNT}"
    return path


def test_a_restored_job_resumes_inside_its_slices(
    server: Server, unique_name: str, tmp_path: Path
) -> None:
    documents = _documents(COUNT)
    server.write(unique_name, documents)
    sink: CollectSink[Any] = CollectSink()
    savepoint = _stop_midway(server, unique_name, sink, tmp_path)
    asyncio.run(_run(_source(server, unique_name), sink, restore=str(savepoint)))
    got = sink.results()
    repeated = [n for n, c in Counter(d["n"] for d in got).items() if c > 1]
    assert not repeated, f"read twice across the savepoint: {repeated[:20]}"
    assert sorted(got, key=lambda d: d["n"]) == documents


def _expire_point_in_time(server: Server, savepoint: Path) -> None:
    """Delete the point in time the savepoint's splits name, as the end of keep_alive would."""
    pit_ids = {
        json.loads(base64.b64decode(split["b64"]))[3]
        for state in read_checkpoint(savepoint).operator_state("source")
        for split in state["splits"]
    }
    assert len(pit_ids) == 1

    async def close() -> None:
        client = create_client(server.options())
        try:
            for pit_id in pit_ids:
                await close_point_in_time(client, server.flavor, pit_id)
        finally:
            await client.close()

    asyncio.run(close())


def test_an_expired_point_in_time_is_reopened_when_the_sort_is_unique(
    server: Server, unique_name: str, tmp_path: Path
) -> None:
    documents = _documents(COUNT)
    server.write(unique_name, documents)
    sink: CollectSink[Any] = CollectSink()
    by_n = {"sort": ({"n": "asc"},)}
    savepoint = _stop_midway(server, unique_name, sink, tmp_path, **by_n)
    _expire_point_in_time(server, savepoint)
    asyncio.run(_run(_source(server, unique_name, **by_n), sink, restore=str(savepoint)))
    assert sorted(sink.results(), key=lambda d: d["n"]) == documents


def test_an_expired_point_in_time_fails_clearly_with_shard_doc_positions(
    server: Server, unique_name: str, tmp_path: Path
) -> None:
    server.write(unique_name, _documents(COUNT))
    sink: CollectSink[Any] = CollectSink()
    savepoint = _stop_midway(server, unique_name, sink, tmp_path)
    _expire_point_in_time(server, savepoint)
    with pytest.raises(Exception, match=r"point in time expired.*keep_alive"):
        asyncio.run(_run(_source(server, unique_name), sink, restore=str(savepoint)))


def test_query_and_metadata(server: Server, unique_name: str) -> None:
    documents = _documents(500)
    server.write(unique_name, documents)
    source = _source(
        server,
        unique_name,
        query={"range": {"n": {"gte": 100, "lt": 200}}},
        with_metadata=True,
        slices=3,
    )
    got = StreamEnvironment(parallelism=2).from_source(source).execute_and_collect()
    assert sorted(got, key=lambda d: d["_source"]["n"]) == [
        {"_index": unique_name, "_id": str(d["n"]), "_source": d} for d in documents[100:200]
    ]


def test_a_missing_index_fails_naming_it(server: Server, unique_name: str) -> None:
    with pytest.raises(Exception, match=f"opensearch: opening a point in time on '{unique_name}'"):
        StreamEnvironment(parallelism=1).from_source(
            _source(server, unique_name)
        ).execute_and_collect()
