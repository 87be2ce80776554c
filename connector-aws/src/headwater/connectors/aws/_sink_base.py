"""What the three AWS sinks share: a boto3 client on connector-base's blocking-client sink writer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from headwater.connectors.base import AsyncSinkOptions, BlockingClientSinkWriter
from headwater.connectors.base.aws import AwsClientOptions, translate
from headwater.core import WriterInitContext
from typing_extensions import override

__all__ = [
    "AwsSinkOptions",
    "AwsSinkWriter",
    "check_writer_limits",
    "refusals",
]

IN = TypeVar("IN")
"""The type of the records the sink consumes."""
E = TypeVar("E")
"""The request entry type."""


class AwsSinkOptions(Protocol):
    """What every AWS sink's options model has: client settings and async-sink knobs."""

    @property
    def client(self) -> AwsClientOptions:
        """Region, endpoint, credentials and botocore retries."""
        ...

    @property
    def writer(self) -> AsyncSinkOptions:
        """Batching, requests in flight, buffering and retries."""
        ...


class AwsSinkWriter(BlockingClientSinkWriter[IN, E], Generic[IN, E]):
    """A blocking-client sink writer whose client is a boto3 client of :attr:`service`.

    connector-base's :class:`BlockingClientSinkWriter` builds it on the thread pool at the first
    request and runs each call there; errors are translated (throttling, 5xx and connection errors
    are retryable, the rest fatal).
    """

    service: ClassVar[str]
    """The boto3 service name (``kinesis``, ``firehose``, ``dynamodb``)."""

    def __init__(
        self,
        context: WriterInitContext,
        sink_options: AwsSinkOptions,
        converter: Callable[[IN], E],
        restored: Sequence[E] = (),
    ) -> None:
        super().__init__(
            context, element_converter=converter, options=sink_options.writer, restored=restored
        )
        self._client_options = sink_options.client

    @override
    def create_client(self) -> Any:
        """A boto3 client of :attr:`service` with the sink's client options."""
        return self._client_options.create_client(self.service)

    @override
    def translate_error(self, error: Exception, operation: str) -> Exception:
        """A :class:`RetryableError` or :class:`FatalError` naming the AWS error code."""
        return translate(error, self.connector, operation)


def check_writer_limits(
    writer: AsyncSinkOptions, records: int, request_bytes: int, record_bytes: int
) -> None:
    """Refuse writer options beyond a service's limits (raises ``ValueError`` naming the option)."""
    if writer.max_batch_size > records:
        raise ValueError(f"writer.max_batch_size must be <= {records}, got {writer.max_batch_size}")
    if writer.max_batch_size_in_bytes > request_bytes:
        raise ValueError(
            f"writer.max_batch_size_in_bytes must be <= {request_bytes}, "
            f"got {writer.max_batch_size_in_bytes}"
        )
    if writer.max_record_size_in_bytes is None or writer.max_record_size_in_bytes > record_bytes:
        raise ValueError(
            f"writer.max_record_size_in_bytes must be set and <= {record_bytes}, "
            f"got {writer.max_record_size_in_bytes}"
        )


def refusals(results: Sequence[dict[str, Any]]) -> list[str | None]:
    """The per-entry refusals of a batch answer whose failed entries carry an ``ErrorCode``."""
    return [
        f"{r['ErrorCode']}: {r.get('ErrorMessage', '')}" if r.get("ErrorCode") else None
        for r in results
    ]
