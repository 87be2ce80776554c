"""DynamoDbSink: puts and deletes to a DynamoDB table with BatchWriteItem (25 items per request)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from boto3.dynamodb.types import TypeSerializer
from headwater.connectors.aws._sink_base import (
    AwsSinkWriter,
    check_writer_limits,
)
from headwater.connectors.base import (
    AsyncSinkBase,
    AsyncSinkOptions,
    AsyncSinkWriter,
    ErrorPolicy,
    OptionsModel,
    SubmitResult,
)
from headwater.connectors.base.aws import AwsClientOptions
from headwater.core import (
    ConfigurationError,
    FatalError,
    JsonSerializer,
    SerializationError,
    VersionedSerializer,
    WriterInitContext,
)
from pydantic import Field, model_validator
from typing_extensions import override

__all__ = ["DynamoDbSink", "DynamoDbSinkOptions", "DynamoDbWriteRequest", "to_attribute_values"]

IN = TypeVar("IN")
"""The type of the records the sink consumes."""

MAX_ITEMS_PER_REQUEST = 25
MAX_BYTES_PER_REQUEST = 16 * 1024 * 1024
MAX_BYTES_PER_ITEM = 400 * 1024

_serializer = TypeSerializer()


def _plain(value: Any) -> Any:
    """Python values TypeSerializer accepts: floats become Decimals, tuples lists."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return {_plain(v) for v in value}
    return value


def to_attribute_values(item: Any) -> dict[str, Any]:
    """A dict or dataclass instance as DynamoDB typed JSON (``{"name": {"S": "..."}}``).

    Converted with boto3's ``TypeSerializer``; floats become ``Decimal`` first.
    """
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        item = dataclasses.asdict(item)
    if not isinstance(item, Mapping):
        raise SerializationError(
            f"dynamodb sink: expected a dict or a dataclass instance, got {type(item).__name__}"
        )
    try:
        return {str(name): _serializer.serialize(_plain(value)) for name, value in item.items()}
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"dynamodb sink: cannot convert an item: {exc}") from exc


@dataclass(frozen=True, slots=True)
class DynamoDbWriteRequest:
    """One write of a BatchWriteItem request: a put of a whole item, or a delete by key.

    ``attributes`` are DynamoDB typed JSON: the item of a put, the key of a delete. Build requests
    with :meth:`put` and :meth:`delete` from plain Python values.
    """

    type: Literal["put", "delete"]
    attributes: Mapping[str, Any]

    @classmethod
    def put(cls, item: Any) -> DynamoDbWriteRequest:
        """Put ``item`` (a dict or a dataclass instance), replacing an item with the same key."""
        return cls("put", to_attribute_values(item))

    @classmethod
    def delete(cls, key: Any) -> DynamoDbWriteRequest:
        """Delete the item with ``key`` (a dict or dataclass of the key attributes)."""
        return cls("delete", to_attribute_values(key))

    def request(self) -> dict[str, Any]:
        """The request as a BatchWriteItem ``RequestItems`` entry."""
        if self.type == "put":
            return {"PutRequest": {"Item": dict(self.attributes)}}
        return {"DeleteRequest": {"Key": dict(self.attributes)}}


def _to_request(record: Any) -> DynamoDbWriteRequest:
    """The default element converter: a request passes, anything else is put."""
    if isinstance(record, DynamoDbWriteRequest):
        return record
    return DynamoDbWriteRequest.put(record)


def _size(value: Any) -> int:
    """An estimate of the stored size of typed JSON (names and values), for the byte limits."""
    if isinstance(value, Mapping):
        return sum(len(str(k)) + _size(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(_size(v) for v in value) + 1
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, str):
        return len(value.encode())
    return 1


class DynamoDbWriterOptions(AsyncSinkOptions):
    """The ``writer`` option: connector-base's ``AsyncSinkOptions`` with DynamoDB's limits as defaults."""

    max_batch_size: int = AsyncSinkOptions.default("max_batch_size", MAX_ITEMS_PER_REQUEST)
    max_batch_size_in_bytes: int = AsyncSinkOptions.default(
        "max_batch_size_in_bytes", MAX_BYTES_PER_REQUEST
    )
    max_record_size_in_bytes: int | None = AsyncSinkOptions.default(
        "max_record_size_in_bytes", MAX_BYTES_PER_ITEM
    )


class DynamoDbSinkOptions(OptionsModel):
    """Options of :class:`DynamoDbSink`.

    Args:
        table_name: the table.
        key_attributes: the partition key and (optional) sort key names; requests of one batch
            with the same key are collapsed to the last one. ``None`` reads them with
            DescribeTable when the writer starts.
        client: region, endpoint, credentials and botocore retries.
        writer: batching, requests in flight, buffering and retries; a dict overrides only the
            fields it names. DynamoDB limits apply: at
            most 25 items and 16 MiB per request, 400 KB per item.
    """

    table_name: str = Field(min_length=1)
    key_attributes: tuple[str] | tuple[str, str] | None = None
    client: AwsClientOptions = AwsClientOptions()
    writer: DynamoDbWriterOptions = DynamoDbWriterOptions()

    @model_validator(mode="after")
    def _check(self) -> DynamoDbSinkOptions:
        check_writer_limits(
            self.writer, MAX_ITEMS_PER_REQUEST, MAX_BYTES_PER_REQUEST, MAX_BYTES_PER_ITEM
        )
        return self


class _DynamoDbWriter(AwsSinkWriter[IN, DynamoDbWriteRequest]):
    """Sends BatchWriteItem requests; collapses duplicate keys; sends ``UnprocessedItems`` again."""

    service = "dynamodb"
    connector = "dynamodb sink"

    def __init__(
        self,
        context: WriterInitContext,
        sink_options: DynamoDbSinkOptions,
        converter: Callable[[IN], DynamoDbWriteRequest],
        restored: Sequence[DynamoDbWriteRequest],
    ) -> None:
        super().__init__(context, sink_options, converter, restored)
        self._table = sink_options.table_name
        self._configured_keys = sink_options.key_attributes
        self._keys: asyncio.Future[tuple[str, ...]] | None = None

    async def _key_attributes(self) -> tuple[str, ...]:
        if self._configured_keys is not None:
            return self._configured_keys
        if self._keys is None:
            self._keys = asyncio.ensure_future(self._describe_keys())
        try:
            return await asyncio.shield(self._keys)
        except Exception:
            self._keys = None
            raise

    async def _describe_keys(self) -> tuple[str, ...]:
        described = await self.call("describe_table", "DescribeTable", TableName=self._table)
        schema = sorted(described["Table"]["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
        return tuple(str(k["AttributeName"]) for k in schema)

    def _key_of(self, attributes: Mapping[str, Any], names: tuple[str, ...]) -> tuple[str, ...]:
        try:
            return tuple(repr(sorted(attributes[n].items())) for n in names)
        except KeyError as exc:
            raise FatalError(
                f"dynamodb sink: a request lacks the key attribute {exc.args[0]!r} of table "
                f"{self._table!r}"
            ) from None

    @override
    async def submit_request_entries(
        self, entries: list[DynamoDbWriteRequest]
    ) -> SubmitResult[DynamoDbWriteRequest]:
        names = await self._key_attributes()
        latest: dict[tuple[str, ...], DynamoDbWriteRequest] = {}
        for entry in entries:  # the last write of a key wins, as it would if sent in order
            key = self._key_of(entry.attributes, names)
            latest.pop(key, None)
            latest[key] = entry
        response = await self.call(
            "batch_write_item",
            "BatchWriteItem",
            RequestItems={self._table: [e.request() for e in latest.values()]},
        )
        unprocessed = response.get("UnprocessedItems", {}).get(self._table, [])
        if not unprocessed:
            return SubmitResult.complete()
        retry = []
        for request in unprocessed:
            attributes = (
                request["PutRequest"]["Item"]
                if "PutRequest" in request
                else request["DeleteRequest"]["Key"]
            )
            retry.append(latest[self._key_of(attributes, names)])
        return SubmitResult.retry(retry)

    @override
    def size_in_bytes(self, entry: DynamoDbWriteRequest) -> int:
        return _size(entry.attributes)


def _json_safe(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode()}
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    return value


def _from_json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$b64"}:
            return base64.b64decode(value["$b64"])
        return {k: _from_json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json_safe(v) for v in value]
    return value


ENTRY_SERIALIZER: VersionedSerializer[DynamoDbWriteRequest] = JsonSerializer(
    version=1,
    to_json=lambda e: [e.type, _json_safe(e.attributes)],
    from_json=lambda _v, d: DynamoDbWriteRequest(d[0], _from_json_safe(d[1])),
)
"""Buffered requests in checkpoints, format 1: ``[type, typed JSON with bytes as {"$b64": ...}]``."""


class DynamoDbSink(AsyncSinkBase[IN, DynamoDbWriteRequest], Generic[IN]):
    """Writes puts and deletes to a DynamoDB table with BatchWriteItem. At-least-once.

    Example::

        from headwater.connectors.aws import DynamoDbSink, DynamoDbSinkOptions, DynamoDbWriteRequest

        sink = DynamoDbSink(DynamoDbSinkOptions(table_name="orders"))
        env.from_collection([{"id": "a", "total": 12.5}]).sink_to(sink)        # puts
        # or emit DynamoDbWriteRequest.delete({"id": "a"}) records for deletes

    Records are dicts or dataclass instances (put), or :class:`DynamoDbWriteRequest` values;
    values are converted with boto3's ``TypeSerializer`` (floats as ``Decimal``). Up to 25
    requests per BatchWriteItem; requests of one batch with the same key are collapsed to the
    last (DynamoDB refuses duplicate keys in one batch); ``UnprocessedItems`` are sent again.
    A missing table or denied access fails the job at once. Writes are idempotent puts and
    deletes, so the replay after a failure converges to the same table, unless requests of one key
    from different batches were in flight together (set ``writer.max_in_flight_requests=1`` to keep
    per-key order).

    Args:
        options: the table, the client and the writer's knobs.
        element_converter: turns a record into a :class:`DynamoDbWriteRequest` (default: requests
            pass, dicts and dataclasses are put).
        on_record_too_large: what happens to a record over ``writer.max_record_size_in_bytes``
            (the service's limit by default): ``None`` fails the job naming size, limit and
            option; :class:`SkipOnError` drops it, :class:`DeadLetterOnError` hands it over
            (both count it in ``numRecordsOutErrors``).
    """

    def __init__(
        self,
        options: DynamoDbSinkOptions,
        *,
        element_converter: Callable[[IN], DynamoDbWriteRequest] = _to_request,
        on_record_too_large: ErrorPolicy | None = None,
    ) -> None:
        if not isinstance(options, DynamoDbSinkOptions):
            raise ConfigurationError(
                f"dynamodb sink: expected DynamoDbSinkOptions, got {type(options).__name__}"
            )
        super().__init__(
            element_converter=element_converter,
            options=options.writer,
            on_record_too_large=on_record_too_large,
        )
        self.sink_options = options

    def __repr__(self) -> str:
        return f"DynamoDbSink({self.sink_options!r})"

    @override
    def create_async_writer(
        self, context: WriterInitContext, restored: Sequence[DynamoDbWriteRequest]
    ) -> AsyncSinkWriter[IN, DynamoDbWriteRequest]:
        return _DynamoDbWriter(context, self.sink_options, self.element_converter, restored)

    @override
    def entry_serializer(self) -> VersionedSerializer[DynamoDbWriteRequest]:
        return ENTRY_SERIALIZER
