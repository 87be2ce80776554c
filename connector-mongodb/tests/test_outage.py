"""mongod unreachable for 10 s mid-job (a TCP proxy refusing connections): the jobs recover by
themselves and the output equals the input, record by record."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from headwater.connectors.mongodb import (
    MongoChangeEvent,
    MongoSink,
    MongoSinkOptions,
    MongoSource,
    MongoSourceOptions,
)
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import (
    CheckpointConfig,
    CollectSink,
    DataGenSource,
    DeliveryGuarantee,
    ExponentialBackoffRestart,
    StreamEnvironment,
)
from pymongo import MongoClient

OUTAGE = 10.0


def _through(proxy: Any) -> str:
    """A URI reaching mongod only through ``proxy`` (a direct connection: no discovery)."""
    return f"mongodb://{proxy.address}/?directConnection=true&serverSelectionTimeoutMS=3000"


def _environment() -> StreamEnvironment:
    return StreamEnvironment(
        parallelism=2,
        checkpointing=CheckpointConfig(interval=timedelta(milliseconds=200)),
        restart_strategy=ExponentialBackoffRestart(
            initial=timedelta(milliseconds=200), maximum=timedelta(seconds=2), attempts=100
        ),
    )


def _with_outage(proxy: Any, after: float) -> threading.Thread:
    def outage() -> None:
        time.sleep(after)
        proxy.refuse()
        time.sleep(OUTAGE)
        proxy.restore()

    thread = threading.Thread(target=outage, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_exactly_once_sink_survives_an_outage(
    mongodb_service: RunningService,
    mongo: MongoClient,
    unique_name: str,
    tcp_proxy_factory: Callable[[str, int], Any],
) -> None:
    proxy = tcp_proxy_factory(mongodb_service.host, mongodb_service.port)
    count = 20_000
    options = MongoSinkOptions(
        uri=_through(proxy), database=unique_name, collection="out", write_mode="insert",
        delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE,
    )  # fmt: skip
    env = _environment()
    source = DataGenSource(lambda i, _rng: {"n": i}, count=count, rows_per_second=1000)
    env.from_source(source).sink_to(MongoSink(options))
    outage = _with_outage(proxy, after=4.0)
    env.execute("sink outage")
    outage.join()
    got = Counter(d["n"] for d in mongo[unique_name]["out"].find())
    assert not [n for n, c in got.items() if c > 1], "written twice"
    assert set(got) == set(range(count)), f"missing {sorted(set(range(count)) - set(got))[:10]}"


@pytest.mark.slow
def test_change_stream_survives_an_outage(
    mongodb_service: RunningService,
    mongo: MongoClient,
    unique_name: str,
    tcp_proxy_factory: Callable[[str, int], Any],
) -> None:
    proxy = tcp_proxy_factory(mongodb_service.host, mongodb_service.port)
    collection = mongo[unique_name]["docs"]
    options = MongoSourceOptions(
        uri=_through(proxy), database=unique_name, collection="docs", startup_mode="latest",
        output="change_event",
    )  # fmt: skip
    sink: CollectSink[MongoChangeEvent] = CollectSink()
    total = 3000

    def write() -> None:
        for i in range(total):
            collection.insert_one({"_id": i})
            time.sleep(0.004)

    async def run() -> None:
        env = _environment()
        env.from_source(MongoSource(options)).sink_to(sink)
        client = await env.execute_async("stream outage")
        await asyncio.sleep(1.5)
        writer = threading.Thread(target=write)
        writer.start()
        outage = _with_outage(proxy, after=2.0)
        deadline = time.monotonic() + 120
        while len({e.key["_id"] for e in sink.results()}) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        writer.join()
        outage.join()
        await client.cancel()

    asyncio.run(run())
    keys = Counter(e.key["_id"] for e in sink.results())
    assert not [k for k, n in keys.items() if n > 1], "events read twice"
    assert set(keys) == set(range(total))
