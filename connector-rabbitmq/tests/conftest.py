"""Fixtures of the RabbitMQ connector tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from headwater.connectors.testing.pytest_plugin import RunningService

from .rabbitmq_helpers import delete


@pytest.fixture
def rabbitmq_url(rabbitmq_service: RunningService) -> str:
    """The broker's ``amqp://`` URL (guest on the default virtual host)."""
    return rabbitmq_service.address


@pytest.fixture
def queues(rabbitmq_url: str, unique_name: str) -> Iterator[list[str]]:
    """Names for this test's queues (``unique_name_0``...); each queue used is deleted afterwards."""
    names = [f"{unique_name}_{i}" for i in range(4)]
    yield names
    delete(rabbitmq_url, *names)


@pytest.fixture
def jobs_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Job processes started by a test import ``conformance_jobs`` from ``tests/jobs``."""
    jobs = str(Path(__file__).parent / "jobs")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [jobs, os.environ.get("PYTHONPATH")]))
    )
