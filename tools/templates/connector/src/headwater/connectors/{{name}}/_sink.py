"""The {{title}} sink on connector-base's async sink: the writer sends batches, the base does the rest.

The base owns batching, requests in flight, rate limiting, retries and the checkpointed buffer
(at-least-once). The writer turns a batch of entries into one request to {{title}} (the client
call to replace is in :meth:`_Writer.submit_request_entries`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from headwater.connectors.base import (
    AsyncSinkBase,
    AsyncSinkWriter,
    Format,
    JsonFormat,
    SubmitResult,
)
from headwater.connectors.{{name}}._client import ExampleClient
from headwater.connectors.{{name}}._options import {{class_prefix}}SinkOptions
from headwater.core import WriterInitContext

__all__ = ["{{class_prefix}}Sink"]

T = TypeVar("T")
"""The record type."""


class _Writer(AsyncSinkWriter[T, bytes]):
    """Appends each batch to the partition of its subtask."""

    def __init__(
        self, context: WriterInitContext, sink: {{class_prefix}}Sink[T], restored: Sequence[bytes]
    ) -> None:
        super().__init__(
            context,
            element_converter=sink.format.encode,
            options=sink.options,
            restored=restored,
        )
        self._sink_options = sink.options
        self._client = ExampleClient(sink.options.address)
        self._partition: int | None = None

    async def submit_request_entries(self, entries: list[bytes]) -> SubmitResult[bytes]:
        """One request: append ``entries``. An error raised here is retried if retryable."""
        log = self._sink_options.log
        if self._partition is None:
            self._partition = self.context.subtask_index % await self._client.partitions(log)
        await self._client.append(log, self._partition, entries)
        return SubmitResult.complete()

    def size_in_bytes(self, entry: bytes) -> int:
        """An entry's size: its payload."""
        return len(entry)

    def entry_payload(self, entry: bytes) -> bytes:
        """The payload, for the dead letter of an entry refused as too large."""
        return entry

    async def close(self) -> None:
        """Release the client."""
        await super().close()
        await self._client.close()


class {{class_prefix}}Sink(AsyncSinkBase[T, bytes], Generic[T]):
    """Writes records to a {{title}} log, encoded with ``format`` (JSON by default); at-least-once.

    Args:
        options: where to write, and the async sink's knobs.
        format: how a record becomes a payload.
    """

    def __init__(
        self, options: {{class_prefix}}SinkOptions, *, format: Format[Any] | None = None
    ) -> None:
        self.format: Format[Any] = format or JsonFormat()
        super().__init__(element_converter=self.format.encode, options=options)
        self.options: {{class_prefix}}SinkOptions = options

    def create_async_writer(
        self, context: WriterInitContext, restored: Sequence[bytes]
    ) -> _Writer[T]:
        """A writer for one subtask."""
        return _Writer(context, self, restored)
