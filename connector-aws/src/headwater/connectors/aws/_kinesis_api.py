"""The Kinesis Data Streams API of the source: ListShards, GetShardIterator, GetRecords."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from headwater.connectors.aws._reader import Record
from headwater.connectors.aws._shards import Shard, StartingPosition
from headwater.connectors.aws._stream_api import FetchedRecords, StreamApi
from typing_extensions import override

__all__ = ["KinesisApi", "kinesis_timestamp"]


def _millis(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def kinesis_timestamp(millis: str | None) -> datetime:
    """The ``Timestamp`` of an ``AT_TIMESTAMP`` position (epoch milliseconds as a string)."""
    return datetime.fromtimestamp(int(millis or 0) / 1000, UTC)


class KinesisApi(StreamApi):
    """Kinesis Data Streams: ListShards with a ShardFilter, paginated; GetShardIterator; GetRecords.

    Args:
        client: a boto3 ``kinesis`` client.
        page_size: ``MaxResults`` of each ListShards page.
    """

    service = "kinesis"
    connector = "kinesis source"
    max_records_per_call = 10_000

    def __init__(self, client: Any, page_size: int = 1000) -> None:
        super().__init__(client)
        self._page_size = page_size

    @override
    def list_shards(
        self, stream_arn: str, initial: StartingPosition | None, after_shard_id: str | None
    ) -> list[Shard]:
        shard_filter: dict[str, Any] = {"Type": "FROM_TRIM_HORIZON"}
        if initial is not None and initial.kind == "LATEST":
            shard_filter = {"Type": "AT_LATEST"}
        elif initial is not None and initial.kind == "AT_TIMESTAMP":
            shard_filter = {"Type": "AT_TIMESTAMP", "Timestamp": kinesis_timestamp(initial.value)}
        elif initial is None and after_shard_id is not None:
            shard_filter = {"Type": "AFTER_SHARD_ID", "ShardId": after_shard_id}
        kwargs: dict[str, Any] = {
            "StreamARN": stream_arn,
            "ShardFilter": shard_filter,
            "MaxResults": self._page_size,
        }
        shards: list[Shard] = []
        while True:
            page = self.call("list_shards", "ListShards", **kwargs)
            for shard in page.get("Shards", []):
                parents = (shard.get("ParentShardId"), shard.get("AdjacentParentShardId"))
                keys = shard["HashKeyRange"]
                shards.append(
                    Shard(
                        shard["ShardId"],
                        tuple(p for p in parents if p),
                        (int(keys["StartingHashKey"]), int(keys["EndingHashKey"])),
                    )
                )
            token = page.get("NextToken")
            if not token:
                return shards
            kwargs = {"NextToken": token, "MaxResults": self._page_size}

    @override
    def shard_iterator(self, stream_arn: str, shard_id: str, position: StartingPosition) -> str:
        kwargs: dict[str, Any] = {
            "StreamARN": stream_arn,
            "ShardId": shard_id,
            "ShardIteratorType": position.kind,
        }
        if position.kind == "AT_TIMESTAMP":
            kwargs["Timestamp"] = kinesis_timestamp(position.value)
        elif position.value is not None:
            kwargs["StartingSequenceNumber"] = position.value
        return str(self.call("get_shard_iterator", "GetShardIterator", **kwargs)["ShardIterator"])

    @override
    def get_records(self, stream_arn: str, iterator: str, limit: int) -> FetchedRecords:
        answer = self.call(
            "get_records", "GetRecords", StreamARN=stream_arn, ShardIterator=iterator, Limit=limit
        )
        return FetchedRecords(
            answer.get("Records", []),
            answer.get("NextShardIterator"),
            answer.get("MillisBehindLatest"),
        )

    @staticmethod
    @override
    def sequence_number(record: Record) -> str:
        return str(record["SequenceNumber"])

    @staticmethod
    @override
    def event_time(record: Record) -> int | None:
        arrival = record.get("ApproximateArrivalTimestamp")
        return _millis(arrival) if arrival is not None else None

    @staticmethod
    @override
    def size(record: Record) -> int:
        return len(record["Data"]) + len(record["PartitionKey"])
