"""FirehoseSink: records to an Amazon Data Firehose delivery stream with PutRecordBatch."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
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
from pydantic import Field, model_validator
from typing_extensions import override

__all__ = ["FirehoseSink", "FirehoseSinkOptions"]

IN = TypeVar("IN")
"""The type of the records the sink consumes."""

MAX_RECORDS_PER_REQUEST = 500
MAX_BYTES_PER_REQUEST = 4 * 1024 * 1024
MAX_BYTES_PER_RECORD = 1000 * 1024


class FirehoseWriterOptions(AsyncSinkOptions):
    """The ``writer`` option: connector-base's ``AsyncSinkOptions`` with Firehose's limits as defaults."""

    max_batch_size: int = AsyncSinkOptions.default("max_batch_size", MAX_RECORDS_PER_REQUEST)
    max_batch_size_in_bytes: int = AsyncSinkOptions.default(
        "max_batch_size_in_bytes", MAX_BYTES_PER_REQUEST
    )
    max_record_size_in_bytes: int | None = AsyncSinkOptions.default(
        "max_record_size_in_bytes", MAX_BYTES_PER_RECORD
    )


class FirehoseSinkOptions(OptionsModel):
    """Options of :class:`FirehoseSink`.

    Args:
        delivery_stream_name: the delivery stream.
        client: region, endpoint, credentials and botocore retries.
        writer: batching, requests in flight, buffering and retries; a dict overrides only the
            fields it names. Firehose limits apply: at
            most 500 records and 4 MiB per request, 1,000 KiB per record.
        fail_on_error: fail the job when entries of a request fail instead of sending them again.
    """

    delivery_stream_name: str = Field(min_length=1)
    client: AwsClientOptions = AwsClientOptions()
    writer: FirehoseWriterOptions = FirehoseWriterOptions()
    fail_on_error: bool = False

    @model_validator(mode="after")
    def _check(self) -> FirehoseSinkOptions:
        check_writer_limits(
            self.writer, MAX_RECORDS_PER_REQUEST, MAX_BYTES_PER_REQUEST, MAX_BYTES_PER_RECORD
        )
        return self


class _FirehoseWriter(AwsSinkWriter[IN, bytes]):
    """Sends PutRecordBatch requests; only the entries with an ``ErrorCode`` are sent again."""

    service = "firehose"
    connector = "firehose sink"

    def __init__(
        self,
        context: WriterInitContext,
        sink_options: FirehoseSinkOptions,
        converter: Callable[[IN], bytes],
        restored: Sequence[bytes],
    ) -> None:
        super().__init__(context, sink_options, converter, restored)
        self._stream = sink_options.delivery_stream_name
        self._fail_on_error = sink_options.fail_on_error

    @override
    async def submit_request_entries(self, entries: list[bytes]) -> SubmitResult[bytes]:
        response = await self.call(
            "put_record_batch",
            "PutRecordBatch",
            DeliveryStreamName=self._stream,
            Records=[{"Data": data} for data in entries],
        )
        if not response.get("FailedPutCount"):
            return SubmitResult.complete()
        return self.outcome(
            entries, refusals(response["RequestResponses"]), fail_on_error=self._fail_on_error
        )

    @override
    def size_in_bytes(self, entry: bytes) -> int:
        return len(entry)

    @override
    def entry_payload(self, entry: bytes) -> bytes:
        return entry


ENTRY_SERIALIZER: VersionedSerializer[bytes] = JsonSerializer(
    version=1,
    to_json=lambda e: base64.b64encode(e).decode(),
    from_json=lambda _v, d: base64.b64decode(d),
)
"""Buffered entries in checkpoints, format 1: the base64 payload."""


class FirehoseSink(AsyncSinkBase[IN, bytes], Generic[IN]):
    """Writes records to a Firehose delivery stream with PutRecordBatch. At-least-once.

    Example::

        sink = FirehoseSink(FirehoseSinkOptions(delivery_stream_name="events"),
                            value_format=JsonFormat())

    Batches of up to 500 records and 4 MiB; entries PutRecordBatch reports as failed are sent
    again, nothing else; a missing delivery stream or denied access fails the job at once. The
    buffer is kept in checkpoints, so records may be delivered twice after a failure, never lost.

    Args:
        options: the delivery stream, the client and the writer's knobs.
        value_format: turns a record into the payload (default: :class:`RawFormat`, for ``bytes``).
        on_record_too_large: what happens to a record over ``writer.max_record_size_in_bytes``
            (the service's limit by default): ``None`` fails the job naming size, limit and
            option; :class:`SkipOnError` drops it, :class:`DeadLetterOnError` hands it over
            (both count it in ``numRecordsOutErrors``).
    """

    def __init__(
        self,
        options: FirehoseSinkOptions,
        *,
        value_format: Format[IN] | None = None,
        on_record_too_large: ErrorPolicy | None = None,
    ) -> None:
        if not isinstance(options, FirehoseSinkOptions):
            raise ConfigurationError(
                f"firehose sink: expected FirehoseSinkOptions, got {type(options).__name__}"
            )
        fmt: Format[Any] = value_format if value_format is not None else RawFormat()
        super().__init__(
            element_converter=fmt.encode,
            options=options.writer,
            on_record_too_large=on_record_too_large,
        )
        self.sink_options = options

    def __repr__(self) -> str:
        return f"FirehoseSink({self.sink_options!r})"

    @override
    def create_async_writer(
        self, context: WriterInitContext, restored: Sequence[bytes]
    ) -> AsyncSinkWriter[IN, bytes]:
        return _FirehoseWriter(context, self.sink_options, self.element_converter, restored)

    @override
    def entry_serializer(self) -> VersionedSerializer[bytes]:
        return ENTRY_SERIALIZER
