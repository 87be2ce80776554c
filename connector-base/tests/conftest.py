from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from headwater.core import MetricGroup
from headwater.core._metrics import MetricRegistry


class FakeContext:
    """A WriterInitContext / SourceReaderContext test double."""

    def __init__(self, subtask_index: int = 0, parallelism: int = 1) -> None:
        self.subtask_index = subtask_index
        self.parallelism = parallelism
        self.attempt = 0
        self.restored_checkpoint_id = None
        self.metric_group: MetricGroup = MetricRegistry().group({"operator": "test"})
        self.split_requests = 0
        self.events: list[Any] = []

    def send_split_request(self) -> None:
        self.split_requests += 1

    def send_source_event(self, event: Any, /) -> None:
        self.events.append(event)

    def run_blocking(self, fn: Callable[..., Any], /, *args: Any) -> Awaitable[Any]:
        import asyncio

        return asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def metrics(self) -> dict[str, Any]:
        return self.metric_group.snapshot()


@pytest.fixture
def make_context() -> Callable[..., FakeContext]:
    """Build FakeContext instances (tests run with importlib mode, so conftest is not importable)."""
    return FakeContext
