"""The JDBC source against real SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import asyncio
import datetime as dt
from datetime import timedelta

import pytest
from headwater.connectors.jdbc import JdbcSource, JdbcSourceOptions, JdbcSplit
from headwater.connectors.jdbc._source import SPLIT_SERIALIZER, key_ranges
from headwater.core import Boundedness, ConfigurationError, InputStatus, StreamEnvironment


def make_table(db, count: int) -> str:
    name = db.table("src")
    db.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
    if count:
        db.execute(
            f"INSERT INTO {name} (id, v) VALUES (:id, :v)",
            params=[{"id": i * 3, "v": i} for i in range(count)],
        )
    return name


def test_bounded_parallel_scan_equals_the_table(db) -> None:
    table = make_table(db, 1000)
    env = StreamEnvironment(parallelism=3)
    source = JdbcSource(
        JdbcSourceOptions(
            url=db.url_text, table=table, column="id", num_partitions=7, fetch_size=64
        )
    )
    assert source.boundedness is Boundedness.BOUNDED
    rows = env.from_source(source).execute_and_collect()
    assert sorted((r["id"], r["v"]) for r in rows) == [(i * 3, i) for i in range(1000)]


def test_bounds_and_filter(db) -> None:
    table = make_table(db, 100)
    options = JdbcSourceOptions(
        url=db.url_text,
        table=table,
        column="id",
        lower_bound=30,
        upper_bound=60,
        where="v % 2 = 0",
        columns=("id",),
        num_partitions=4,
    )
    rows = StreamEnvironment(parallelism=2).from_source(JdbcSource(options)).execute_and_collect()
    assert sorted(r["id"] for r in rows) == [i * 3 for i in range(10, 21) if i % 2 == 0]
    assert all(set(r) == {"id"} for r in rows)


def test_empty_table(databases) -> None:
    db = databases["sqlite"]
    table = make_table(db, 0)
    source = JdbcSource(JdbcSourceOptions(url=db.url_text, table=table, column="id"))
    assert StreamEnvironment().from_source(source).execute_and_collect() == []


def test_key_ranges_cover_the_bounds() -> None:
    splits = key_ranges(0, 9, 4)
    assert [(s.lower, s.upper) for s in splits] == [(0, 2), (2, 5), (5, 7), (7, 10)]
    assert key_ranges(5, 5, 3) == [JdbcSplit("2", 5, 6)]
    start = dt.datetime(2024, 1, 1)  # noqa: DTZ001 - a TIMESTAMP column is naive
    stamps = key_ranges(start, start + timedelta(days=4), 2)
    assert stamps[-1].upper_inclusive and stamps[0].upper == start + timedelta(days=2)
    for split in [*splits, *stamps, JdbcSplit("x", None, None, last_key=dt.date(2024, 1, 2))]:
        assert SPLIT_SERIALIZER.deserialize(1, SPLIT_SERIALIZER.serialize(split)) == split


def test_timestamp_column(databases) -> None:
    db = databases["postgresql"]
    name = db.table("ts")
    db.execute(f"CREATE TABLE {name} (at TIMESTAMP PRIMARY KEY, v INTEGER)")
    start = dt.datetime(2024, 1, 1)  # noqa: DTZ001 - a TIMESTAMP column is naive
    db.execute(
        f"INSERT INTO {name} (at, v) VALUES (:at, :v)",
        params=[{"at": start + timedelta(minutes=i), "v": i} for i in range(300)],
    )
    options = JdbcSourceOptions(
        url=db.url_text, table=name, column="at", num_partitions=5, fetch_size=16
    )
    rows = StreamEnvironment(parallelism=2).from_source(JdbcSource(options)).execute_and_collect()
    assert sorted(r["v"] for r in rows) == list(range(300))


class Output:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def collect(self, record, timestamp=None) -> None:
        self.records.append(record)

    def collect_batch(self, records) -> None:
        self.records.extend(records)

    def emit_watermark(self, timestamp) -> None:
        pass

    def mark_idle(self) -> None:
        pass


async def poll_until(reader, output: Output, count: int, timeout: float = 10.0) -> InputStatus:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    status = InputStatus.NOTHING_AVAILABLE
    while len(output.records) < count and loop.time() < deadline:
        status = reader.poll_next(output)
        if status is InputStatus.END_OF_INPUT:
            break
        if status is InputStatus.NOTHING_AVAILABLE:
            await asyncio.wait([reader.is_available()], timeout=0.05)
    return status


async def test_restore_mid_split(db, context) -> None:
    table = make_table(db, 500)
    options = JdbcSourceOptions(url=db.url_text, table=table, column="id", fetch_size=50)
    source = JdbcSource(options)
    split = key_ranges(0, 1497, 1)[0]
    first, out1 = source.create_reader(context), Output()
    first.add_splits([split])
    first.notify_no_more_splits()
    await poll_until(first, out1, 170)
    # A checkpoint between two polls: the split's position is the last key emitted.
    [state] = [SPLIT_SERIALIZER.serialize(s) for s in first.snapshot_state(1)]
    await first.close()
    restored_split = SPLIT_SERIALIZER.deserialize(1, state)
    assert restored_split.last_key == out1.records[-1]["id"]
    second, out2 = source.create_reader(context), Output()
    second.add_splits([restored_split])
    second.notify_no_more_splits()
    assert await poll_until(second, out2, 10_000) is InputStatus.END_OF_INPUT
    await second.close()
    ids = [r["id"] for r in out1.records + out2.records]
    assert len(out1.records) >= 150 and len(out2.records) > 0
    assert ids == [i * 3 for i in range(500)]  # no loss, no duplicates, in order


async def test_unbounded_polling_picks_up_new_rows(db, context) -> None:
    table = make_table(db, 10)
    options = JdbcSourceOptions(
        url=db.url_text,
        table=table,
        column="id",
        fetch_size=4,
        poll_interval=timedelta(milliseconds=50),
        start_after=5,
    )
    source = JdbcSource(options)
    assert source.boundedness is Boundedness.CONTINUOUS_UNBOUNDED
    reader, out = source.create_reader(context), Output()
    reader.add_splits([JdbcSplit("poll", None, None, last_key=5)])
    await poll_until(reader, out, 8)
    assert [r["id"] for r in out.records] == [i * 3 for i in range(2, 10)]
    db.execute(f"INSERT INTO {table} (id, v) VALUES (100, 1), (101, 2)")
    await poll_until(reader, out, 10)
    assert [r["id"] for r in out.records][-2:] == [100, 101]
    [position] = reader.snapshot_state(2)
    assert position.last_key == 101
    await reader.close()


def test_source_options_are_validated() -> None:
    with pytest.raises(ConfigurationError, match=r"jdbc source: .*upper_bound"):
        JdbcSourceOptions(url="sqlite://", table="t", column="id", lower_bound=5, upper_bound=1)
    with pytest.raises(ConfigurationError, match="start_after"):
        JdbcSourceOptions(url="sqlite://", table="t", column="id", start_after=1)
    with pytest.raises(ConfigurationError, match="option 'column'"):
        JdbcSourceOptions(url="sqlite://", table="t")
