"""The sink against the real server: both guarantees, statements, TTL/timestamps, bad input."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from cassandra.cluster import Session
from headwater.connectors.cassandra import (
    CassandraConnectionOptions,
    CassandraRecordError,
    CassandraSink,
    CassandraSinkOptions,
    WriteKind,
)
from headwater.core import DeliveryGuarantee, StreamEnvironment

GUARANTEES = [DeliveryGuarantee.AT_LEAST_ONCE, DeliveryGuarantee.EXACTLY_ONCE]


def _run(records: list[object], sink: CassandraSink, parallelism: int = 2) -> None:
    env = StreamEnvironment(parallelism=parallelism)
    env.from_collection(records).sink_to(sink)
    env.execute("cassandra sink test")


@pytest.mark.parametrize("guarantee", GUARANTEES, ids=lambda g: g.name)
def test_insert_writes_every_record_with_its_values(
    session: Session,
    cassandra_keyspace: str,
    connection: CassandraConnectionOptions,
    guarantee: DeliveryGuarantee,
) -> None:
    session.execute(
        "CREATE TABLE orders (id int PRIMARY KEY, total decimal, at timestamp, tags set<text>)"
    )
    at = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    records = [
        {
            "id": i,
            "total": Decimal(i) / 7,
            "at": at + dt.timedelta(seconds=i),
            "tags": {f"t{i % 3}"},
        }
        for i in range(1500)
    ]
    sink = CassandraSink(
        CassandraSinkOptions(
            connection=connection,
            keyspace=cassandra_keyspace,
            table="orders",
            key_columns=("id",),
            delivery_guarantee=guarantee,
        )
    )
    _run(records, sink)
    got = {r.id: r for r in session.execute("SELECT id, total, at, tags FROM orders")}
    assert len(got) == len(records)
    for record in records:
        row = got[record["id"]]
        assert row.total == record["total"]
        assert row.at.replace(tzinfo=dt.UTC) == record["at"]
        assert set(row.tags) == record["tags"]


@pytest.mark.parametrize("guarantee", GUARANTEES, ids=lambda g: g.name)
def test_counter_statement_adds_each_record_once(
    session: Session,
    cassandra_keyspace: str,
    connection: CassandraConnectionOptions,
    guarantee: DeliveryGuarantee,
) -> None:
    session.execute("CREATE TABLE hits (page text PRIMARY KEY, n counter)")
    records = [{"page": f"p{i % 13}", "n": i % 5 + 1} for i in range(2000)]
    sink = CassandraSink(
        CassandraSinkOptions(
            connection=connection,
            keyspace=cassandra_keyspace,
            cql=f"UPDATE {cassandra_keyspace}.hits SET n = n + :n WHERE page = :page",
            delivery_guarantee=guarantee,
            commit_chunk_size=37,
        )
    )
    _run(records, sink)
    expected: dict[str, int] = {}
    for record in records:
        expected[record["page"]] = expected.get(record["page"], 0) + record["n"]
    assert {r.page: r.n for r in session.execute("SELECT page, n FROM hits")} == expected


@pytest.mark.parametrize("guarantee", GUARANTEES, ids=lambda g: g.name)
def test_later_writes_of_a_row_win(
    session: Session,
    cassandra_keyspace: str,
    connection: CassandraConnectionOptions,
    guarantee: DeliveryGuarantee,
) -> None:
    """Many writes of a few rows, in order: each row holds its last value."""
    session.execute("CREATE TABLE latest (k int PRIMARY KEY, v int)")
    records = [{"k": i % 10, "v": i} for i in range(3000)]
    sink = CassandraSink(
        CassandraSinkOptions(
            connection=connection,
            keyspace=cassandra_keyspace,
            table="latest",
            key_columns=("k",),
            delivery_guarantee=guarantee,
        )
    )
    _run(records, sink, parallelism=1)
    assert {r.k: r.v for r in session.execute("SELECT k, v FROM latest")} == {
        k: 2990 + k for k in range(10)
    }


def test_update_delete_ttl_and_record_timestamps(
    session: Session, cassandra_keyspace: str, connection: CassandraConnectionOptions
) -> None:
    session.execute("CREATE TABLE kv (k int PRIMARY KEY, v text)")

    def sink(kind: WriteKind, **extra: object) -> CassandraSink:
        return CassandraSink(
            CassandraSinkOptions(
                connection=connection,
                keyspace=cassandra_keyspace,
                table="kv",
                key_columns=("k",),
                kind=kind,
                timestamp_field="ts",
                **extra,  # type: ignore[arg-type]
            )
        )

    _run(
        [{"k": k, "v": f"new{k}", "ts": 2_000} for k in range(10)],
        sink(WriteKind.UPDATE, ttl=dt.timedelta(hours=1)),
    )
    # An older replay (timestamp 1000) loses against the newer values: last write wins by time.
    _run([{"k": k, "v": f"old{k}", "ts": 1_000} for k in range(10)], sink(WriteKind.INSERT))
    _run([{"k": k, "ts": 3_000} for k in range(5)], sink(WriteKind.DELETE))
    rows = {r.k: (r.v, r.ttl) for r in session.execute("SELECT k, v, ttl(v) AS ttl FROM kv")}
    assert sorted(rows) == list(range(5, 10))
    assert all(v == f"new{k}" and 0 < ttl <= 3600 for k, (v, ttl) in rows.items())


def test_a_value_of_the_wrong_type_names_the_record_and_key(
    session: Session, cassandra_keyspace: str, connection: CassandraConnectionOptions
) -> None:
    session.execute("CREATE TABLE typed (k int PRIMARY KEY, v int)")
    sink = CassandraSink(
        CassandraSinkOptions(
            connection=connection, keyspace=cassandra_keyspace, table="typed", key_columns=("k",)
        )
    )
    records = [{"k": 1, "v": 1}, {"k": 2, "v": "two"}]
    with pytest.raises(Exception) as info:
        _run(records, sink, parallelism=1)
    text = _chain(info.value)
    assert "record #1" in text and "k=2" in text and "column types" in text


def test_a_missing_key_column_is_named(
    session: Session, cassandra_keyspace: str, connection: CassandraConnectionOptions
) -> None:
    session.execute("CREATE TABLE typed (k int PRIMARY KEY, v int)")
    sink = CassandraSink(
        CassandraSinkOptions(
            connection=connection, keyspace=cassandra_keyspace, table="typed", key_columns=("k",)
        )
    )
    with pytest.raises(Exception) as info:
        _run([{"v": 1}], sink, parallelism=1)
    assert "has no field 'k'" in _chain(info.value)


def test_an_unknown_keyspace_is_named(connection: CassandraConnectionOptions) -> None:
    sink = CassandraSink(
        CassandraSinkOptions(
            connection=connection, keyspace="no_such_space", table="t", key_columns=("k",)
        )
    )
    with pytest.raises(Exception) as info:
        _run([{"k": 1}], sink, parallelism=1)
    assert "keyspace 'no_such_space' does not exist" in _chain(info.value)


def _chain(error: BaseException) -> str:
    texts = []
    current: BaseException | None = error
    while current is not None and len(texts) < 10:
        texts.append(str(current))
        current = current.__cause__ or current.__context__
    return " | ".join(texts)


def test_skip_policy_counts_bad_records_and_writes_the_rest(
    session: Session, cassandra_keyspace: str, connection: CassandraConnectionOptions
) -> None:
    from headwater.connectors.cassandra import RecordErrorPolicy

    session.execute("CREATE TABLE typed (k int PRIMARY KEY, v int)")
    sink = CassandraSink(
        CassandraSinkOptions(
            connection=connection,
            keyspace=cassandra_keyspace,
            table="typed",
            key_columns=("k",),
            error_policy=RecordErrorPolicy.SKIP,
        )
    )
    records = [{"k": k, "v": "bad" if k % 10 == 0 else k} for k in range(100)]
    env = StreamEnvironment(parallelism=1)
    env.from_collection(records).sink_to(sink, name="Sink: typed")
    result = env.execute("skip")
    assert sorted(r.k for r in session.execute("SELECT k FROM typed")) == [
        k for k in range(100) if k % 10
    ]
    assert result.metrics["Sink: typed"]["numRecordsSendErrors"] == 10


def test_record_error_type_is_exported() -> None:
    assert issubclass(CassandraRecordError, Exception)
