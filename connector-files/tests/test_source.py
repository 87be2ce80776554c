"""FileSource: byte-range splits that add up to the file, row groups with projection, compressed
and Avro files, and bad input named by path and position."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from headwater.connectors.base import CsvFormat, JsonFormat, SkipOnError, TextFormat
from headwater.connectors.files import (
    AvroFileFormat,
    FileSink,
    FileSinkOptions,
    FileSource,
    FileSourceOptions,
    LocalFileSystem,
    ParquetFormat,
)
from headwater.connectors.files._splits import plan_splits
from headwater.core import JobFailedError, StreamEnvironment


def _read(source: FileSource[Any], parallelism: int = 3) -> list[Any]:
    return StreamEnvironment(parallelism=parallelism).from_source(source).execute_and_collect()


def _chain(error: BaseException) -> str:
    parts = []
    current: BaseException | None = error
    while current is not None:
        parts.append(str(current))
        current = current.__cause__
    return " | ".join(parts)


@pytest.mark.parametrize("split_size", [1, 7, 100, 4096, 1 << 30])
@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_byte_range_splits_read_every_line_once(
    tmp_path: Path, split_size: int, ending: bytes
) -> None:
    lines = [f"line {i} " + "w" * (i % 37) for i in range(3000)]
    path = tmp_path / "big.txt"
    path.write_bytes(ending.join(line.encode() for line in lines))  # no newline at the end
    info = next(LocalFileSystem().list_files(str(path)))
    splits = plan_splits(
        LocalFileSystem(),
        info,
        FileSource(FileSourceOptions(paths=(str(path),))).format,
        split_size,
    )
    assert splits[0].start == 0 and splits[-1].end == info.size
    assert all(a.end == b.start for a, b in itertools.pairwise(splits))
    options = FileSourceOptions(
        paths=(str(path),), split_size=split_size, max_records_per_fetch=100
    )
    got = _read(FileSource(options, TextFormat()))
    assert sorted(got) == sorted(lines)


def test_globs_lists_and_hidden_files(tmp_path: Path) -> None:
    for name, ids in [
        ("a/x.jsonl", [1, 2]),
        ("b/y.jsonl", [3]),
        ("b/z.csv", [99]),
        ("a/.hidden.jsonl", [98]),
        ("_manifest/m.jsonl", [97]),
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("".join(json.dumps({"id": i}) + "\n" for i in ids))
    by_glob = _read(FileSource(FileSourceOptions(paths=(str(tmp_path / "*" / "*.jsonl"),))))
    assert sorted(r["id"] for r in by_glob) == [1, 2, 3]
    listed = _read(
        FileSource(FileSourceOptions(paths=(str(tmp_path / "a"), str(tmp_path / "b" / "y.jsonl"))))
    )
    assert sorted(r["id"] for r in listed) == [1, 2, 3]


def test_parquet_row_groups_with_projection(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": list(range(10_000)),
            "name": [f"n{i}" for i in range(10_000)],
            "x": [i / 3 for i in range(10_000)],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=1000)
    source = FileSource(
        FileSourceOptions(paths=(str(tmp_path),), max_records_per_fetch=300),
        ParquetFormat(columns=["id", "x"]),
    )
    info = next(LocalFileSystem().list_files(str(tmp_path)))
    assert len(plan_splits(LocalFileSystem(), info, source.format, 1 << 20)) == 10
    got = sorted(_read(source), key=lambda r: r["id"])
    assert got == [{"id": i, "x": i / 3} for i in range(10_000)]


def test_compressed_and_avro_files_read_back_what_the_sink_wrote(tmp_path: Path) -> None:
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "a.jsonl.gz").write_bytes(
        gzip.compress(b"".join(json.dumps({"id": i}).encode() + b"\n" for i in range(500)))
    )
    assert sorted(
        r["id"] for r in _read(FileSource(FileSourceOptions(paths=(str(tmp_path / "g"),))))
    ) == list(range(500))
    schema = {"type": "record", "name": "r", "fields": [{"name": "id", "type": "long"}]}
    env = StreamEnvironment(parallelism=2)
    env.from_collection([{"id": i} for i in range(2000)]).sink_to(
        FileSink(FileSinkOptions(path=str(tmp_path / "avro")), AvroFileFormat(schema))
    )
    env.execute("avro out")
    got = _read(
        FileSource(FileSourceOptions(paths=(str(tmp_path / "avro"),)), AvroFileFormat(schema))
    )
    assert sorted(r["id"] for r in got) == list(range(2000))


def test_a_csv_row_with_the_wrong_column_count_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("1,a\n2,b\n3,c,extra\n4,d\n")
    source = FileSource(FileSourceOptions(paths=(str(path),)), CsvFormat(fieldnames=("n", "s")))
    with pytest.raises(JobFailedError) as info:
        _read(source)
    message = _chain(info.value)
    assert f"{path} byte 8" in message and "expected 2 fields, got 3" in message, message
    skipping = FileSource(
        FileSourceOptions(paths=(str(path),)),
        CsvFormat(fieldnames=("n", "s"), on_error=SkipOnError()),
    )
    assert sorted(r["n"] for r in _read(skipping)) == ["1", "2", "4"]


def test_a_corrupt_parquet_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 this is not a parquet file PAR1")
    with pytest.raises(JobFailedError) as info:
        _read(FileSource(FileSourceOptions(paths=(str(path),)), ParquetFormat()))
    assert f"cannot read {path}" in _chain(info.value)


def test_a_json_line_that_is_not_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"id": 1}\n{"id": 2\n')
    with pytest.raises(JobFailedError) as info:
        _read(FileSource(FileSourceOptions(paths=(str(path),)), JsonFormat()))
    assert f"{path} byte 10" in _chain(info.value)
