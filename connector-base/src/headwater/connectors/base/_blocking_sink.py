"""The async sink writer of a blocking client: a lazy client, calls on the bounded thread pool.

For systems whose client blocks (boto3, pymongo's sync API, the Cassandra driver's sync calls):
the connector names how to build the client and what a request is; the base builds the client on
the thread pool at the first request, runs every call there (at most as many at once as the
job's pool allows), translates errors, reports per-entry outcomes and closes the client.
"""

from __future__ import annotations

import asyncio
import functools
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from headwater.connectors.base._async_sink import AsyncSinkWriter, SubmitResult
from headwater.core import FatalError, RetryableError
from typing_extensions import override

__all__ = ["BlockingClientSinkWriter"]

IN = TypeVar("IN")
"""The type of the records the sink consumes."""
E = TypeVar("E")
"""The request entry type."""


class BlockingClientSinkWriter(AsyncSinkWriter[IN, E], Generic[IN, E]):
    """An async sink writer whose requests are calls of a blocking client on the job's thread pool.

    A connector implements :meth:`create_client` (blocking; runs on the pool),
    :meth:`submit_request_entries` with :meth:`call` and :meth:`outcome`, and
    :meth:`size_in_bytes`; it may override :meth:`translate_error` (a client error to a
    :class:`~headwater.core.RetryableError` or :class:`~headwater.core.FatalError` naming the
    connector and operation) and :meth:`close_client`. Example::

        class TableWriter(BlockingClientSinkWriter[Row, Item]):
            connector = "dynamodb sink"

            def create_client(self) -> Any:
                return boto3.client("dynamodb")

            async def submit_request_entries(self, entries: list[Item]) -> SubmitResult[Item]:
                answer = await self.call("batch_write", "writing items", items=entries)
                return self.outcome(entries, [r.get("error") for r in answer["results"]])

    The client is built once, at the first request (concurrent first requests share the build;
    a failed build is tried again at the next request). Each :meth:`call` is one blocking call on
    a pool thread, so at most ``max_in_flight_requests`` calls run at once (fewer if the pool is
    smaller). Retryable errors are retried by the base with backoff, fatal ones fail the task.
    """

    connector: ClassVar[str]
    """The connector's name in error messages (``"kinesis sink"``)."""

    _client_future: asyncio.Future[Any] | None = None

    @abstractmethod
    def create_client(self) -> Any:
        """Build the client (blocking; called on the thread pool)."""

    def translate_error(self, error: Exception, operation: str) -> Exception:
        """The error to raise for a client ``error`` during ``operation`` (default: unchanged).

        Return a :class:`~headwater.core.RetryableError` or :class:`~headwater.core.FatalError`
        naming :attr:`connector` and ``operation``, with secrets masked.
        """
        return error

    def close_client(self, client: Any) -> None:
        """Release the client (default: its ``close()``, if it has one)."""
        close = getattr(client, "close", None)
        if close is not None:
            close()

    async def client(self) -> Any:
        """The client (built on first use, on the thread pool)."""
        if self._client_future is None:
            self._client_future = asyncio.ensure_future(
                self.context.run_blocking(self.create_client)
            )
        try:
            return await asyncio.shield(self._client_future)
        except Exception as exc:
            self._client_future = None
            raise self.translate_error(exc, "creating the client") from exc

    async def call(self, method: str | Callable[..., Any], operation: str, **kwargs: Any) -> Any:
        """Run ``client.<method>(**kwargs)`` (or ``method(client, **kwargs)``) on the thread pool.

        Errors go through :meth:`translate_error` with ``operation`` (what the call does, for the
        message).
        """
        client = await self.client()
        if isinstance(method, str):
            function = functools.partial(getattr(client, method), **kwargs)
        else:
            function = functools.partial(method, client, **kwargs)
        try:
            return await self.context.run_blocking(function)
        except Exception as exc:
            raise self.translate_error(exc, operation) from exc

    def outcome(
        self, entries: list[E], refusals: Sequence[str | None], *, fail_on_error: bool = False
    ) -> SubmitResult[E]:
        """The outcome of a batch call from its per-entry refusals (``None`` for accepted).

        A refusal is the system's reason (``"ProvisionedThroughputExceeded: rate exceeded"``).
        The refused entries are sent again after a backoff (the task fails when the retry policy
        gives up on one), or (``fail_on_error``) the task fails at once naming the first reason.
        """
        failed = [entry for entry, refusal in zip(entries, refusals, strict=True) if refusal]
        if not failed:
            return SubmitResult.complete()
        first = next(refusal for refusal in refusals if refusal)
        summary = (
            f"{self.connector}: {len(failed)} of {len(entries)} entries failed (first: {first})"
        )
        if fail_on_error:
            return SubmitResult.fail(FatalError(f"{summary} and option 'fail_on_error' is set"))
        return SubmitResult.retry(failed, RetryableError(summary))

    @override
    async def close(self) -> None:
        """Cancel requests in flight, then close the client."""
        await super().close()
        future, self._client_future = self._client_future, None
        if (
            future is not None
            and future.done()
            and not future.cancelled()
            and future.exception() is None
        ):
            self.close_client(future.result())
