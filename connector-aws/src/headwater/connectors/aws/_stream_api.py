"""The calls a shard source makes, behind one interface for Kinesis and DynamoDB Streams.

Everything here blocks (boto3): the enumerator runs it on the job's thread pool, the split reader
on its fetcher thread. boto3 clients are thread-safe once built.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from headwater.connectors.aws._aws import error_code, translate
from headwater.connectors.aws._shards import Shard, StartingPosition
from headwater.core import RetryableError

__all__ = ["ExpiredIteratorError", "FetchedRecords", "StreamApi"]


class ExpiredIteratorError(RetryableError):
    """A shard iterator expired (unused for 5 minutes); get a new one and read on."""


@dataclass(frozen=True, slots=True)
class FetchedRecords:
    """One GetRecords answer.

    Attributes:
        records: the records, as boto3 returns them.
        next_iterator: where to read on; ``None`` when the shard is closed and fully read.
        millis_behind_latest: how far the shard's newest record is ahead (Kinesis only).
    """

    records: list[dict[str, Any]]
    next_iterator: str | None
    millis_behind_latest: int | None


class StreamApi(ABC):
    """Shard listing, iterators and GetRecords of one streaming service, with translated errors.

    Args:
        client: a boto3 client of :attr:`service`.
    """

    service: ClassVar[str]
    """The boto3 service name."""
    connector: ClassVar[str]
    """The connector name used in error messages."""
    max_records_per_call: ClassVar[int]
    """The service's largest GetRecords ``Limit``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def call(self, method: str, operation: str, **kwargs: Any) -> dict[str, Any]:
        """Run ``client.<method>(**kwargs)``; errors become headwater errors."""
        fn: Callable[..., dict[str, Any]] = getattr(self.client, method)
        try:
            return fn(**kwargs)
        except Exception as exc:
            if error_code(exc) == "ExpiredIteratorException":
                raise ExpiredIteratorError(
                    f"{self.connector}: {operation}: iterator expired"
                ) from exc
            raise translate(exc, self.connector, operation) from exc

    @abstractmethod
    def list_shards(
        self, stream_arn: str, initial: StartingPosition | None, after_shard_id: str | None
    ) -> list[Shard]:
        """The stream's shards, all pages.

        At the first discovery (``initial`` set) those a read from ``initial`` needs; later those
        after ``after_shard_id`` where the service can filter (else all of them).
        """

    @abstractmethod
    def shard_iterator(self, stream_arn: str, shard_id: str, position: StartingPosition) -> str:
        """A shard iterator at ``position``."""

    @abstractmethod
    def get_records(self, stream_arn: str, iterator: str, limit: int) -> FetchedRecords:
        """Up to ``limit`` records from ``iterator``."""

    @staticmethod
    @abstractmethod
    def sequence_number(record: dict[str, Any]) -> str:
        """The record's sequence number."""

    @staticmethod
    @abstractmethod
    def event_time(record: dict[str, Any]) -> int | None:
        """The record's approximate arrival (creation) time in epoch milliseconds."""

    @staticmethod
    @abstractmethod
    def size(record: dict[str, Any]) -> int:
        """The record's size in bytes, for ``numBytesIn``."""

    def acquire(self, stream_arn: str) -> None:  # noqa: B027 - an optional hook
        """Set up what the job holds on the stream while it runs; the enumerator calls it at start.

        The default holds nothing. Kinesis enhanced fan-out registers its consumer here.
        """

    def release(self, stream_arn: str) -> None:  # noqa: B027 - an optional hook
        """Undo :meth:`acquire`; the enumerator calls it when it closes (the job ends or stops)."""

    def close(self) -> None:
        """Close the client."""
        self.client.close()
