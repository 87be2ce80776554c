"""What the three AWS sinks share: a lazily built boto3 client and calls on the job's thread pool."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from headwater.connectors.aws._aws import AwsClientOptions, translate
from headwater.connectors.base import AsyncSinkOptions, AsyncSinkWriter, SubmitResult
from headwater.core import FatalError, WriterInitContext
from typing_extensions import override

__all__ = [
    "AwsSinkOptions",
    "AwsSinkWriter",
    "check_writer_limits",
    "per_entry_outcome",
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


class AwsSinkWriter(AsyncSinkWriter[IN, E], Generic[IN, E]):
    """An async sink writer whose requests are boto3 calls run on the job's bounded thread pool.

    The client is built on the thread pool at the first request (building one blocks). Each
    request is one blocking call on a pool thread, so at most ``max_in_flight_requests`` calls run
    at once (fewer if the pool is smaller). Errors are translated: retryable ones (throttling,
    5xx, connection errors) are retried by the base with backoff, fatal ones fail the task.
    """

    service: ClassVar[str]
    """The boto3 service name (``kinesis``, ``firehose``, ``dynamodb``)."""
    connector: ClassVar[str]
    """The connector name used in error messages."""

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
        self._client: asyncio.Future[Any] | None = None

    async def client(self) -> Any:
        """The boto3 client (built on first use, on the thread pool)."""
        if self._client is None:
            self._client = asyncio.ensure_future(
                self.context.run_blocking(self._client_options.create_client, self.service)
            )
        try:
            return await asyncio.shield(self._client)
        except Exception as exc:
            self._client = None
            raise translate(exc, self.connector, "creating the client") from exc

    async def call(self, method: str, operation: str, **kwargs: Any) -> dict[str, Any]:
        """Run ``client.<method>(**kwargs)`` on the thread pool; errors are translated."""
        client = await self.client()
        try:
            result: dict[str, Any] = await self.context.run_blocking(
                functools.partial(getattr(client, method), **kwargs)
            )
        except Exception as exc:
            raise translate(exc, self.connector, operation) from exc
        return result

    @override
    async def close(self) -> None:
        """Cancel requests in flight, then close the client."""
        await super().close()
        client = self._client
        if (
            client is not None
            and client.done()
            and not client.cancelled()
            and client.exception() is None
        ):
            client.result().close()
        self._client = None


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


def per_entry_outcome(
    connector: str, entries: list[E], results: Sequence[dict[str, Any]], fail_on_error: bool
) -> SubmitResult[E]:
    """The outcome of a batch call whose per-entry ``results`` carry an ``ErrorCode`` on failure.

    The failed entries are sent again, or (``fail_on_error``) the task fails naming the first error.
    """
    failed = [e for e, r in zip(entries, results, strict=True) if r.get("ErrorCode")]
    if not failed:
        return SubmitResult.complete()
    if fail_on_error:
        first = next(r for r in results if r.get("ErrorCode"))
        return SubmitResult.fail(
            FatalError(
                f"{connector}: {len(failed)} of {len(entries)} entries failed (first: "
                f"{first['ErrorCode']}: {first.get('ErrorMessage', '')}) and option "
                "'fail_on_error' is set"
            )
        )
    return SubmitResult.retry(failed)
