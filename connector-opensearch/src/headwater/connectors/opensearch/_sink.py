"""OpenSearchSink: bulk writes on connector-base's async sink base, with retries per failed item.

Example::

    from headwater.connectors.opensearch import (
        OpenSearchClientOptions, OpenSearchSink, OpenSearchSinkOptions,
    )

    sink = OpenSearchSink(OpenSearchSinkOptions(
        client=OpenSearchClientOptions(hosts=("http://localhost:9200",)),
        index="orders-{created:%Y.%m}",
        id_fields=("order_id",),
    ))
    orders.sink_to(sink)

Each record becomes one bulk action (:class:`BulkAction`, encoded once); the base cuts bulk
requests by actions, bytes and time and keeps AIMD-limited requests in flight. The answer of a
bulk request is read item by item:

- 2xx, a 404 on ``delete`` (already gone), and with ``version_field`` a 409 version conflict (the
  index holds this or a newer version): done;
- 429, 5xx and ``es_rejected_execution_exception``: only those items are sent again, after a
  backoff from the writer's retry policy counted per item (connector-base's async sink does
  both; its AIMD limit shrinks by the share of a bulk's items that were refused);
- any other 4xx (mapping errors, strict mappings, 409 on ``create``, refused index names): the
  error policy (fail, skip, dead letter) with the index, id, status and reason.

A whole request refused with 413 (too large for the server) is split in halves; a single action
the server refuses as too large goes to the error policy. Connection errors, timeouts, 429 and
5xx of the whole request are retried by the base with backoff; other errors fail the task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from headwater.connectors.base import (
    AsyncSinkBase,
    AsyncSinkWriter,
    DeadLetter,
    ErrorPolicy,
    FailOnError,
    SubmitResult,
)
from headwater.connectors.opensearch._actions import ACTION_SERIALIZER, BulkAction, DocumentEmitter
from headwater.connectors.opensearch._client import (
    RETRYABLE_STATUS,
    Masker,
    create_client,
    status_of,
    translate,
)
from headwater.connectors.opensearch._options import OpenSearchSinkOptions
from headwater.core import (
    ConfigurationError,
    DeliveryGuarantee,
    FatalError,
    RetryableError,
    VersionedSerializer,
    WriterInitContext,
)
from opensearchpy import AsyncOpenSearch
from typing_extensions import override

__all__ = ["BulkRejectedError", "OpenSearchSink"]

IN = TypeVar("IN")
"""The type of the records the sink consumes."""

_REJECTED_EXECUTION = "es_rejected_execution_exception"
_VERSION_CONFLICT = "version_conflict_engine_exception"


class BulkRejectedError(FatalError):
    """The server refused a bulk action for good and the error policy is to fail."""


def _reason(item: Mapping[str, Any]) -> tuple[str, str]:
    error = item.get("error")
    if isinstance(error, Mapping):
        return str(error.get("type", "")), str(error.get("reason", ""))
    return "", "" if error is None else str(error)


class _BulkWriter(AsyncSinkWriter[IN, BulkAction]):
    """Sends bulk requests with ``AsyncOpenSearch`` and sorts the answer item by item."""

    def __init__(
        self,
        context: WriterInitContext,
        options: OpenSearchSinkOptions,
        converter: Callable[[IN], BulkAction],
        restored: Sequence[BulkAction],
        error_policy: ErrorPolicy,
    ) -> None:
        super().__init__(
            context,
            element_converter=converter,
            options=options.writer,
            restored=restored,
        )
        self._sink_options = options
        self._mask = Masker(options.client)
        self._client: AsyncOpenSearch | None = None
        self._params = {"refresh": options.refresh}
        self._external_versions = options.version_field is not None
        self._no_guarantee = options.delivery_guarantee is DeliveryGuarantee.NONE
        self._policy = error_policy
        group = context.metric_group
        self._rejected = group.counter("numRecordsRejected")
        self._stale = group.counter("numStaleVersionsIgnored")
        self._item_retries = group.counter("numItemRetries")

    @property
    def client(self) -> AsyncOpenSearch:
        """The client (built on first use, on the writer's event loop)."""
        if self._client is None:
            self._client = create_client(self._sink_options.client)
        return self._client

    @override
    def size_in_bytes(self, entry: BulkAction) -> int:
        return len(entry.lines)

    @override
    async def submit_request_entries(self, entries: list[BulkAction]) -> SubmitResult[BulkAction]:
        try:
            answer = await self.client.bulk(
                body=b"".join(e.lines for e in entries), params=self._params
            )
        except Exception as exc:
            if status_of(exc) == 413:
                return await self._too_large(entries)
            raise translate(exc, f"a bulk request of {len(entries)} actions", self._mask) from None
        if not answer.get("errors"):
            return SubmitResult.complete()
        return await self._sort_items(entries, answer["items"])

    async def _too_large(self, entries: list[BulkAction]) -> SubmitResult[BulkAction]:
        """413: send the halves one after the other; a single action goes to the error policy."""
        if len(entries) == 1:
            entry = entries[0]
            error = self._reject(entry, 413, "request_entity_too_large", "the server's limit")
            return SubmitResult.complete() if error is None else SubmitResult.fail(error)
        middle = len(entries) // 2
        retry: list[BulkAction] = []
        for half in (entries[:middle], entries[middle:]):
            result = await self.submit_request_entries(half)
            if result.error is not None:
                return result
            retry += result.retry_entries
        return SubmitResult.retry(retry) if retry else SubmitResult.complete()

    async def _sort_items(
        self, entries: list[BulkAction], items: Sequence[Mapping[str, Any]]
    ) -> SubmitResult[BulkAction]:
        retry: list[BulkAction] = []
        for entry, item in zip(entries, items, strict=True):
            ((_, result),) = item.items()
            status = int(result.get("status", 500))
            if status < 300:
                continue
            kind, reason = _reason(result)
            if status in RETRYABLE_STATUS or status >= 500 or kind == _REJECTED_EXECUTION:
                retry.append(entry)
                continue
            if status == 404 and entry.action == "delete":
                continue  # already gone: a replayed delete
            if status == 409 and kind == _VERSION_CONFLICT and self._external_versions:
                self._stale.inc()  # the index holds this version or a newer one
                continue
            error = self._reject(entry, status, kind, reason)
            if error is not None:
                return SubmitResult.fail(error)
        if not retry:
            return SubmitResult.complete()
        self._item_retries.inc(len(retry))
        return SubmitResult.retry(
            retry,
            RetryableError(
                f"opensearch sink: {len(retry)} bulk item(s) throttled or failed on the server "
                f"(first: index {retry[0].index!r} id {retry[0].id!r})"
            ),
        )

    def _reject(self, entry: BulkAction, status: int, kind: str, reason: str) -> Exception | None:
        """Hand a refused action to the error policy; the error to fail with, if it says so."""
        self._rejected.inc()
        where = f"index {entry.index!r} id {entry.id!r}"
        text = self._mask(f"{status} {kind}: {reason}")
        if isinstance(self._policy, FailOnError):
            return BulkRejectedError(
                f"opensearch sink: the server refused the {entry.action} of {where}: {text}"
            )
        letter = DeadLetter(payload=entry.lines, error=text, format="opensearch", position=where)
        try:
            self._policy.handle(letter, BulkRejectedError(text))
        except Exception as exc:
            return exc
        return None

    @override
    async def flush(self, end_of_input: bool) -> None:
        """With ``none``, checkpoints do not wait for requests in flight."""
        if self._no_guarantee and not end_of_input:
            self._raise_if_failed()
            return
        await super().flush(end_of_input)

    @override
    def snapshot_state(self, checkpoint_id: int) -> list[Any]:
        """The buffered actions (nothing with ``none``)."""
        return [] if self._no_guarantee else super().snapshot_state(checkpoint_id)

    @override
    async def close(self) -> None:
        """Cancel requests in flight, then close the client."""
        await super().close()
        client, self._client = self._client, None
        if client is not None:
            await client.close()


class OpenSearchSink(AsyncSinkBase[IN, BulkAction], Generic[IN]):
    """Writes records to OpenSearch or Elasticsearch with bulk requests.

    Delivery: ``at_least_once`` (default) sends every buffered action before a checkpoint
    completes and keeps the unsent ones in it. With ``id_fields`` every replay rewrites the same
    documents, so the index holds each document once (with ``version_field``, at its highest
    version); without ids each replay adds copies. ``none`` does not wait at checkpoints.

    Args:
        options: the client, the target index, the action, ids and the writer's knobs.
        to_document: turns a record into its document (a mapping) for the default emitter;
            default: dicts pass, dataclass instances become dicts.
        emitter: replaces the default emitter: turns a record into a :class:`BulkAction`
            (build it with :meth:`BulkAction.of`). Exclusive with ``to_document``.
        error_policy: what happens to actions the server refuses for good: fail the job
            (:class:`FailOnError`, default), drop and count them (:class:`SkipOnError`) or hand
            them to a collector as :class:`DeadLetter` values (:class:`DeadLetterOnError`).
    """

    def __init__(
        self,
        options: OpenSearchSinkOptions,
        *,
        to_document: Callable[[IN], Mapping[str, Any]] | None = None,
        emitter: Callable[[IN], BulkAction] | None = None,
        error_policy: ErrorPolicy | None = None,
    ) -> None:
        if not isinstance(options, OpenSearchSinkOptions):
            raise ConfigurationError(
                f"opensearch sink: expected OpenSearchSinkOptions, got {type(options).__name__}"
            )
        if emitter is not None and to_document is not None:
            raise ConfigurationError("opensearch sink: set at most one of emitter and to_document")
        converter = emitter or DocumentEmitter(options, to_document)
        super().__init__(element_converter=converter, options=options.writer)
        self.sink_options = options
        self.error_policy = error_policy or FailOnError()

    def __repr__(self) -> str:
        return f"OpenSearchSink(index={self.sink_options.index!r})"

    @override
    def create_async_writer(
        self, context: WriterInitContext, restored: Sequence[BulkAction]
    ) -> AsyncSinkWriter[IN, BulkAction]:
        return _BulkWriter(
            context, self.sink_options, self.element_converter, restored, self.error_policy
        )

    @override
    def entry_serializer(self) -> VersionedSerializer[BulkAction]:
        return ACTION_SERIALIZER
