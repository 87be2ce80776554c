"""File connector throughput: 1,000,000 records through the FileSink and back through the FileSource.

Each measured against the raw library doing the same work in the same run, on the same machine:

- JSON lines: FileSink (orjson through connector-base's JsonFormat, exactly-once part files,
  checkpoints every second) against a plain Python loop writing ``orjson.dumps(record) + "\\n"``
  to one file;
- Parquet: FileSink(ParquetFormat) against raw pyarrow writing the same rows in the same row-group
  size (``Table.from_pylist`` + ``ParquetWriter.write_table``);
- source: FileSource over the JSON-lines files into a counting sink, against a loop reading the
  same files line by line with ``orjson.loads``.

Counts are checked on both sides. Prints {"jsonl_rps", "raw_jsonl_rps", "ratio_jsonl",
"parquet_rps", "raw_parquet_rps", "ratio_parquet", "source_rps", "raw_source_rps",
"ratio_source"}; targets: every ratio >= 0.7.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from headwater.connectors.files import (
    FileSink,
    FileSinkOptions,
    FileSource,
    FileSourceOptions,
    ParquetFormat,
)
from headwater.core import (
    CheckpointConfig,
    DeliveryGuarantee,
    Sink,
    SinkWriter,
    StreamEnvironment,
    WriterInitContext,
)

N = 1_000_000
ROUNDS = int(os.environ.get("HEADWATER_BENCH_ROUNDS", "2"))
ROW_GROUP = 64 * 1024


class _CountingWriter(SinkWriter[Any]):
    def __init__(self, sink: _CountingSink) -> None:
        self._sink = sink

    async def write_batch(self, records: Sequence[Any]) -> None:
        self._sink.count += len(records)


class _CountingSink(Sink[Any]):
    def __init__(self) -> None:
        self.count = 0

    @property
    def delivery_guarantee(self) -> DeliveryGuarantee:
        return DeliveryGuarantee.NONE

    def create_writer(self, context: WriterInitContext) -> SinkWriter[Any]:
        return _CountingWriter(self)


def _records() -> list[dict[str, Any]]:
    return [{"id": i, "name": f"name-{i}", "x": i / 8, "ok": i % 2 == 0} for i in range(N)]


def _sink_rps(records: list[dict[str, Any]], out: Path, sink: FileSink[Any]) -> float:
    env = StreamEnvironment(
        parallelism=1, checkpointing=CheckpointConfig(interval=timedelta(seconds=1))
    )
    env.from_collection(records).sink_to(sink)
    start = time.perf_counter()
    env.execute("files benchmark: sink")
    return N / (time.perf_counter() - start)


def _jsonl_lines(out: Path) -> int:
    return sum(p.read_bytes().count(b"\n") for p in out.rglob("*.jsonl"))


def headwater_jsonl(records: list[dict[str, Any]], out: Path) -> float:
    rps = _sink_rps(records, out, FileSink(FileSinkOptions(path=str(out))))
    assert _jsonl_lines(out) == N
    return rps


def raw_jsonl(records: list[dict[str, Any]], out: Path) -> float:
    out.mkdir(parents=True)
    start = time.perf_counter()
    dumps = orjson.dumps
    with open(out / "raw.jsonl", "wb") as f:
        for record in records:
            f.write(dumps(record) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    rps = N / (time.perf_counter() - start)
    assert _jsonl_lines(out) == N
    return rps


def _parquet_rows(out: Path) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in out.rglob("*.parquet"))


def headwater_parquet(records: list[dict[str, Any]], out: Path) -> float:
    sink: FileSink[Any] = FileSink(
        FileSinkOptions(path=str(out)), ParquetFormat(row_group_size=ROW_GROUP)
    )
    rps = _sink_rps(records, out, sink)
    assert _parquet_rows(out) == N
    return rps


def raw_parquet(records: list[dict[str, Any]], out: Path) -> float:
    out.mkdir(parents=True)
    start = time.perf_counter()
    writer: pq.ParquetWriter | None = None
    for offset in range(0, N, ROW_GROUP):
        table = pa.Table.from_pylist(records[offset : offset + ROW_GROUP])
        if writer is None:
            writer = pq.ParquetWriter(out / "raw.parquet", table.schema, compression="snappy")
        writer.write_table(table, row_group_size=ROW_GROUP)
    assert writer is not None
    writer.close()
    rps = N / (time.perf_counter() - start)
    assert _parquet_rows(out) == N
    return rps


def headwater_source(directory: Path) -> float:
    env = StreamEnvironment(parallelism=1)
    sink = _CountingSink()
    env.from_source(FileSource(FileSourceOptions(paths=(str(directory),)))).sink_to(sink)
    start = time.perf_counter()
    env.execute("files benchmark: source")
    rps = N / (time.perf_counter() - start)
    assert sink.count == N, sink.count
    return rps


def raw_source(directory: Path) -> float:
    start = time.perf_counter()
    loads = orjson.loads
    count = 0
    for path in sorted(directory.rglob("*.jsonl")):
        with open(path, "rb") as f:
            for line in f:
                loads(line)
                count += 1
    rps = N / (time.perf_counter() - start)
    assert count == N, count
    return rps


def run() -> dict[str, float]:
    records = _records()
    pairs = [
        ("jsonl", headwater_jsonl, raw_jsonl),
        ("parquet", headwater_parquet, raw_parquet),
    ]
    best: dict[str, float] = {}

    def keep(name: str, rps: float) -> None:
        best[name] = max(best.get(name, 0.0), rps)

    # Each round runs headwater and the raw side back to back: on a shared machine the load
    # changes from minute to minute, and a ratio of measurements taken apart measures the load.
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(ROUNDS):
            for kind, ours, raw in pairs:
                keep(kind, ours(records, root / f"{kind}-{i}"))
                keep(f"raw_{kind}", raw(records, root / f"raw_{kind}-{i}"))
            keep("source", headwater_source(root / "jsonl-0"))
            keep("raw_source", raw_source(root / "jsonl-0"))
    result: dict[str, float] = {}
    for kind in ("jsonl", "parquet", "source"):
        result[f"{kind}_rps"] = round(best[kind])
        result[f"raw_{kind}_rps"] = round(best[f"raw_{kind}"])
        result[f"ratio_{kind}"] = round(best[kind] / best[f"raw_{kind}"], 3)
    return result
