"""In-memory throughput: collection -> map(x*2) -> filter(even) -> counting sink, parallelism 1.

Two limits measured in the same run, on the same 1,000,000 integers and the same callables:

- per-record: a plain-Python loop calling each operator once per record;
- batched: the operators applied to lists of 1,000 (a list comprehension per operator and batch),
  the way headwater hands records between tasks; on CPython 3.11 it is no faster than the
  per-record loop (the lists cost what the saved loop overhead gains).

Every side checks its result: the count and the sum of the records that pass the filter. Best of
3 rounds each, without and with 1 s checkpoints. Prints {"headwater_rps", "headwater_ckpt_rps",
"plain_python_rps", "batched_python_rps", "ratio", "ratio_batched", "ratio_ckpt",
"ratio_ckpt_batched"} (ratios: headwater / limit).
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
BATCH = 1000
EXPECTED = (N // 2, sum(x * 2 for x in range(N) if x % 2 == 0))
"""The count and sum of the records the filter keeps: the doubled even numbers."""


class _CountingWriter(SinkWriter[Any]):
    def __init__(self, sink: CountingSink) -> None:
        self._sink = sink

    async def write_batch(self, records: Sequence[Any]) -> None:
        self._sink.count += len(records)
        self._sink.total += sum(records)


class CountingSink(Sink[Any]):
    def __init__(self) -> None:
        self.count = 0
        self.total = 0

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
    count = total = 0
    start = time.perf_counter()
    for x in data:
        y = double(x)
        if even(y):
            count += 1
            total += y
    elapsed = time.perf_counter() - start
    assert (count, total) == EXPECTED, (count, total)
    return N / elapsed


def batched_python(data: list[int]) -> float:
    count = total = 0
    start = time.perf_counter()
    for i in range(0, len(data), BATCH):
        mapped = [double(x) for x in data[i : i + BATCH]]
        kept = [y for y in mapped if even(y)]
        count += len(kept)
        total += sum(kept)
    elapsed = time.perf_counter() - start
    assert (count, total) == EXPECTED, (count, total)
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
    assert (sink.count, sink.total) == EXPECTED, (sink.count, sink.total)
    return N / elapsed


def run() -> dict[str, float]:
    data = list(range(N))
    plain = max(plain_python(data) for _ in range(ROUNDS))
    batched = max(batched_python(data) for _ in range(ROUNDS))
    hw = max(headwater(data, None) for _ in range(ROUNDS))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = max(headwater(data, Path(tmp) / f"r{i}") for i in range(ROUNDS))
    return {
        "headwater_rps": round(hw),
        "headwater_ckpt_rps": round(ckpt),
        "plain_python_rps": round(plain),
        "batched_python_rps": round(batched),
        "ratio": round(hw / plain, 3),
        "ratio_batched": round(hw / batched, 3),
        "ratio_ckpt": round(ckpt / plain, 3),
        "ratio_ckpt_batched": round(ckpt / batched, 3),
    }
