"""Split planning of a snapshot: ``_id`` boundaries by the strategy the options name.

Each strategy returns the inner boundaries ``b1 < b2 < ... < bn``; the splits are then
``[MinKey, b1)``, ``[b1, b2)``, ..., ``[bn, MaxKey)``, so together they cover every ``_id``.
"""

from __future__ import annotations

import math
from typing import Any

from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.timestamp import Timestamp
from headwater.connectors.mongodb._options import MongoSourceOptions
from headwater.connectors.mongodb._split import MongoSplit
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

__all__ = ["current_cluster_time", "plan_snapshot"]

_MIB = 1024 * 1024


async def current_cluster_time(
    client: AsyncMongoClient[Any], options: MongoSourceOptions
) -> Timestamp:
    """The cluster time of the last write the server applied (a snapshot at it sees every write)."""
    database = client.get_database(options.database or "admin")
    reply = await database.command("ping")
    time = reply.get("operationTime")
    if not isinstance(time, Timestamp):
        raise RuntimeError("the server reported no operationTime: a replica set is needed")
    return time


async def plan_snapshot(
    client: AsyncMongoClient[Any], options: MongoSourceOptions, snapshot_time: Timestamp | None
) -> list[MongoSplit]:
    """The snapshot splits of ``options``' collection, read at ``snapshot_time`` if given."""
    assert options.database is not None and options.collection is not None
    collection = client[options.database][options.collection]
    strategy = options.partition_strategy
    if strategy == "single":
        bounds: list[Any] = []
    elif strategy == "pagination":
        bounds = await _pagination_bounds(collection, options.partition_records)
    elif strategy == "split-vector":
        bounds = await _split_vector_bounds(client, options)
    else:
        bounds = await _sample_bounds(collection, options)
    edges = [MinKey(), *bounds, MaxKey()]
    return [
        MongoSplit(f"snapshot-{i}", lower=edges[i], upper=edges[i + 1], snapshot_time=snapshot_time)
        for i in range(len(edges) - 1)
    ]


async def _pagination_bounds(collection: AsyncCollection[Any], per_split: int) -> list[Any]:
    """Every ``per_split``-th ``_id`` in order (one query per split)."""
    bounds: list[Any] = []
    lower: Any = MinKey()
    while True:
        cursor = (
            collection.find({}, {"_id": 1})
            .sort("_id", 1)
            .hint([("_id", 1)])
            .min([("_id", lower)])  # index bounds follow BSON order across types
            .skip(per_split)
            .limit(1)
        )
        found = await cursor.to_list(1)
        if not found:
            return bounds
        lower = found[0]["_id"]
        bounds.append(lower)


async def _collection_size(collection: AsyncCollection[Any]) -> tuple[int, int]:
    """The collection's document count and data size in bytes."""
    cursor = await collection.aggregate([{"$collStats": {"storageStats": {}}}])
    found = await cursor.to_list(1)
    storage = found[0].get("storageStats", {}) if found else {}
    return int(storage.get("count", 0)), int(storage.get("size", 0))


async def _sample_bounds(
    collection: AsyncCollection[Any], options: MongoSourceOptions
) -> list[Any]:
    """``$sample`` ``_id`` values, grouped by ``$bucketAuto`` into splits of about the target size."""
    count, size = await _collection_size(collection)
    partitions = math.ceil(size / (options.partition_size_mb * _MIB)) if size else 1
    if partitions <= 1 or count <= 1:
        return []
    samples = min(count, partitions * options.samples_per_partition)
    cursor = await collection.aggregate(
        [
            {"$sample": {"size": samples}},
            {"$project": {"_id": 1}},
            {"$bucketAuto": {"groupBy": "$_id", "buckets": partitions}},
        ]
    )
    buckets = await cursor.to_list(None)
    return [bucket["_id"]["min"] for bucket in buckets[1:]]


async def _split_vector_bounds(
    client: AsyncMongoClient[Any], options: MongoSourceOptions
) -> list[Any]:
    """The ``splitVector`` command's split points for chunks of ``partition_size_mb``."""
    reply = await client[options.database or ""].command(
        {
            "splitVector": f"{options.database}.{options.collection}",
            "keyPattern": {"_id": 1},
            "maxChunkSize": max(1, math.ceil(options.partition_size_mb)),
        }
    )
    return [key["_id"] for key in reply.get("splitKeys", [])]
