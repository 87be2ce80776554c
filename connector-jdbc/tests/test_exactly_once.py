"""Exactly-once: staged rows become visible only on commit, and a repeated commit does nothing."""

from __future__ import annotations

from headwater.connectors.jdbc import ChangelogRow, JdbcSink, JdbcSinkOptions, RowKind
from headwater.core import CommitRequest, DeliveryGuarantee, StreamEnvironment


def make_table(db) -> str:
    name = db.table("eo")
    db.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
    return name


def sink(db, table: str, **kw) -> JdbcSink:
    return JdbcSink(
        JdbcSinkOptions(
            url=db.url_text,
            table=table,
            delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE,
            batch_size=7,
            **kw,
        )
    )


async def test_crash_between_pre_commit_and_commit(db, context) -> None:
    table = make_table(db)
    writer = sink(db, table, key_columns=("id",)).create_writer(context)
    await writer.write_batch([{"id": i, "v": i} for i in range(20)])
    await writer.write_batch([ChangelogRow(RowKind.DELETE, {"id": 0, "v": 0})])
    await writer.flush(False)
    [txn] = await writer.prepare_commit()
    assert await writer.prepare_commit() == []  # nothing staged since
    assert db.query(f"SELECT count(*) FROM {table}") == [(0,)]  # staged, invisible
    # The process dies here: the writer is never closed, nothing is committed.
    # After the restart, a new committer commits the checkpoint's committable...
    committer = sink(db, table, key_columns=("id",)).create_committer(context)
    request = CommitRequest(txn)
    await committer.commit([request])
    assert request.outcome == "committed"
    assert db.query(f"SELECT count(*), sum(v) FROM {table}") == [(19, sum(range(1, 20)))]
    assert db.query(f"SELECT count(*) FROM {table}_hw_staging") == [(0,)]
    # ... and committing it again (a restore from the same checkpoint) changes nothing.
    again = CommitRequest(txn)
    await committer.commit([again])
    assert again.outcome == "already_committed"
    assert db.query(f"SELECT count(*), sum(v) FROM {table}") == [(19, sum(range(1, 20)))]
    await committer.close()
    await writer.close()


async def test_uncommitted_transactions_stay_invisible(db, context) -> None:
    table = make_table(db)
    writer = sink(db, table).create_writer(context)
    await writer.write_batch([{"id": 1, "v": 1}])
    await writer.flush(False)
    first = await writer.prepare_commit()
    await writer.write_batch([{"id": 2, "v": 2}])
    await writer.flush(True)
    second = await writer.prepare_commit()
    assert first != second
    committer = sink(db, table).create_committer(context)
    await committer.commit([CommitRequest(second[0])])  # only the second checkpoint completed
    assert db.query(f"SELECT id FROM {table}") == [(2,)]
    await committer.close()
    await writer.close()


def test_exactly_once_job(db) -> None:
    table = make_table(db)
    env = StreamEnvironment(parallelism=2)
    env.from_collection([{"id": i, "v": i * 2} for i in range(500)]).rebalance().sink_to(
        sink(db, table)
    )
    env.execute("eo")
    assert db.query(f"SELECT count(*), sum(v) FROM {table}") == [(500, sum(range(0, 1000, 2)))]


async def test_expired_staged_rows_are_deleted_when_a_job_starts(db, context) -> None:
    """Rows of checkpoints that never completed, and old commit-log entries, are purged."""
    import time
    from datetime import UTC, datetime, timedelta

    from headwater.connectors.jdbc._writes import transaction_id_prefix

    table = make_table(db)
    first = sink(db, table).create_writer(context)
    await first.write_batch([{"id": 1, "v": 1}])
    await first.flush(False)
    [txn] = await first.prepare_commit()  # staged, never committed: the job "died"
    await first.close()
    staging = f"{table}_hw_staging"
    expired = f"{transaction_id_prefix(time.time() - 3 * 86400)}-dead0000-0-0"
    legacy = "0123456789ab-0-0"  # an id from before ids carried their time
    for n, other in enumerate((expired, legacy)):
        db.execute(
            f"INSERT INTO {staging} (hw_txn, hw_seq, hw_kind, id, v) VALUES "
            f"('{other}', 0, 0, {100 + n}, 0)"
        )
    now = datetime.now(UTC).replace(tzinfo=None)
    old_entry, recent_entry = f"old-{table}", f"recent-{table}"
    for entry, age in ((old_entry, timedelta(days=3)), (recent_entry, timedelta(hours=1))):
        db.execute(
            "INSERT INTO headwater_commits (txn_id, committed_at) VALUES (:t, :c)",
            params={"t": entry, "c": (now - age).strftime("%Y-%m-%d %H:%M:%S")},
        )
    second = sink(db, table, staging_retention=timedelta(days=2)).create_writer(context)
    await second.write_batch([{"id": 2, "v": 2}])
    await second.flush(False)
    staged = {t for (t,) in db.query(f"SELECT DISTINCT hw_txn FROM {staging}")}
    assert expired not in staged
    assert {txn, legacy} <= staged  # within the retention, or without a time: kept
    assert len(staged) == 3  # and the second writer's own transaction
    assert txn.startswith("t") and txn < transaction_id_prefix(time.time() + 1)
    logged = {t for (t,) in db.query("SELECT txn_id FROM headwater_commits")}
    assert recent_entry in logged and old_entry not in logged
    await second.close()


def test_staging_retention_must_be_positive() -> None:
    from datetime import timedelta

    import pytest

    with pytest.raises(ValueError, match="staging_retention"):
        JdbcSinkOptions(url="sqlite://", table="t", staging_retention=timedelta(0))
