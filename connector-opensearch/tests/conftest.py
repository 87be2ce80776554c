"""Fixtures of the OpenSearch connector tests: one test server per flavor, a plain client.

Every test that takes ``server`` runs twice: against osmem-server (the OpenSearch 3 REST API) and
against noida-db's Elasticsearch 8 REST API, both started by ``tools/services``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from os_helpers import Server  # noqa: E402


@pytest.fixture(params=["opensearch", "elasticsearch"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """The test server of one flavor, with a plain (blocking) opensearch-py client."""
    service = request.getfixturevalue(f"{request.param}_service")
    found = Server(request.param, service.address)
    try:
        yield found
    finally:
        found.client.close()


@pytest.fixture
def jobs_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let job subprocesses (kill tests) import ``os_jobs`` from this directory."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    )
