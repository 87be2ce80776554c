"""FileSink: formats read back with standard readers record by record, rolling, buckets, names,
the manifest, and bad input."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from files_helpers import published, read_file
from headwater.connectors.base import CsvFormat, JsonFormat, TextFormat
from headwater.connectors.base.aws import AwsClientOptions
from headwater.connectors.files import (
    AvroFileFormat,
    Compression,
    DateTimeBucketAssigner,
    FieldBucketAssigner,
    FileSink,
    FileSinkOptions,
    LocalFileSystem,
    ParquetFormat,
    RowFormat,
    read_manifest,
)
from headwater.core import (
    CheckpointConfig,
    ConfigurationError,
    DataGenSource,
    JobFailedError,
    StreamEnvironment,
)

COUNT = 3000


def _write(records: list[Any], sink: FileSink[Any], parallelism: int = 2) -> None:
    env = StreamEnvironment(
        parallelism=parallelism,
        checkpointing=CheckpointConfig(interval=timedelta(milliseconds=50)),
    )
    env.from_collection(records).sink_to(sink)
    env.execute("file sink test")


def _records() -> list[dict[str, Any]]:
    return [{"id": i, "name": f"n{i}", "tags": [i % 2, i % 5], "x": i / 7} for i in range(COUNT)]


@pytest.mark.parametrize("compression", list(Compression))
def test_json_lines_round_trip_record_by_record(tmp_path: Path, compression: Compression) -> None:
    records = _records()
    sink: FileSink[Any] = FileSink(
        FileSinkOptions(path=str(tmp_path), max_part_size=10_000),
        RowFormat(JsonFormat(), compression),
    )
    _write(records, sink)
    files = published(LocalFileSystem(), str(tmp_path))
    assert all(path.endswith(".jsonl" + compression.extension) for path in files)
    got = sorted((r for rs in files.values() for r in rs), key=lambda r: r["id"])
    assert got == records


def test_csv_and_text_files_read_by_standard_readers(tmp_path: Path) -> None:
    rows = [{"a": str(i), "b": f"x,{i}"} for i in range(500)]
    _write(
        rows,
        FileSink(FileSinkOptions(path=str(tmp_path / "csv")), CsvFormat(fieldnames=("a", "b"))),
    )
    lines = [f"line {i} é" for i in range(500)]
    _write(lines, FileSink(FileSinkOptions(path=str(tmp_path / "text")), TextFormat()))
    got_rows = []
    for path in (tmp_path / "csv").glob("*.csv"):
        with open(path, newline="", encoding="utf-8") as f:
            got_rows += [dict(zip(("a", "b"), row, strict=True)) for row in csv.reader(f)]
    assert sorted(got_rows, key=lambda r: int(r["a"])) == rows
    got_lines = [
        line
        for path in (tmp_path / "text").glob("*.txt")
        for line in path.read_text("utf-8").splitlines()
    ]
    assert sorted(got_lines) == sorted(lines)


def test_parquet_keeps_datetimes_and_decimals(tmp_path: Path) -> None:
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("at", pa.timestamp("us", tz="UTC")),
            ("amount", pa.decimal128(12, 2)),
            ("name", pa.string()),
        ]
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = [
        {"id": i, "at": start + timedelta(seconds=i), "amount": Decimal(i) / 4, "name": f"n{i}"}
        for i in range(COUNT)
    ]
    _write(
        records,
        FileSink(FileSinkOptions(path=str(tmp_path)), ParquetFormat(schema, row_group_size=500)),
    )
    got = []
    for path in tmp_path.glob("*.parquet"):
        table = pq.read_table(path)
        assert table.schema.equals(schema)
        got += table.to_pylist()
    assert sorted(got, key=lambda r: r["id"]) == records


def test_avro_container_files(tmp_path: Path) -> None:
    schema = {
        "type": "record",
        "name": "Event",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "name", "type": "string"},
        ],
    }
    start = datetime(2026, 1, 1, tzinfo=UTC)
    records = [{"id": i, "at": start + timedelta(seconds=i), "name": f"n{i}"} for i in range(COUNT)]
    _write(records, FileSink(FileSinkOptions(path=str(tmp_path)), AvroFileFormat(schema)))
    got = [
        r
        for path in tmp_path.glob("*.avro")
        for r in fastavro.reader(io.BytesIO(path.read_bytes()))
    ]
    assert sorted(got, key=lambda r: r["id"]) == records


def test_row_files_roll_by_size(tmp_path: Path) -> None:
    """The size is checked once per batch (up to 1,000 records): a file rolls after the batch
    that made it reach the limit."""
    count, limit = 20_000, 150_000
    env = StreamEnvironment(parallelism=1)
    source = DataGenSource(lambda i, _r: {"id": i, "pad": "z" * 80}, count=count)
    env.from_source(source).sink_to(
        FileSink(FileSinkOptions(path=str(tmp_path), max_part_size=limit))
    )
    env.execute("rolling by size")
    sizes = sorted(p.stat().st_size for p in tmp_path.glob("*.jsonl"))
    batch = 1000 * 110
    assert len(sizes) >= count * 100 // (limit + batch)
    assert all(limit <= size < limit + batch for size in sizes[1:]), sizes
    got = [r for rs in published(LocalFileSystem(), str(tmp_path)).values() for r in rs]
    assert sorted(r["id"] for r in got) == list(range(count))


def test_bulk_files_roll_at_every_checkpoint(tmp_path: Path) -> None:
    records = [{"id": i} for i in range(COUNT)]
    env = StreamEnvironment(
        parallelism=1, checkpointing=CheckpointConfig(interval=timedelta(milliseconds=100))
    )
    source = DataGenSource(lambda i, _r: {"id": i}, count=COUNT, rows_per_second=3000)
    env.from_source(source).sink_to(FileSink(FileSinkOptions(path=str(tmp_path)), ParquetFormat()))
    env.execute("bulk rolling")
    files = list(tmp_path.glob("*.parquet"))
    assert len(files) >= 3, "one file per checkpoint expected over about a second"
    got = sorted((r for p in files for r in pq.read_table(p).to_pylist()), key=lambda r: r["id"])
    assert got == records


def test_datetime_buckets_by_event_time_in_a_zone(tmp_path: Path) -> None:
    base = int(datetime(2026, 3, 1, 22, 0, tzinfo=UTC).timestamp() * 1000)
    records = [{"id": i, "ts": base + i * 60_000} for i in range(240)]  # four hours
    assigner: DateTimeBucketAssigner[dict[str, Any]] = DateTimeBucketAssigner(
        timestamp=lambda r: r["ts"], timezone="Europe/Berlin"
    )
    _write(records, FileSink(FileSinkOptions(path=str(tmp_path)), bucket_assigner=assigner))
    for path, rows in published(LocalFileSystem(), str(tmp_path)).items():
        bucket = str(Path(path).parent.relative_to(tmp_path))
        for row in rows:
            local = datetime.fromtimestamp(row["ts"] / 1000, UTC).astimezone(assigner.zone)
            assert bucket == local.strftime("dt=%Y-%m-%d/hour=%H"), (bucket, row)
    assert {p.relative_to(tmp_path).parts[0] for p in tmp_path.glob("dt=*/hour=*/*")} == {
        "dt=2026-03-01",
        "dt=2026-03-02",
    }


def test_field_buckets_are_hive_style(tmp_path: Path) -> None:
    records = [{"country": ["de", "fr", "a/b"][i % 3], "kind": i % 2, "id": i} for i in range(300)]
    sink: FileSink[Any] = FileSink(
        FileSinkOptions(path=str(tmp_path)), bucket_assigner=FieldBucketAssigner("country", "kind")
    )
    _write(records, sink)
    for path, rows in published(LocalFileSystem(), str(tmp_path)).items():
        parts = Path(path).relative_to(tmp_path).parts
        for row in rows:
            assert parts[:2] == (
                f"country={row['country'].replace('/', '%2F')}",
                f"kind={row['kind']}",
            )
    assert sum(len(r) for r in published(LocalFileSystem(), str(tmp_path)).values()) == 300


def test_part_names_prefix_suffix_and_manifest(tmp_path: Path) -> None:
    options = FileSinkOptions(
        path=str(tmp_path),
        part_prefix="events",
        part_suffix=".json",
        manifest=True,
        max_part_size=5000,
    )
    _write(_records(), FileSink(options))
    _write(_records(), FileSink(options))  # a second job into the same directory
    names = [p.name for p in tmp_path.iterdir() if not p.name.startswith(("_", "."))]
    assert len(names) == len(set(names)) > 2
    assert all(n.startswith("events-") and n.endswith(".json") for n in names)
    manifest = read_manifest(LocalFileSystem(), str(tmp_path))
    assert sorted(e.path for e in manifest) == sorted(names)
    assert {e.path: e.records for e in manifest} == {
        n: len(read_file(LocalFileSystem(), str(tmp_path / n))) for n in names
    }
    assert not list(tmp_path.glob(".*")), "no in-progress file is left after a bounded job"


def test_a_directory_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    sink: FileSink[Any] = FileSink(FileSinkOptions(path=str(blocker / "out")))
    with pytest.raises(JobFailedError, match=str(blocker / "out")):
        _write([{"id": 1}], sink)


def test_a_missing_bucket_is_named_and_secrets_are_not(s3_options: AwsClientOptions) -> None:
    secret = "hw-secret-4f1c9e"
    client = AwsClientOptions(
        endpoint_url=s3_options.endpoint_url,
        region="us-east-1",
        access_key_id="test",
        secret_access_key=secret,
    )
    sink: FileSink[Any] = FileSink(FileSinkOptions(path="s3://hw-no-such-bucket/x", client=client))
    with pytest.raises(JobFailedError) as info:
        _write([{"id": 1}], sink)
    chain: list[BaseException] = []
    error: BaseException | None = info.value
    while error is not None:
        chain.append(error)
        error = error.__cause__
    message = " | ".join(str(e) for e in chain)
    assert "hw-no-such-bucket" in message and "does not exist" in message, message
    assert secret not in message
    assert secret not in repr(sink.options)


def test_options_name_the_option_at_fault() -> None:
    with pytest.raises(ConfigurationError, match="max_part_size"):
        FileSinkOptions(path="/tmp/x", max_part_size=0)
    with pytest.raises(ConfigurationError, match="s3_part_size"):
        FileSinkOptions(path="s3://b/x", s3_part_size=1024)
    with pytest.raises(ConfigurationError, match="schema"):
        FileSink(FileSinkOptions(path="/tmp/x"), AvroFileFormat())


def test_s3_multipart_parts_and_round_trip(
    s3_bucket: str, s3_options: AwsClientOptions, s3_client: Any
) -> None:
    """Files larger than a part are uploaded in several parts; the result reads back whole."""
    records = [{"id": i, "pad": "y" * 900} for i in range(14_000)]  # about 13 MB, one bucket
    root = f"s3://{s3_bucket}/big"
    options = FileSinkOptions(path=root, client=s3_options, manifest=True)
    _write(records, FileSink(options), parallelism=1)
    keys = [
        o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="big/")["Contents"]
    ]
    data_keys = [k for k in keys if "/_manifest/" not in k]
    assert len(data_keys) == 1
    head = s3_client.head_object(Bucket=s3_bucket, Key=data_keys[0], PartNumber=1)
    assert int(head["PartsCount"]) >= 3
    from headwater.connectors.files import S3FileSystem

    got = published(S3FileSystem(s3_options), root)
    assert sorted((r for rs in got.values() for r in rs), key=lambda r: r["id"]) == records
    assert [e.records for e in read_manifest(S3FileSystem(s3_options), root)] == [len(records)]
