"""In-memory throughput: collection -> map(x*2) -> filter(even) -> counting sink, parallelism 1.

Measured against a plain-Python loop of chained callables (one call per operator per record) in the
same run. Prints {"headwater_rps", "headwater_ckpt_rps", "plain_python_rps", "ratio", "ratio_ckpt"}.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from headwater.core import (
    CheckpointConfig,
    DeliveryGuarantee,
    Sink,
    SinkWriter,
    StreamEnvironment,
    WriterInitContext,
)

N = 1_000_000
ROUNDS = 3


class _CountingWriter(SinkWriter[Any]):
    def __init__(self, sink: CountingSink) -> None:
        self._sink = sink

    async def write_batch(self, records: Sequence[Any]) -> None:
        self._sink.count += len(records)


class CountingSink(Sink[Any]):
    def __init__(self) -> None:
        self.count = 0

    @property
    def delivery_guarantee(self) -> DeliveryGuarantee:
        return DeliveryGuarantee.NONE

    def create_writer(self, context: WriterInitContext) -> SinkWriter[Any]:
        return _CountingWriter(self)


def double(x: int) -> int:
    return x * 2


def even(x: int) -> bool:
    return x % 4 == 0


def plain_python(data: list[int]) -> float:
    count = 0
    start = time.perf_counter()
    for x in data:
        y = double(x)
        if even(y):
            count += 1
    elapsed = time.perf_counter() - start
    assert count == N // 2
    return N / elapsed


def headwater(data: list[int], checkpoint_dir: Path | None) -> float:
    checkpointing = (
        CheckpointConfig(interval=timedelta(seconds=1), storage=checkpoint_dir)
        if checkpoint_dir is not None
        else None
    )
    env = StreamEnvironment(parallelism=1, checkpointing=checkpointing)
    sink = CountingSink()
    env.from_collection(data).map(double).filter(even).sink_to(sink)
    start = time.perf_counter()
    env.execute("inmemory")
    elapsed = time.perf_counter() - start
    assert sink.count == N // 2, sink.count
    return N / elapsed


def run() -> dict[str, float]:
    data = list(range(N))
    plain = max(plain_python(data) for _ in range(ROUNDS))
    hw = max(headwater(data, None) for _ in range(ROUNDS))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = max(headwater(data, Path(tmp) / f"r{i}") for i in range(ROUNDS))
    return {
        "headwater_rps": round(hw),
        "headwater_ckpt_rps": round(ckpt),
        "plain_python_rps": round(plain),
        "ratio": round(hw / plain, 3),
        "ratio_ckpt": round(ckpt / plain, 3),
    }
