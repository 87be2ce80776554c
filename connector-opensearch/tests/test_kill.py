"""Process kills (SIGKILL) of a DataGen -> OpenSearchSink job with 200 ms checkpoints, record by record.

Each run lives 4-7 s from its process start: under load the imports alone take seconds, and a
run killed before it wrote anything would prove nothing (the server-id index shows it did).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from headwater.connectors.testing import run_with_kills
from headwater.connectors.testing.pytest_plugin import RunningService
from os_helpers import Server
from os_jobs import KEYS

COUNT = 40_000
KILLS = 10


@pytest.mark.slow
def test_kills_with_ids_leave_each_id_once_with_its_latest_value(
    opensearch_service: RunningService, unique_name: str, tmp_path: Path, jobs_on_path: None
) -> None:
    # One kill series (OpenSearch): the Elasticsearch flavor shares the sink and passes the
    # conformance suite's kill tests.
    server = Server("opensearch", opensearch_service.address)
    report = run_with_kills(
        "os_jobs:opensearch_job",
        checkpoint_dir=tmp_path / "checkpoints",
        parallelism=2,
        params={
            "count": str(COUNT),
            "rate": "1000",
            "url": server.url,
            "flavor": server.flavor.value,
            "index": unique_name,
            "mode": "kill",
        },
        kills=KILLS,
        min_uptime=4.0,
        max_uptime=7.0,
        timeout=180.0,
        seed=5,
    )
    report.check(KILLS)

    # The check can see duplicates: with server-generated ids the replays after the kills added
    # copies; and nothing is lost (at-least-once).
    counts = Counter(hit["_source"]["n"] for hit in server.documents(f"{unique_name}_server_ids"))
    assert set(counts) == set(range(COUNT)), "lost records"
    assert sum(counts.values()) > COUNT, "no duplicate after the kills: the test would miss one"

    # With ids and external versions the index holds each id once, at its latest record.
    latest = {n % KEYS: n for n in range(COUNT)}
    hits = server.documents(unique_name)
    assert {hit["_id"]: (hit["_source"]["n"], hit["_version"]) for hit in hits} == {
        str(key): (n, n) for key, n in latest.items()
    }
