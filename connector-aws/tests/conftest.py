"""Fixtures of the AWS connector tests: Kinesis streams deleted after each test, the EFO hook."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from headwater.connectors.testing.pytest_plugin import RunningService

sys.path.insert(0, str(Path(__file__).parent))

import efo_hook
from aws_helpers import client, create_stream

# Before any botocore session exists: the sources build their clients from a cached session.
efo_hook.install()


@pytest.fixture
def kinesis_client(kinesis_service: RunningService) -> Any:
    """A plain boto3 Kinesis client of the emulator."""
    return client(kinesis_service, "kinesis")


@pytest.fixture
def new_stream(kinesis_client: Any, unique_name: str) -> Iterator[Callable[[int], str]]:
    """``new_stream(shards)`` creates a stream and returns its ARN; it is deleted after the test.

    kinesis-mock limits the shards of an account, so streams must not outlive their test.
    """
    created: list[str] = []

    def factory(shards: int) -> str:
        name = f"{unique_name}_{len(created)}"
        created.append(name)
        return create_stream(kinesis_client, name, shards)

    yield factory
    for name in created:
        kinesis_client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
