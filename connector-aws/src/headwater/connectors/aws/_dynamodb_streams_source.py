"""DynamoDbStreamsSource: a FLIP-27 source of a table's change events (DynamoDB Streams, polling)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar, cast

from boto3.dynamodb.types import TypeDeserializer
from headwater.connectors.aws._reader import Record, ShardRecordEmitter
from headwater.connectors.aws._shards import Shard, StartingPosition
from headwater.connectors.aws._source_base import ShardSource, ShardSourceOptions
from headwater.connectors.aws._stream_api import FetchedRecords, StreamApi
from headwater.core import ConfigurationError, Counter, ReaderOutput, SerializationError
from pydantic import model_validator
from typing_extensions import override

__all__ = [
    "DynamoDbStreamRecord",
    "DynamoDbStreamsApi",
    "DynamoDbStreamsSource",
    "DynamoDbStreamsSourceOptions",
]

T = TypeVar("T")
"""The type of the records the source emits."""

_deserializer = TypeDeserializer()


class DynamoDbStreamsApi(StreamApi):
    """DynamoDB Streams: DescribeStream (paginated by shard id), GetShardIterator, GetRecords.

    DescribeStream has no shard filter: every discovery lists every shard, and the enumerator
    skips the known ones.

    Args:
        client: a boto3 ``dynamodbstreams`` client.
        page_size: the ``Limit`` of each DescribeStream page.
    """

    service = "dynamodbstreams"
    connector = "dynamodb streams source"
    max_records_per_call = 1000

    def __init__(self, client: Any, page_size: int = 100) -> None:
        super().__init__(client)
        self._page_size = page_size

    @override
    def list_shards(
        self, stream_arn: str, initial: StartingPosition | None, after_shard_id: str | None
    ) -> list[Shard]:
        kwargs: dict[str, Any] = {"StreamArn": stream_arn, "Limit": self._page_size}
        shards: list[Shard] = []
        while True:
            description = self.call("describe_stream", "DescribeStream", **kwargs)
            description = description["StreamDescription"]
            for shard in description.get("Shards", []):
                parent = shard.get("ParentShardId")
                shards.append(Shard(shard["ShardId"], (parent,) if parent else ()))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            kwargs["ExclusiveStartShardId"] = last

    @override
    def shard_iterator(self, stream_arn: str, shard_id: str, position: StartingPosition) -> str:
        kwargs: dict[str, Any] = {
            "StreamArn": stream_arn,
            "ShardId": shard_id,
            "ShardIteratorType": position.kind,
        }
        if position.value is not None:
            kwargs["SequenceNumber"] = position.value
        return str(self.call("get_shard_iterator", "GetShardIterator", **kwargs)["ShardIterator"])

    @override
    def get_records(self, stream_arn: str, iterator: str, limit: int) -> FetchedRecords:
        answer = self.call("get_records", "GetRecords", ShardIterator=iterator, Limit=limit)
        return FetchedRecords(answer.get("Records", []), answer.get("NextShardIterator"), None)

    @staticmethod
    @override
    def sequence_number(record: Record) -> str:
        return str(record["dynamodb"]["SequenceNumber"])

    @staticmethod
    @override
    def event_time(record: Record) -> int | None:
        created = record["dynamodb"].get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            return int(created.timestamp() * 1000)
        return None if created is None else int(float(created) * 1000)

    @staticmethod
    @override
    def size(record: Record) -> int:
        return int(record["dynamodb"].get("SizeBytes", 0))


@dataclass(frozen=True, slots=True)
class DynamoDbStreamRecord:
    """One change of one item, with Python values (converted with boto3's ``TypeDeserializer``).

    Attributes:
        event_name: ``INSERT``, ``MODIFY`` or ``REMOVE``.
        keys: the item's key attributes.
        new_image: the item after the change (``None`` for ``REMOVE`` or when the stream's view
            type leaves it out).
        old_image: the item before the change (``None`` for ``INSERT`` or when left out).
        sequence_number: the change's sequence number in its shard.
        approximate_creation_time: when the change was made, in epoch milliseconds (also the
            record's event timestamp in the job).
        event_id: the change's unique id.
        shard_id: the shard it was read from.
    """

    event_name: Literal["INSERT", "MODIFY", "REMOVE"]
    keys: Mapping[str, Any]
    new_image: Mapping[str, Any] | None
    old_image: Mapping[str, Any] | None
    sequence_number: str
    approximate_creation_time: int | None
    event_id: str
    shard_id: str


def _python(image: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if image is None:
        return None
    return {name: _deserializer.deserialize(value) for name, value in image.items()}


def to_stream_record(record: Record, shard_id: str) -> DynamoDbStreamRecord:
    """The :class:`DynamoDbStreamRecord` of a GetRecords record."""
    change = record["dynamodb"]
    return DynamoDbStreamRecord(
        event_name=record["eventName"],
        keys=_python(change.get("Keys")) or {},
        new_image=_python(change.get("NewImage")),
        old_image=_python(change.get("OldImage")),
        sequence_number=str(change["SequenceNumber"]),
        approximate_creation_time=DynamoDbStreamsApi.event_time(record),
        event_id=str(record.get("eventID", "")),
        shard_id=shard_id,
    )


class DynamoDbStreamsSourceOptions(ShardSourceOptions):
    """Options of :class:`DynamoDbStreamsSource` (see :class:`ShardSourceOptions`).

    ``initial_position`` is ``TRIM_HORIZON`` or ``LATEST`` (DynamoDB Streams has no
    ``AT_TIMESTAMP``); ``records_per_fetch`` is at most 1,000.
    """

    @model_validator(mode="after")
    def _check_dynamodb(self) -> DynamoDbStreamsSourceOptions:
        if self.initial_position == "AT_TIMESTAMP":
            raise ValueError("initial_position AT_TIMESTAMP is not supported by DynamoDB Streams")
        if self.records_per_fetch is not None and self.records_per_fetch > 1000:
            raise ValueError(f"records_per_fetch must be <= 1000, got {self.records_per_fetch}")
        return self


class _ChangeEmitter(ShardRecordEmitter[T]):
    def __init__(
        self, deserializer: Callable[[DynamoDbStreamRecord], T] | None, errors: Counter
    ) -> None:
        super().__init__(DynamoDbStreamsApi)
        self._deserializer = deserializer
        self._errors = errors

    @override
    def emit_records(
        self, records: Sequence[Record], output: ReaderOutput[T], shard_id: str
    ) -> None:
        collect = output.collect
        deserialize = self._deserializer
        for r in records:
            try:
                change = to_stream_record(r, shard_id)
                value = cast("T", change) if deserialize is None else deserialize(change)
            except Exception as exc:
                self._errors.inc()
                raise SerializationError(
                    f"dynamodb streams source: cannot convert the record "
                    f"{r.get('dynamodb', {}).get('SequenceNumber')} of shard {shard_id}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            collect(value, change.approximate_creation_time)


class DynamoDbStreamsSource(ShardSource[T], Generic[T]):
    """Reads the change events of a DynamoDB table from its stream; every shard is a split.

    Example::

        from headwater.connectors.aws import DynamoDbStreamsSource, DynamoDbStreamsSourceOptions

        source = DynamoDbStreamsSource(
            DynamoDbStreamsSourceOptions(stream_arn=table["LatestStreamArn"],
                                         initial_position="TRIM_HORIZON")
        )
        env.from_source(source).filter(lambda change: change.event_name == "REMOVE")

    Records are :class:`DynamoDbStreamRecord` values (``INSERT``, ``MODIFY``, ``REMOVE`` with the
    keys and the old and new images as Python values), or what ``record_deserializer`` makes of
    them. Guarantee and order as :class:`KinesisStreamsSource`: exactly-once reading, changes of
    one item in order, child shards after their parents, across restores.

    Args:
        options: the stream, the client, start position, discovery, polling.
        record_deserializer: turns a :class:`DynamoDbStreamRecord` into the emitted record.
    """

    api_class = DynamoDbStreamsApi

    def __init__(
        self,
        options: DynamoDbStreamsSourceOptions,
        *,
        record_deserializer: Callable[[DynamoDbStreamRecord], T] | None = None,
    ) -> None:
        if not isinstance(options, DynamoDbStreamsSourceOptions):
            raise ConfigurationError(
                "dynamodb streams source: expected DynamoDbStreamsSourceOptions, "
                f"got {type(options).__name__}"
            )
        super().__init__(options)
        self._record_deserializer = record_deserializer

    @override
    def create_emitter(self, errors: Counter) -> ShardRecordEmitter[T]:
        return _ChangeEmitter(self._record_deserializer, errors)
