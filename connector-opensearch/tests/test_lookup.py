"""OpenSearchLookup on both servers, inside the core's async I/O operator."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from headwater.connectors.opensearch import OpenSearchLookup, OpenSearchLookupOptions
from headwater.core import AsyncDataStream, FatalError, StreamEnvironment
from os_helpers import Server


def _users(count: int) -> list[dict[str, Any]]:
    return [{"n": n, "name": f"user {n}", "team": f"t{n % 4}"} for n in range(count)]


def test_id_lookups_enrich_every_record_with_few_requests(server: Server, unique_name: str) -> None:
    users = _users(300)
    server.write(unique_name, users)
    lookup = OpenSearchLookup(OpenSearchLookupOptions(client=server.options(), index=unique_name))
    orders = [{"order": i, "user": (i * 7) % 350} for i in range(1000)]  # ids >= 300 are missing

    async def enrich(order: dict[str, Any]) -> dict[str, Any]:
        found = await lookup.lookup(order["user"])
        return {**order, "name": found[0]["name"] if found else None}

    env = StreamEnvironment(parallelism=1)
    stream = env.from_collection(orders)
    got = AsyncDataStream.unordered_wait(
        stream, enrich, timeout=timedelta(seconds=10), capacity=100
    ).execute_and_collect()
    assert sorted(got, key=lambda o: o["order"]) == [
        {**o, "name": f"user {o['user']}" if o["user"] < 300 else None} for o in orders
    ]
    assert lookup.requests < len(orders) / 5, "id lookups in flight together share one mget"


def test_term_lookups_and_the_cache(server: Server, unique_name: str) -> None:
    server.write(unique_name, _users(40))
    options = OpenSearchLookupOptions(
        client=server.options(), index=unique_name, field="team", max_hits=100, cache_size=2
    )

    async def run() -> tuple[list[Any], list[Any], int, int]:
        lookup = OpenSearchLookup(options)
        try:
            first = await lookup.lookup("t1")
            again = await lookup.lookup("t1")
            return first, again, lookup.requests, lookup.hits
        finally:
            await lookup.aclose()

    first, again, requests, hits = asyncio.run(run())
    expected = [u for u in _users(40) if u["team"] == "t1"]
    assert sorted(first, key=lambda u: u["n"]) == expected
    assert again is first and (requests, hits) == (1, 1)


def test_a_missing_index_fails_naming_it(server: Server, unique_name: str) -> None:
    lookup = OpenSearchLookup(OpenSearchLookupOptions(client=server.options(), index=unique_name))

    async def run() -> None:
        try:
            await lookup.lookup("1")
        finally:
            await lookup.aclose()

    with pytest.raises(
        FatalError, match=f"getting id '1' from '{unique_name}' failed: index_not_found"
    ):
        asyncio.run(run())
