"""OpenSearchSink throughput vs opensearch-py's ``helpers.async_bulk`` (same run, same server).

The server is HEADWATER_OPENSEARCH_URL if set, else osmem-server started through tools/services.
100,000 small documents (``{"n", "name", "value"}``, id ``n``), bulk requests of ``CHUNK`` actions,
``CONCURRENCY`` requests in flight on both sides:

Clean runs go raw, sink, sink, raw (the load of a shared machine drifts); each side's rate is
the mean of its two runs.

- raw_rps: ``CONCURRENCY`` concurrent ``helpers.async_bulk`` calls (chunk_size ``CHUNK``) over
  equal shares of the documents, on one ``AsyncOpenSearch`` client;
- sink_rps: a bounded job (parallelism 1) into OpenSearchSink with ``max_batch_size=CHUNK`` and
  ``max_in_flight_requests=CONCURRENCY``, timed from submission to the end (start-up included);
- sink_faulty_rps: the same job through the fault proxy failing 5% of the bulk items with 429
  (each item fails at most once, and is retried alone);
- raw_proxied_rps: the raw run through the same proxy with no failures: what the proxy alone
  costs (it is a Python HTTP relay).

``ratio`` = sink / raw, ``ratio_faulty`` = sink_faulty / raw (the clean, direct raw run), and
``ratio_faulty_same_proxy`` = sink_faulty / raw_proxied (both sides pay the proxy's relay, which
on a loaded machine costs more than the retries). Every run's index is counted afterwards: each
must hold every document.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from headwater.connectors.opensearch import (
    OpenSearchClientOptions,
    OpenSearchSink,
    OpenSearchSinkOptions,
)
from headwater.core import StreamEnvironment
from opensearchpy import AsyncOpenSearch, OpenSearch, helpers

ROOT = Path(__file__).resolve().parent.parent
COUNT = 100_000
CHUNK = 1000
CONCURRENCY = 4
FAILURE_RATE = 0.05


def _endpoint() -> tuple[str, Path | None]:
    configured = os.environ.get("HEADWATER_OPENSEARCH_URL")
    if configured:
        return configured, None
    state = Path(tempfile.mkdtemp(prefix="hw-bench-opensearch-"))
    services = [sys.executable, str(ROOT / "tools" / "services"), "--state", str(state)]
    subprocess.run([*services, "up", "--free-ports", "opensearch"], check=True, capture_output=True)
    env = subprocess.run(
        [*services, "env", "opensearch"], check=True, capture_output=True, text=True
    )
    values = dict(token.split("=", 1) for token in shlex.split(env.stdout))
    return values["HEADWATER_OPENSEARCH_URL"], state


def _stop(state: Path | None) -> None:
    if state is not None:
        services = [sys.executable, str(ROOT / "tools" / "services"), "--state", str(state)]
        subprocess.run([*services, "down", "--all"], check=False, capture_output=True)


def _documents() -> list[dict[str, Any]]:
    return [{"n": n, "name": f"document {n}", "value": n * 0.5} for n in range(COUNT)]


async def _raw(url: str, index: str, documents: list[dict[str, Any]]) -> float:
    client = AsyncOpenSearch(hosts=[url], timeout=120)
    share = -(-len(documents) // CONCURRENCY)
    parts = [documents[i : i + share] for i in range(0, len(documents), share)]

    async def load(part: list[dict[str, Any]]) -> int:
        actions = ({"_index": index, "_id": str(d["n"]), "_source": d} for d in part)
        done, errors = await helpers.async_bulk(client, actions, chunk_size=CHUNK, max_retries=0)
        assert not errors, errors
        return int(done)

    try:
        started = time.perf_counter()
        written = sum(await asyncio.gather(*map(load, parts)))
        elapsed = time.perf_counter() - started
    finally:
        await client.close()
    assert written == len(documents), written
    return len(documents) / elapsed


def _sink(url: str, index: str, documents: list[dict[str, Any]]) -> float:
    options = OpenSearchSinkOptions(
        client=OpenSearchClientOptions(hosts=(url,), request_timeout=timedelta(minutes=2)),
        index=index,
        id_fields=("n",),
        writer={"max_batch_size": CHUNK, "max_in_flight_requests": CONCURRENCY},
    )
    env = StreamEnvironment(parallelism=1)
    env.from_collection(documents).sink_to(OpenSearchSink(options))
    started = time.perf_counter()
    env.execute("bench: opensearch sink")
    return len(documents) / (time.perf_counter() - started)


def _count(client: OpenSearch, index: str) -> int:
    client.indices.refresh(index=index)
    return int(client.count(index=index)["count"])


def run() -> dict[str, Any]:
    """Measure the sink against raw ``async_bulk``, clean and with 5% of items throttled."""
    sys.path.insert(0, str(ROOT / "tools"))
    from servicekit.faults import FaultHttpProxy  # type: ignore[import-not-found]

    url, state = _endpoint()
    documents = _documents()
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    runs = ("raw1", "sink1", "sink2", "raw2", "faulty", "proxied")
    names = {k: f"{prefix}_{k}" for k in runs}
    check = OpenSearch(hosts=[url], timeout=120)
    try:
        # A-B-B-A: the machine's load drifts; each side is the mean rate of its two runs.
        raw1 = asyncio.run(_raw(url, names["raw1"], documents))
        sink1 = _sink(url, names["sink1"], documents)
        sink2 = _sink(url, names["sink2"], documents)
        raw2 = asyncio.run(_raw(url, names["raw2"], documents))
        raw_rps, sink_rps = (raw1 + raw2) / 2, (sink1 + sink2) / 2
        with FaultHttpProxy(url) as proxy:
            raw_proxied_rps = asyncio.run(_raw(proxy.url, names["proxied"], documents))
        with FaultHttpProxy(url, failure_rate=FAILURE_RATE, seed=1) as proxy:
            sink_faulty_rps = _sink(proxy.url, names["faulty"], documents)
            rejected = proxy.stats()["opensearch._bulk"].failed
        counts = {k: _count(check, name) for k, name in names.items()}
        assert counts == dict.fromkeys(names, COUNT), counts
    finally:
        for name in names.values():
            check.indices.delete(index=name, ignore_unavailable=True)
        check.close()
        _stop(state)
    return {
        "sink_rps": round(sink_rps, 1),
        "raw_rps": round(raw_rps, 1),
        "runs_rps": [round(r, 1) for r in (raw1, sink1, sink2, raw2)],
        "ratio": round(sink_rps / raw_rps, 2),
        "sink_faulty_rps": round(sink_faulty_rps, 1),
        "ratio_faulty": round(sink_faulty_rps / raw_rps, 2),
        "raw_proxied_rps": round(raw_proxied_rps, 1),
        "ratio_faulty_same_proxy": round(sink_faulty_rps / raw_proxied_rps, 2),
        "rejected_items": rejected,
        "documents": COUNT,
        "chunk": CHUNK,
        "concurrency": CONCURRENCY,
    }
