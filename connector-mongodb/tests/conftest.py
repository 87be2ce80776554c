"""Fixtures of the MongoDB tests: a fresh database per test on the session's mongod."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from headwater.connectors.testing.pytest_plugin import RunningService
from pymongo import MongoClient

JOBS = Path(__file__).parent / "jobs"


@pytest.fixture
def mongo(mongodb_service: RunningService, unique_name: str) -> Iterator[MongoClient]:
    """A synchronous client for checking results; the test's database is dropped after."""
    client: MongoClient = MongoClient(mongodb_service.address, tz_aware=True)
    try:
        yield client
    finally:
        client.drop_database(unique_name)
        client.close()


@pytest.fixture
def jobs_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kill tests' job processes import ``mongo_jobs`` from ``tests/jobs``."""
    path = os.pathsep.join(filter(None, [str(JOBS), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
