"""The garbage-collector policy applied while jobs run (``ExecutionConfig.gc_threshold/gc_freeze``)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
from headwater.core import ConfigurationError, DiscardingSink, ExecutionConfig, StreamEnvironment


@pytest.fixture(autouse=True)
def default_collector() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def _observing_job(execution: ExecutionConfig, seen: list[tuple[tuple[int, int, int], int]]):
    env = StreamEnvironment(parallelism=1, execution=execution)

    def observe(x: int) -> int:
        seen.append((gc.get_threshold(), gc.get_freeze_count()))
        return x

    env.from_collection(list(range(3))).map(observe).sink_to(DiscardingSink())
    return env


def test_a_job_runs_with_the_policy_and_restores_the_collector() -> None:
    seen: list[tuple[tuple[int, int, int], int]] = []
    _observing_job(ExecutionConfig(gc_threshold=12_345), seen).execute("gc")
    assert seen and all(threshold == (12_345, 10, 10) for threshold, _ in seen)
    assert all(frozen > 0 for _, frozen in seen)  # set-up objects were frozen
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_the_policy_can_be_switched_off() -> None:
    seen: list[tuple[tuple[int, int, int], int]] = []
    _observing_job(ExecutionConfig(gc_threshold=None, gc_freeze=False), seen).execute("gc")
    assert seen and all(s == ((700, 10, 10), 0) for s in seen)


async def test_concurrent_jobs_share_the_policy_until_the_last_ends() -> None:
    seen: list[tuple[tuple[int, int, int], int]] = []
    clients = [
        await _observing_job(ExecutionConfig(gc_threshold=20_000), seen).execute_async(name)
        for name in ("a", "b")
    ]
    await asyncio.gather(*(client.wait() for client in clients))
    assert len(seen) == 6 and all(threshold == (20_000, 10, 10) for threshold, _ in seen)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_a_threshold_below_one_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="gc_threshold"):
        ExecutionConfig(gc_threshold=0)
