"""The MongoDB sink against the real mongod: writes, changelogs, bad input, and process kills."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from headwater.connectors.base import DeadLetter, DeadLetterOnError, SkipOnError
from headwater.connectors.mongodb import (
    MongoChangelogRecord,
    MongoLookup,
    MongoLookupOptions,
    MongoSink,
    MongoSinkOptions,
)
from headwater.connectors.testing import run_with_kills
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import (
    AsyncDataStream,
    CheckpointConfig,
    ConfigurationError,
    DeliveryGuarantee,
    RowKind,
    StreamEnvironment,
)
from pymongo import MongoClient


def _sink(service: RunningService, database: str, **kwargs: Any) -> MongoSinkOptions:
    return MongoSinkOptions(uri=service.address, database=database, collection="out", **kwargs)


@pytest.mark.parametrize("guarantee", list(DeliveryGuarantee))
def test_upserts_by_key_fields_keep_python_values(
    mongodb_service: RunningService,
    mongo: MongoClient,
    unique_name: str,
    guarantee: DeliveryGuarantee,
) -> None:
    mongo[unique_name]["out"].create_index("order", unique=True)
    at = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    records = [
        {
            "order": i % 500,
            "price": Decimal(i) / 8,
            "at": at + timedelta(minutes=i),
            "pair": (i, "x"),
        }
        for i in range(2000)
    ]
    env = StreamEnvironment(
        parallelism=2, checkpointing=CheckpointConfig(interval=timedelta(milliseconds=100))
    )
    options = _sink(
        mongodb_service, unique_name, key_fields=("order",), delivery_guarantee=guarantee
    )
    env.from_collection(records).key_by(lambda r: r["order"]).sink_to(MongoSink(options))
    env.execute("upserts")
    got = {d["order"]: d for d in mongo[unique_name]["out"].find({}, {"_id": 0})}
    last = {r["order"]: r for r in records}  # keyed: each key's records stay in order
    assert set(got) == set(last)
    for order, record in last.items():
        stored = got[order]
        assert stored["price"].to_decimal() == record["price"]
        assert stored["at"] == record["at"]
        assert stored["pair"] == list(record["pair"])


def test_changelog_records_apply_in_order(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str
) -> None:
    records = [
        MongoChangelogRecord(RowKind.INSERT, {"_id": 1}, {"_id": 1, "v": "a"}),
        MongoChangelogRecord(RowKind.INSERT, {"_id": 2}, {"_id": 2, "v": "b"}),
        MongoChangelogRecord(RowKind.UPDATE_BEFORE, {"_id": 1}, {"_id": 1, "v": "a"}),
        MongoChangelogRecord(RowKind.UPDATE_AFTER, {"_id": 1}, {"_id": 1, "v": "c"}),
        MongoChangelogRecord(RowKind.DELETE, {"_id": 2}, None),
        MongoChangelogRecord(RowKind.INSERT, {"_id": 2}, {"_id": 2, "v": "d"}),
        MongoChangelogRecord(RowKind.DELETE, {"_id": 1}, None),
    ]
    env = StreamEnvironment(parallelism=1)
    env.from_collection(records).sink_to(MongoSink(_sink(mongodb_service, unique_name)))
    env.execute("changelog")
    assert list(mongo[unique_name]["out"].find()) == [{"_id": 2, "v": "d"}]


def test_update_mode_sets_fields(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str
) -> None:
    mongo[unique_name]["out"].insert_one({"_id": 1, "a": 1, "b": 1})
    env = StreamEnvironment(parallelism=1)
    env.from_collection([{"_id": 1, "b": 2}, {"_id": 2, "c": 3}]).sink_to(
        MongoSink(_sink(mongodb_service, unique_name, write_mode="update"))
    )
    env.execute("update")
    assert list(mongo[unique_name]["out"].find().sort("_id")) == [
        {"_id": 1, "a": 1, "b": 2}, {"_id": 2, "c": 3},
    ]  # fmt: skip


@pytest.mark.parametrize(
    "guarantee", [DeliveryGuarantee.AT_LEAST_ONCE, DeliveryGuarantee.EXACTLY_ONCE]
)
def test_refused_documents_go_to_the_policy_and_nothing_else_is_lost(
    mongodb_service: RunningService,
    mongo: MongoClient,
    unique_name: str,
    guarantee: DeliveryGuarantee,
) -> None:
    """A duplicate key on insert, a validator failure and a document over the size limit."""
    mongo[unique_name].create_collection(
        "out", validator={"$jsonSchema": {"properties": {"n": {"bsonType": "int"}}}}
    )
    mongo[unique_name]["out"].insert_one({"_id": 7, "n": 7})
    records: list[dict[str, Any]] = [{"_id": i, "n": i} for i in range(100)]
    records[20] = {"_id": 20, "n": "not an int"}
    records.append({"_id": 500, "n": 500, "blob": "x" * 2000})
    letters: list[DeadLetter] = []
    options = _sink(
        mongodb_service, unique_name, write_mode="insert", delivery_guarantee=guarantee,
        max_record_size_in_bytes=1000,
    )  # fmt: skip
    env = StreamEnvironment(
        parallelism=1, checkpointing=CheckpointConfig(interval=timedelta(milliseconds=100))
    )
    env.from_collection(records).sink_to(
        MongoSink(options, on_error=DeadLetterOnError(letters.append))
    )
    env.execute("refused")
    assert sorted(d["_id"] for d in mongo[unique_name]["out"].find()) == [
        i for i in range(100) if i != 20
    ]
    reasons = {letter.position: letter.error for letter in letters}
    assert set(reasons) == {"_id 7", "_id 20", "_id 500"}, reasons
    assert "11000" in reasons["_id 7"] and "121" in reasons["_id 20"]
    assert "max_record_size_in_bytes" in reasons["_id 500"]


def test_a_document_over_16_mib_goes_to_the_policy(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str
) -> None:
    """MongoDB's own limit (the default max_record_size_in_bytes): the rest is written."""
    letters: list[DeadLetter] = []
    records = [{"_id": 1}, {"_id": 2, "blob": b"x" * (16 * 1024 * 1024 + 10)}, {"_id": 3}]
    env = StreamEnvironment(parallelism=1)
    env.from_collection(records).sink_to(
        MongoSink(_sink(mongodb_service, unique_name), on_error=DeadLetterOnError(letters.append))
    )
    env.execute("too large")
    assert sorted(d["_id"] for d in mongo[unique_name]["out"].find()) == [1, 3]
    assert [letter.position for letter in letters] == ["key {'_id': 2}"]


def test_a_refused_document_fails_the_job_by_default_naming_key_and_code(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str
) -> None:
    mongo[unique_name]["out"].insert_one({"_id": 3})
    env = StreamEnvironment(parallelism=1)
    env.from_collection([{"_id": i} for i in range(5)]).sink_to(
        MongoSink(_sink(mongodb_service, unique_name, write_mode="insert"))
    )
    with pytest.raises(Exception) as info:
        env.execute("fails")
    text = "".join(str(e) for e in _chain(info.value))
    assert "_id 3" in text and "11000" in text


def test_skip_policy_drops_only_the_refused(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str
) -> None:
    mongo[unique_name]["out"].insert_one({"_id": 3})
    env = StreamEnvironment(parallelism=1)
    env.from_collection([{"_id": i} for i in range(5)]).sink_to(
        MongoSink(_sink(mongodb_service, unique_name, write_mode="insert"), on_error=SkipOnError())
    )
    env.execute("skips")
    assert sorted(d["_id"] for d in mongo[unique_name]["out"].find()) == [0, 1, 2, 3, 4]


def _chain(error: BaseException | None) -> list[BaseException]:
    chain = []
    while error is not None and len(chain) < 10:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def test_wrong_credentials_fail_clearly_without_the_password(
    mongodb_service: RunningService, caplog: pytest.LogCaptureFixture
) -> None:
    host = f"{mongodb_service.host}:{mongodb_service.port}"
    options = MongoSinkOptions(
        uri=f"mongodb://nobody:s3cr3t-pw@{host}/?replicaSet=rs0&authSource=admin",
        database="d", collection="c", server_selection_timeout=timedelta(seconds=3),
    )  # fmt: skip
    assert "s3cr3t-pw" not in repr(options)
    env = StreamEnvironment(parallelism=1)
    env.from_collection([{"_id": 1}]).sink_to(MongoSink(options))
    with caplog.at_level(logging.DEBUG), pytest.raises(Exception) as info:
        env.execute("credentials")
    chain = _chain(info.value)
    assert any("mongodb" in str(e) for e in chain), chain
    assert not any("s3cr3t-pw" in str(e) for e in chain)
    assert "s3cr3t-pw" not in caplog.text


def test_an_invalid_uri_names_the_option_not_the_password() -> None:
    options = MongoSinkOptions(
        uri="mongodb://u:s3cr3t-pw@h:notaport/", database="d",
        collection="c",
    )  # fmt: skip
    from headwater.connectors.mongodb._client import connect

    with pytest.raises(ConfigurationError, match="uri") as info:
        connect(options)
    assert "s3cr3t-pw" not in str(info.value)


async def test_lookup_finds_by_key_and_caches(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str
) -> None:
    mongo[unique_name]["customers"].insert_many(
        [{"_id": i, "name": f"c{i}", "x": 1} for i in range(3)]
    )
    lookup = MongoLookup(
        MongoLookupOptions(
            uri=mongodb_service.address, database=unique_name, collection="customers",
            projection={"x": 0}, cache_size=10,
        )
    )  # fmt: skip
    try:
        assert await lookup(1) == {"_id": 1, "name": "c1"}
        assert await lookup(9) is None
        mongo[unique_name]["customers"].update_one({"_id": 1}, {"$set": {"name": "changed"}})
        assert await lookup(1) == {"_id": 1, "name": "c1"}  # cached within the TTL
    finally:
        await lookup.close()


def test_lookup_enriches_a_stream_through_async_io(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str
) -> None:
    mongo[unique_name]["customers"].insert_many([{"_id": i, "tier": i % 3} for i in range(50)])
    lookup = MongoLookup(
        MongoLookupOptions(
            uri=mongodb_service.address, database=unique_name, collection="customers",
            cache_size=20,
        )
    )  # fmt: skip

    async def enrich(order: dict[str, Any]) -> dict[str, Any]:
        customer = await lookup(order["customer"])
        return {**order, "tier": customer["tier"] if customer else None}

    orders = [{"order": i, "customer": i % 60} for i in range(400)]
    env = StreamEnvironment(parallelism=2)
    enriched = AsyncDataStream.unordered_wait(
        env.from_collection(orders), enrich, timeout=timedelta(seconds=30)
    )
    got = sorted(enriched.execute_and_collect(), key=lambda r: r["order"])
    assert got == [{**o, "tier": o["customer"] % 3 if o["customer"] < 50 else None} for o in orders]


# -- process kills --------------------------------------------------------------------------------
KILL_COUNT = 12_000


def _kill_run(
    service: RunningService, database: str, tmp_path: Path, guarantee: str, kills: int
) -> None:
    report = run_with_kills(
        "mongo_jobs:mongo_sink_job",
        checkpoint_dir=tmp_path / "checkpoints",
        parallelism=2,
        params={
            "count": str(KILL_COUNT),
            "rate": "1500",
            "uri": service.address,
            "database": database,
            "collection": "out",
            "guarantee": guarantee,
            "mode": "insert",
        },
        kills=kills,
        after_checkpoints=(1, 4),
        timeout=120,
        seed=11,
    )
    report.check(kills)


@pytest.mark.slow
def test_insert_only_collection_shows_duplicates_at_least_once(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str, tmp_path: Path,
    jobs_on_path: None,
) -> None:  # fmt: skip
    """The check below can see a duplicate: at-least-once inserts under kills repeat some."""
    _kill_run(mongodb_service, unique_name, tmp_path, "at_least_once", kills=6)
    got = Counter(d["n"] for d in mongo[unique_name]["out"].find())
    assert set(got) == set(range(KILL_COUNT)), "nothing lost"
    assert any(n > 1 for n in got.values()), "at-least-once under kills repeated nothing"


@pytest.mark.slow
def test_exactly_once_insert_only_under_ten_kills(
    mongodb_service: RunningService, mongo: MongoClient, unique_name: str, tmp_path: Path,
    jobs_on_path: None,
) -> None:  # fmt: skip
    """Server-made _ids: a duplicate cannot hide behind an upsert. Each record exactly once."""
    _kill_run(mongodb_service, unique_name, tmp_path, "exactly_once", kills=10)
    got = Counter(d["n"] for d in mongo[unique_name]["out"].find())
    duplicates = {n: c for n, c in got.items() if c > 1}
    assert not duplicates, f"{len(duplicates)} duplicated, e.g. {list(duplicates)[:5]}"
    missing = set(range(KILL_COUNT)) - set(got)
    assert not missing, f"{len(missing)} missing, e.g. {sorted(missing)[:5]}"
