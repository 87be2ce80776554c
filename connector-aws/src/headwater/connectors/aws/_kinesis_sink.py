"""KinesisStreamsSink: records to a Kinesis data stream with PutRecords, through the async sink base."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from headwater.connectors.aws._sink_base import (
    AwsSinkWriter,
    check_writer_limits,
    refusals,
)
from headwater.connectors.base import (
    AsyncSinkBase,
    AsyncSinkOptions,
    AsyncSinkWriter,
    ErrorPolicy,
    Format,
    OptionsModel,
    RawFormat,
    SubmitResult,
)
from headwater.connectors.base.aws import AwsClientOptions
from headwater.core import (
    ConfigurationError,
    JsonSerializer,
    VersionedSerializer,
    WriterInitContext,
)
from pydantic import model_validator
from typing_extensions import override

__all__ = [
    "KinesisEntry",
    "KinesisStreamsSink",
    "KinesisStreamsSinkOptions",
    "random_partition_key",
]

IN = TypeVar("IN")
"""The type of the records the sink consumes."""

_MIB = 1024 * 1024
MAX_RECORDS_PER_REQUEST = 500
MAX_BYTES_PER_REQUEST = 5 * _MIB
MAX_BYTES_PER_RECORD = 1 * _MIB


def random_partition_key(record: object) -> str:
    """A random partition key (a UUID): records spread evenly over the shards, in no order."""
    del record
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class KinesisEntry:
    """One PutRecords entry: the payload, its partition key and an optional explicit hash key."""

    data: bytes
    partition_key: str
    explicit_hash_key: str | None = None

    def request(self) -> dict[str, Any]:
        """The entry as a PutRecords ``Records`` item."""
        item: dict[str, Any] = {"Data": self.data, "PartitionKey": self.partition_key}
        if self.explicit_hash_key is not None:
            item["ExplicitHashKey"] = self.explicit_hash_key
        return item


class KinesisWriterOptions(AsyncSinkOptions):
    """The ``writer`` option: connector-base's ``AsyncSinkOptions`` with Kinesis's limits as defaults."""

    max_batch_size: int = AsyncSinkOptions.default("max_batch_size", MAX_RECORDS_PER_REQUEST)
    max_batch_size_in_bytes: int = AsyncSinkOptions.default(
        "max_batch_size_in_bytes", MAX_BYTES_PER_REQUEST
    )
    max_record_size_in_bytes: int | None = AsyncSinkOptions.default(
        "max_record_size_in_bytes", MAX_BYTES_PER_RECORD
    )


class KinesisStreamsSinkOptions(OptionsModel):
    """Options of :class:`KinesisStreamsSink`.

    Args:
        stream_arn: the stream's ARN (preferred); exclusive with ``stream_name``.
        stream_name: the stream's name, in the client's account and region.
        client: region, endpoint, credentials and botocore retries.
        writer: batching, requests in flight, buffering and retries; a dict overrides only the
            fields it names. Kinesis limits apply: at most
            500 records and 5 MiB per request, 1 MiB per record (payload plus partition key).
        fail_on_error: fail the job when entries of a request fail (``True``) instead of sending
            them again (``False``, the default).
    """

    stream_arn: str | None = None
    stream_name: str | None = None
    client: AwsClientOptions = AwsClientOptions()
    writer: KinesisWriterOptions = KinesisWriterOptions()
    fail_on_error: bool = False

    @model_validator(mode="after")
    def _check(self) -> KinesisStreamsSinkOptions:
        if (self.stream_arn is None) == (self.stream_name is None):
            raise ValueError("set exactly one of stream_arn and stream_name")
        check_writer_limits(
            self.writer, MAX_RECORDS_PER_REQUEST, MAX_BYTES_PER_REQUEST, MAX_BYTES_PER_RECORD
        )
        return self

    def target(self) -> dict[str, str]:
        """The stream parameter of a Kinesis call."""
        if self.stream_arn is not None:
            return {"StreamARN": self.stream_arn}
        assert self.stream_name is not None
        return {"StreamName": self.stream_name}


@dataclass(frozen=True, slots=True)
class _KinesisConverter(Generic[IN]):
    value_format: Format[IN]
    partition_key_generator: Callable[[IN], str]

    def __call__(self, record: IN) -> KinesisEntry:
        return KinesisEntry(self.value_format.encode(record), self.partition_key_generator(record))


class _KinesisStreamsWriter(AwsSinkWriter[IN, KinesisEntry]):
    """Sends PutRecords requests; only the entries with an ``ErrorCode`` are sent again."""

    service = "kinesis"
    connector = "kinesis sink"

    def __init__(
        self,
        context: WriterInitContext,
        sink_options: KinesisStreamsSinkOptions,
        converter: Callable[[IN], KinesisEntry],
        restored: Sequence[KinesisEntry],
    ) -> None:
        super().__init__(context, sink_options, converter, restored)
        self._target = sink_options.target()
        self._fail_on_error = sink_options.fail_on_error

    @override
    async def submit_request_entries(
        self, entries: list[KinesisEntry]
    ) -> SubmitResult[KinesisEntry]:
        response = await self.call(
            "put_records", "PutRecords", Records=[e.request() for e in entries], **self._target
        )
        if not response.get("FailedRecordCount"):
            return SubmitResult.complete()
        return self.outcome(
            entries, refusals(response["Records"]), fail_on_error=self._fail_on_error
        )

    @override
    def size_in_bytes(self, entry: KinesisEntry) -> int:
        return len(entry.data) + len(entry.partition_key.encode())

    @override
    def entry_payload(self, entry: KinesisEntry) -> bytes:
        return entry.data


ENTRY_SERIALIZER: VersionedSerializer[KinesisEntry] = JsonSerializer(
    version=1,
    to_json=lambda e: [base64.b64encode(e.data).decode(), e.partition_key, e.explicit_hash_key],
    from_json=lambda _v, d: KinesisEntry(base64.b64decode(d[0]), str(d[1]), d[2]),
)
"""Buffered entries in checkpoints, format 1: ``[base64 data, partition key, explicit hash key]``."""


class KinesisStreamsSink(AsyncSinkBase[IN, KinesisEntry], Generic[IN]):
    """Writes records to a Kinesis data stream with PutRecords. At-least-once.

    Example::

        from headwater.connectors.aws import KinesisStreamsSink, KinesisStreamsSinkOptions

        sink = KinesisStreamsSink(
            KinesisStreamsSinkOptions(stream_arn="arn:aws:kinesis:eu-west-1:123456789012:stream/out"),
            value_format=JsonFormat(),                     # from headwater.connectors.base
            partition_key_generator=lambda order: order["customer"],
        )
        env.from_source(...).sink_to(sink)

    Records are batched (up to 500 records and 5 MiB per request), up to
    ``writer.max_in_flight_requests`` requests run at once on the job's thread pool. Entries that
    PutRecords reports as failed (``ErrorCode``, e.g. throttling) go back to the front of the buffer
    and are sent again; nothing else is resent. A missing stream or denied access fails the job at
    once. At each checkpoint the writer waits for the requests in flight and keeps the entries
    still buffered in the checkpoint, so after a failure records may be written twice, never lost.
    Order: records of one partition key keep their order only with ``max_in_flight_requests=1``
    (and even then a retried entry lands after entries sent later).

    Args:
        options: the stream, the client and the writer's knobs.
        value_format: turns a record into the payload (default: :class:`RawFormat`, for ``bytes``).
        partition_key_generator: the partition key of a record (default: a random key).
        on_record_too_large: what happens to a record over ``writer.max_record_size_in_bytes``
            (the service's limit by default): ``None`` fails the job naming size, limit and
            option; :class:`SkipOnError` drops it, :class:`DeadLetterOnError` hands it over
            (both count it in ``numRecordsOutErrors``).
    """

    def __init__(
        self,
        options: KinesisStreamsSinkOptions,
        *,
        value_format: Format[IN] | None = None,
        partition_key_generator: Callable[[IN], str] = random_partition_key,
        on_record_too_large: ErrorPolicy | None = None,
    ) -> None:
        if not isinstance(options, KinesisStreamsSinkOptions):
            raise ConfigurationError(
                f"kinesis sink: expected KinesisStreamsSinkOptions, got {type(options).__name__}"
            )
        fmt: Format[Any] = value_format if value_format is not None else RawFormat()
        super().__init__(
            element_converter=_KinesisConverter(fmt, partition_key_generator),
            options=options.writer,
            on_record_too_large=on_record_too_large,
        )
        self.sink_options = options

    def __repr__(self) -> str:
        return f"KinesisStreamsSink({self.sink_options!r})"

    @override
    def create_async_writer(
        self, context: WriterInitContext, restored: Sequence[KinesisEntry]
    ) -> AsyncSinkWriter[IN, KinesisEntry]:
        return _KinesisStreamsWriter(context, self.sink_options, self.element_converter, restored)

    @override
    def entry_serializer(self) -> VersionedSerializer[KinesisEntry]:
        return ENTRY_SERIALIZER
