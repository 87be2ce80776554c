"""The JDBC sink against real SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from headwater.connectors.jdbc import (
    ChangelogRow,
    ErrorPolicy,
    JdbcRowError,
    JdbcSink,
    JdbcSinkOptions,
    RowKind,
)
from headwater.core import (
    CheckpointConfig,
    ConfigurationError,
    JobFailedError,
    StreamEnvironment,
    installed_connectors,
)


def make_table(db, *, key: bool = True) -> str:
    name = db.table()
    pk = "PRIMARY KEY" if key else ""
    db.execute(
        f"CREATE TABLE {name} (id INTEGER NOT NULL {pk}, name VARCHAR(40) NOT NULL, "
        f"score INTEGER CHECK (score >= 0))"
    )
    return name


def options(db, table: str, **kw) -> JdbcSinkOptions:
    return JdbcSinkOptions(url=db.url_text, table=table, **kw)


def run_job(records, sink: JdbcSink, parallelism: int = 1):
    env = StreamEnvironment(parallelism=parallelism)
    env.from_collection(records).rebalance().sink_to(sink)
    return env.execute("jdbc-test")


def test_insert(db) -> None:
    table = make_table(db)
    rows = [{"id": i, "name": f"n{i}", "score": i} for i in range(2500)]
    result = run_job(rows, JdbcSink(options(db, table, batch_size=300)), parallelism=2)
    assert db.query(f"SELECT count(*), sum(score) FROM {table}") == [(2500, sum(range(2500)))]
    assert sum(m.get("numRecordsSend", 0) for m in result.metrics.values()) == 2500


def test_upsert_and_deletes(db) -> None:
    table = make_table(db)
    rows = [{"id": i % 10, "name": f"v{i}", "score": i} for i in range(100)]
    changes = [
        *rows,
        ChangelogRow(RowKind.UPDATE_BEFORE, {"id": 1, "name": "v91", "score": 91}),
        ChangelogRow(RowKind.UPDATE_AFTER, {"id": 1, "name": "updated", "score": 1000}),
        ChangelogRow(RowKind.DELETE, {"id": 2, "name": "", "score": 0}),
        ChangelogRow(RowKind.DELETE, {"id": 3, "name": "", "score": 0}),
        ChangelogRow(RowKind.INSERT, {"id": 3, "name": "back", "score": 3}),
    ]
    run_job(changes, JdbcSink(options(db, table, key_columns=("id",), batch_size=7)))
    got = dict((i, (n, s)) for i, n, s in db.query(f"SELECT id, name, score FROM {table}"))
    expected = {k: (f"v{90 + k}", 90 + k) for k in range(10)}
    expected[1] = ("updated", 1000)
    del expected[2]
    expected[3] = ("back", 3)
    assert got == expected


def test_custom_statement(db) -> None:
    table = make_table(db)
    statement = f"INSERT INTO {table} (id, name, score) VALUES (:id, :name, :score * 2)"
    run_job(
        [{"id": 1, "name": "a", "score": 5}],
        JdbcSink(options(db, table, statement=statement, columns=("id", "name", "score"))),
    )
    assert db.query(f"SELECT score FROM {table}") == [(10,)]


async def _until_count(db, table: str, count: int, timeout: float = 10.0) -> None:
    """Wait until ``table`` holds ``count`` rows (writes run on the thread pool)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while db.query(f"SELECT count(*) FROM {table}") != [(count,)]:
        assert asyncio.get_running_loop().time() < deadline, (
            f"{table} holds {db.query(f'SELECT count(*) FROM {table}')} rows, not {count}"
        )
        await asyncio.sleep(0.02)


async def test_batching_by_size(db, context) -> None:
    table = make_table(db)
    writer = JdbcSink(options(db, table, batch_size=10, batch_interval=None)).create_writer(context)
    await writer.write_batch([{"id": i, "name": "x", "score": i} for i in range(25)])
    # the second batch may still be in flight when write_batch returns
    await _until_count(db, table, 20)  # two full batches, 5 buffered
    assert db.query(f"SELECT count(*) FROM {table}") == [(20,)]
    await writer.flush(False)
    assert db.query(f"SELECT count(*) FROM {table}") == [(25,)]
    await writer.close()


async def test_batching_by_interval(db, context) -> None:
    table = make_table(db)
    sink = JdbcSink(options(db, table, batch_interval=timedelta(milliseconds=150)))
    writer = sink.create_writer(context)
    await writer.write_batch([{"id": i, "name": "x", "score": i} for i in range(3)])
    assert db.query(f"SELECT count(*) FROM {table}") == [(0,)]
    await _until_count(db, table, 3)  # no flush asked for: the interval's timer wrote them
    await writer.close()


async def test_constraint_violation_names_the_row(db, context) -> None:
    table = make_table(db)
    writer = JdbcSink(
        options(db, table, batch_size=100, redact_columns=frozenset({"name"}))
    ).create_writer(context)
    rows = [{"id": i, "name": "secret-name", "score": 1} for i in range(5)]
    rows[3] = {"id": 3, "name": "secret-name", "score": -1}  # violates the CHECK
    await writer.write_batch(rows)
    with pytest.raises(JdbcRowError) as caught:
        await writer.flush(False)
    assert caught.value.index == 3
    assert "row 3 of a batch of 5" in str(caught.value)
    assert "secret-name" not in str(caught.value)
    assert "'name': '***'" in str(caught.value)
    assert db.query(f"SELECT count(*) FROM {table}") == [(0,)]  # the batch is not half-written
    await writer.close()


def test_constraint_violation_fails_the_job(db) -> None:
    table = make_table(db)
    rows = [{"id": 1, "name": "a", "score": 1}, {"id": 1, "name": "dup", "score": 2}]
    with pytest.raises(Exception) as caught:
        run_job(rows, JdbcSink(options(db, table)))
    text = str(caught.value) + str(caught.value.__cause__)
    assert "row 1 of a batch of 2" in text, text


async def test_skip_policy(db, context) -> None:
    table = make_table(db)
    writer = JdbcSink(options(db, table, error_policy=ErrorPolicy.SKIP)).create_writer(context)
    rows = [
        {"id": 1, "name": "a", "score": 1},
        {"id": 2, "name": None, "score": 1},  # NOT NULL
        {"id": 3, "name": "c", "score": -5},  # CHECK
        {"id": 4, "score": 1},  # no "name" at all
        {"id": 5, "name": "e", "score": 5},
    ]
    await writer.write_batch(rows)
    await writer.flush(False)
    assert db.query(f"SELECT id FROM {table} ORDER BY id") == [(1,), (5,)]
    assert context.metric_group.snapshot()["numRecordsSendErrors"] == 3
    await writer.close()


async def test_dead_letter_policy(db, context) -> None:
    table = make_table(db)
    dead = db.table("dead")
    writer = JdbcSink(
        options(db, table, error_policy=ErrorPolicy.DEAD_LETTER, dead_letter_table=dead)
    ).create_writer(context)
    await writer.write_batch(
        [{"id": 1, "name": "a", "score": 1}, {"id": 2, "name": "b", "score": -1}]
    )
    await writer.flush(False)
    assert db.query(f"SELECT id FROM {table}") == [(1,)]
    [(target, row_json)] = db.query(f"SELECT target_table, row_json FROM {dead}")
    assert target == table and '"id": 2' in row_json
    await writer.close()


# The lock to hold, and an operation timeout above the server-side lock wait it implies (half of
# it; InnoDB counts whole seconds, at least one).
LOCKS = {
    "postgresql": ("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE", 1),
    "mariadb": ("SELECT * FROM {table} FOR UPDATE", 3),  # next-key locks block the inserts
}


@pytest.mark.parametrize("dialect", sorted(LOCKS))
async def test_a_lock_held_elsewhere_is_waited_out_not_hung_on(
    databases, context, dialect: str
) -> None:
    """A lock wait longer than half of ``operation_timeout`` is a retryable error on the server.

    Without the server-side lock timeout the flush would hang in its worker thread until the
    client-side timeout failed it for good.
    """
    db = databases[dialect]
    table = make_table(db)
    lock, timeout = LOCKS[dialect]
    sink = JdbcSink(
        options(
            db,
            table,
            operation_timeout=timedelta(seconds=timeout),
            max_retries=8,
            retry_backoff=timedelta(milliseconds=100),
            max_retry_backoff=timedelta(milliseconds=300),
        )
    )
    writer = sink.create_writer(context)
    await writer.write_batch([{"id": 0, "name": "first", "score": 0}])
    await writer.flush(False)
    with db.engine.connect() as other:
        other.exec_driver_sql(lock.format(table=table)).close()
        loop = asyncio.get_running_loop()
        loop.call_later(2.5, other.rollback)  # the lock outlives the server-side lock wait
        await writer.write_batch([{"id": i, "name": f"n{i}", "score": i} for i in range(1, 50)])
        await writer.flush(False)
    assert db.query(f"SELECT count(*) FROM {table}") == [(50,)]
    assert context.metric_group.snapshot()["numRetries"] >= 1
    await writer.close()


def test_options_are_validated_and_hide_the_password() -> None:
    url = "postgresql+psycopg://app:hunter2@127.0.0.1/db"
    opts = JdbcSinkOptions(url=url, table="t")
    assert "hunter2" not in repr(opts) and "hunter2" not in repr(JdbcSink(opts))
    assert "hunter2" not in opts.model_dump_json()
    with pytest.raises(ConfigurationError, match="jdbc sink: option 'batch_size'") as caught:
        JdbcSinkOptions(url=url, table="t", batch_size=0)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="dead_letter_table"):
        JdbcSinkOptions(url=url, table="t", error_policy=ErrorPolicy.DEAD_LETTER)
    with pytest.raises(ConfigurationError, match="option 'nope'"):
        JdbcSinkOptions(url=url, table="t", nope=1)
    with pytest.raises(ConfigurationError, match="key column"):
        JdbcSinkOptions(url=url, table="t", columns=("a",), key_columns=("b",))
    with pytest.raises(ConfigurationError) as caught:
        JdbcSinkOptions(url="::not a url hunter2", table="t")
    assert "hunter2" not in str(caught.value)


def test_missing_table_is_a_clear_error(databases) -> None:
    db = databases["sqlite"]
    with pytest.raises(JobFailedError, match="table 'nope' does not exist"):
        run_job([{"id": 1}], JdbcSink(options(db, "nope")))


def test_registered_as_a_connector() -> None:
    [jdbc] = [c for c in installed_connectors() if c.identifier == "jdbc"]
    assert jdbc.compatible and jdbc.error is None
    assert jdbc.spec.sink is JdbcSink and jdbc.spec.distribution == "headwater-connector-jdbc"


def test_errors_are_classified_from_the_real_drivers(databases) -> None:
    """A refused connection is transient; a missing table or bad SQL is not."""
    from headwater.connectors.jdbc._errors import ErrorKind, classify
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DBAPIError

    def error_of(url, sql: str = "SELECT 1") -> DBAPIError:
        engine = create_engine(
            url, connect_args={"connect_timeout": 2} if "postgres" in str(url) else {}
        )
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql(sql)
        except DBAPIError as exc:
            return exc
        finally:
            engine.dispose()
        raise AssertionError(f"{sql!r} on {url} did not fail")

    pg = databases["postgresql"].url
    assert classify(error_of(pg.set(host="127.0.0.1", port=1))) is ErrorKind.RETRYABLE
    assert classify(error_of(pg, "SELEC 1")) is ErrorKind.FATAL
    sqlite = databases["sqlite"].url
    assert classify(error_of(sqlite, "SELECT * FROM no_such_table")) is ErrorKind.FATAL


def _typed_rows(dialect: str) -> list[dict[str, Any]]:
    at = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    # sqlite3 cannot bind Decimals (the sink passes values to the driver as they are): floats
    # there, exact in binary (eighths)
    number: Any = float if dialect == "sqlite" else Decimal
    return [
        {
            "id": i,
            "customer": f"c{i % 7}",
            "amount": number(i * 37 % 1000) / 8,
            "paid": i % 3 == 0,
            "at": at + timedelta(seconds=i),
            "note": None if i % 2 else f"note {i}",
        }
        for i in range(300)
    ]


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_create_table_from_the_rows_keeps_their_values(db, guarantee: str) -> None:
    table = db.table("created")
    rows = _typed_rows(db.dialect)
    sink = JdbcSink(
        options(
            db,
            table,
            create_table=True,
            key_columns=("id",),
            batch_size=50,
            delivery_guarantee=guarantee,
        )
    )
    env = StreamEnvironment(parallelism=2)
    if guarantee == "exactly_once":
        env = StreamEnvironment(
            parallelism=2, checkpointing=CheckpointConfig(interval=timedelta(milliseconds=50))
        )
    env.from_collection(rows).rebalance().sink_to(sink)
    env.execute("create table")
    got = db.query(f"SELECT id, customer, amount, paid, at, note FROM {table} ORDER BY id")
    assert len(got) == len(rows)
    for row, (id_, customer, amount, paid, at, note) in zip(rows, got, strict=True):
        assert (id_, customer, Decimal(amount), bool(paid), note) == (
            row["id"],
            row["customer"],
            row["amount"],
            row["paid"],
            row["note"],
        )
        stored = datetime.fromisoformat(at) if isinstance(at, str) else at  # sqlite: text
        stored = stored if stored.tzinfo is not None else stored.replace(tzinfo=UTC)
        assert stored == row["at"], (row["id"], at)


def test_create_table_with_given_ddl(db) -> None:
    table = db.table("ddl")
    ddl = f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(40) NOT NULL, score INTEGER)"
    rows = [{"id": i, "name": f"n{i}", "score": i} for i in range(120)]
    run_job(rows, JdbcSink(options(db, table, create_table=True, table_ddl=ddl)), parallelism=2)
    assert db.query(f"SELECT count(*), sum(score) FROM {table}") == [(120, sum(range(120)))]


def test_create_table_names_a_column_it_cannot_type(db) -> None:
    table = db.table("untyped")
    rows = [{"id": 1, "blob": object()}]
    with pytest.raises(JobFailedError, match=r"column 'blob' has a object"):
        run_job(rows, JdbcSink(options(db, table, create_table=True, max_retries=0)))


def test_table_ddl_needs_create_table() -> None:
    with pytest.raises(ConfigurationError, match="table_ddl"):
        JdbcSinkOptions(url="sqlite://", table="t", table_ddl="CREATE TABLE t (id INTEGER)")
