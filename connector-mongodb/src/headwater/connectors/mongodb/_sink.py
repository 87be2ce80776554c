"""MongoSink: bulk writes, at-least-once (flushed at checkpoints) or exactly-once (transactions).

At-least-once: an :class:`AsyncSinkWriter` (connector-base) sends unordered ``bulk_write``
batches bounded by count, bytes and time; at a checkpoint it waits for the batches in flight and
keeps what is still buffered in the checkpoint.

Exactly-once: the writer keeps a checkpoint's writes and hands them over as one committable
(writer id, sequence number, writes), stored in the checkpoint. Once the checkpoint completes,
the committer applies them in MongoDB transactions, each of which also moves the writer's marker
document (``{_id: writer id, sequence, part}``) in ``marker_collection``. A commit repeated after
a crash finds the marker at or past its (sequence, part) and skips: every write is applied
once. A writer id is new for every writer instance (``operator uid``-``subtask``-random), so a
job started without a checkpoint never meets an old marker.
"""

from __future__ import annotations

import functools
import logging
import struct
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from headwater.connectors.base import (
    AsyncSinkOptions,
    AsyncSinkWriter,
    ErrorPolicy,
    FailOnError,
    SubmitResult,
    retry,
)
from headwater.connectors.mongodb._client import connect, translate
from headwater.connectors.mongodb._options import MongoSinkOptions
from headwater.connectors.mongodb._writes import (
    WRITE_SERIALIZER,
    MongoWrite,
    WriteConverter,
    bulk_write,
)
from headwater.core import (
    CommitRequest,
    Committer,
    CommittingSinkWriter,
    ConfigurationError,
    DeliveryGuarantee,
    FatalError,
    RetryableError,
    TwoPhaseCommittingSink,
    VersionedSerializer,
    WriterInitContext,
)
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError
from typing_extensions import override

__all__ = ["MongoCommittable", "MongoSink"]

T = TypeVar("T")
"""The type of the records the sink consumes."""

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MongoCommittable:
    """The writes of one checkpoint of one exactly-once writer."""

    writer_id: str
    sequence: int
    writes: tuple[MongoWrite, ...]


class _CommittableSerializer:
    """Format 1: writer id, sequence, then each write (length-prefixed BSON): no 16 MiB cap."""

    version = 1

    def serialize(self, c: MongoCommittable, /) -> bytes:
        writer = c.writer_id.encode()
        parts = [struct.pack(">IQI", len(writer), c.sequence, len(c.writes)), writer]
        for write in c.writes:
            data = WRITE_SERIALIZER.serialize(write)
            parts += [struct.pack(">I", len(data)), data]
        return b"".join(parts)

    def deserialize(self, version: int, data: bytes, /) -> MongoCommittable:
        size, sequence, count = struct.unpack_from(">IQI", data)
        at = 16
        writer = data[at : at + size].decode()
        at += size
        writes = []
        for _ in range(count):
            (length,) = struct.unpack_from(">I", data, at)
            at += 4
            writes.append(WRITE_SERIALIZER.deserialize(1, data[at : at + length]))
            at += length
        return MongoCommittable(writer, sequence, tuple(writes))


COMMITTABLE_SERIALIZER = _CommittableSerializer()


def _collection(client: AsyncMongoClient[Any], options: MongoSinkOptions) -> AsyncCollection[Any]:
    assert options.database is not None and options.collection is not None
    return client[options.database][options.collection]


class _BulkWriter(
    AsyncSinkWriter[MongoWrite, MongoWrite], CommittingSinkWriter[Any, MongoCommittable]
):
    """AT_LEAST_ONCE / NONE: converted writes buffered and sent by connector-base's async writer."""

    def __init__(
        self,
        context: WriterInitContext,
        options: MongoSinkOptions,
        converter: WriteConverter,
        policy: ErrorPolicy,
        restored: Sequence[MongoWrite],
    ) -> None:
        super().__init__(
            context,
            element_converter=_same,
            options=AsyncSinkOptions(
                max_batch_size=options.max_batch_size,
                max_in_flight_requests=options.max_in_flight_requests,
                max_buffered_requests=max(10_000, options.max_batch_size * 4),
                max_batch_size_in_bytes=options.max_batch_size_in_bytes,
                max_time_in_buffer=options.max_time_in_buffer,
                max_record_size_in_bytes=None,  # the converter applies the limit with the policy
                request_timeout=options.request_timeout * 2,
                retry_policy=options.retry_policy,
            ),
            restored=restored,
        )
        self._sink_options = options
        self._converter = converter
        self._policy = policy
        self._client: AsyncMongoClient[Any] | None = None
        self._refused = context.metric_group.counter("numRecordsOutErrors")

    def _target(self) -> AsyncCollection[Any]:
        if self._client is None:
            self._client = connect(self._sink_options)
        return _collection(self._client, self._sink_options)

    @override
    async def write_batch(self, records: Sequence[Any]) -> None:
        await super().write_batch(self._converter.convert(records))

    @override
    async def submit_request_entries(self, entries: list[MongoWrite]) -> SubmitResult[MongoWrite]:
        options = self._sink_options
        try:
            outcome = await bulk_write(self._target(), entries, self._policy, options.where)
        except PyMongoError as exc:
            raise translate(exc, f"a bulk write of {len(entries)} documents", options) from exc
        self._refused.inc(outcome.refused)
        if outcome.retry:
            return SubmitResult.retry(outcome.retry)
        return SubmitResult.complete()

    @override
    def size_in_bytes(self, entry: MongoWrite) -> int:
        return entry.size

    @override
    async def prepare_commit(self) -> list[MongoCommittable]:
        return []

    @override
    async def close(self) -> None:
        try:
            await super().close()
        finally:
            if self._client is not None:
                await self._client.close()
                self._client = None


def _same(write: MongoWrite) -> MongoWrite:
    return write


class _TransactionalWriter(CommittingSinkWriter[Any, MongoCommittable]):
    """EXACTLY_ONCE: keeps a checkpoint's writes and hands them over as one committable."""

    def __init__(self, context: WriterInitContext, converter: WriteConverter) -> None:
        self._converter = converter
        self._writer_id = f"{context.operator_uid}-{context.subtask_index}-{uuid.uuid4().hex[:12]}"
        self._sequence = 0
        self._writes: list[MongoWrite] = []
        self._records_out = context.metric_group.counter("numRecordsOut")

    @override
    async def write_batch(self, records: Sequence[Any]) -> None:
        self._writes += self._converter.convert(records)

    @override
    async def prepare_commit(self) -> list[MongoCommittable]:
        if not self._writes:
            return []
        writes, self._writes = self._writes, []
        self._sequence += 1
        self._records_out.inc(len(writes))
        return [MongoCommittable(self._writer_id, self._sequence, tuple(writes))]


class _TransactionCommitter(Committer[MongoCommittable]):
    """Applies committables in transactions with the writer's marker; repeated commits skip."""

    def __init__(self, options: MongoSinkOptions, policy: ErrorPolicy) -> None:
        self._options = options
        self._policy = policy
        self._client: AsyncMongoClient[Any] | None = None

    def _connected(self) -> AsyncMongoClient[Any]:
        if self._client is None:
            self._client = connect(self._options)
        return self._client

    @override
    async def commit(self, requests: Sequence[CommitRequest[MongoCommittable]]) -> None:
        held: set[str] = set()  # writers with an earlier committable not committed yet
        ordered = sorted(requests, key=lambda r: (r.committable.writer_id, r.committable.sequence))
        for request in ordered:
            committable = request.committable
            if committable.writer_id in held:
                request.retry_later()
                continue
            try:
                applied = await retry(
                    functools.partial(self._commit, committable), self._options.retry_policy
                )
            except RetryableError as exc:
                log.warning("mongodb sink: commit will be retried: %s", exc)
                held.add(committable.writer_id)
                request.retry_later()
                continue
            except Exception as exc:
                held.add(committable.writer_id)
                request.signal_failed_with_known_reason(exc)
                continue
            if not applied:
                request.signal_already_committed()

    @override
    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _commit(self, committable: MongoCommittable) -> bool:
        """Apply what the marker says is not applied yet; whether anything was."""
        options = self._options
        client = self._connected()
        size = options.transaction_max_writes
        writes = committable.writes
        parts = [writes[i : i + size] for i in range(0, len(writes), size)] or [()]
        try:
            done = await self._marker(client, committable.writer_id, None)
            applied = False
            for number, part in enumerate(parts):
                if (committable.sequence, number) <= done:
                    continue
                await self._apply_part(client, committable, number, part)
                applied = True
            return applied
        except PyMongoError as exc:
            error = translate(exc, f"committing checkpoint writes ({len(writes)})", options)
            if "TransactionTooLarge" in str(exc) or getattr(exc, "code", None) in (10334, 257):
                raise FatalError(
                    f"{error}; lower option 'transaction_max_writes' "
                    f"(now {options.transaction_max_writes})"
                ) from exc
            raise error from exc

    async def _marker(
        self, client: AsyncMongoClient[Any], writer_id: str, session: AsyncClientSession | None
    ) -> tuple[int, int]:
        assert self._options.database is not None
        markers = client[self._options.database][self._options.marker_collection]
        found = await markers.find_one({"_id": writer_id}, session=session)
        return (int(found["sequence"]), int(found["part"])) if found else (0, -1)

    async def _apply_part(
        self,
        client: AsyncMongoClient[Any],
        committable: MongoCommittable,
        number: int,
        writes: Sequence[MongoWrite],
    ) -> None:
        """One transaction: the part's writes and the marker at (sequence, part).

        A per-document error aborts the transaction; the writes the policy did not drop are
        tried again in a new one.
        """
        remaining = list(writes)
        while True:
            try:
                async with client.start_session() as session:
                    await session.with_transaction(
                        functools.partial(self._transaction, committable, number, remaining)
                    )
                return
            except _Rejected as rejected:
                remaining = rejected.retry

    async def _transaction(
        self,
        committable: MongoCommittable,
        number: int,
        writes: list[MongoWrite],
        session: AsyncClientSession,
    ) -> None:
        options = self._options
        assert options.database is not None
        client = session.client
        if (committable.sequence, number) <= await self._marker(
            client, committable.writer_id, session
        ):
            return  # committed by an attempt whose answer was lost
        if writes:
            target = _collection(client, options)
            outcome = await bulk_write(target, writes, self._policy, options.where, session)
            if outcome.failed:
                raise _Rejected(outcome.retry)
        await client[options.database][options.marker_collection].update_one(
            {"_id": committable.writer_id},
            {"$set": {"sequence": committable.sequence, "part": number, "at": datetime.now(UTC)}},
            upsert=True,
            session=session,
        )


class _Rejected(Exception):
    """A transaction's bulk write had per-document errors: abort, retry ``retry`` without them."""

    def __init__(self, retry: list[MongoWrite]) -> None:
        super().__init__(f"{len(retry)} writes to try again")
        self.retry = retry


class MongoSink(TwoPhaseCommittingSink[T, MongoCommittable], Generic[T]):
    """Writes records into a MongoDB collection.

    Example::

        from headwater.connectors.mongodb import MongoSink, MongoSinkOptions

        sink = MongoSink(MongoSinkOptions(
            uri="mongodb://localhost:27017/?replicaSet=rs0", database="shop",
            collection="orders", write_mode="upsert", key_fields=("order_id",),
            delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE))

    Records are mappings (or become one through ``to_document``), or
    :class:`MongoChangelogRecord` values (applied by their kind). ``Decimal`` values become
    ``Decimal128``; datetimes should be timezone-aware (naive ones are taken as UTC).

    Args:
        options: where and how to write (:class:`MongoSinkOptions`).
        to_document: turns a record into its document (default: the record is one).
        on_error: what a document the server refuses for good does (duplicate key on insert,
            validation failure, over ``max_record_size_in_bytes``): connector-base's
            :class:`FailOnError` (default; the job fails with the document's key and the
            server's code), :class:`SkipOnError` or :class:`DeadLetterOnError`.
    """

    def __init__(
        self,
        options: MongoSinkOptions,
        *,
        to_document: Callable[[Any], Mapping[str, Any]] | None = None,
        on_error: ErrorPolicy | None = None,
    ) -> None:
        if not isinstance(options, MongoSinkOptions):
            raise ConfigurationError(
                f"mongodb sink: expected MongoSinkOptions, got {type(options).__name__}"
            )
        self.options = options
        self._to_document = to_document
        self.on_error: ErrorPolicy = on_error or FailOnError()

    def __repr__(self) -> str:
        return f"MongoSink({self.options!r})"

    @property
    @override
    def delivery_guarantee(self) -> DeliveryGuarantee:
        return self.options.delivery_guarantee

    def _exactly_once(self) -> bool:
        return self.options.delivery_guarantee is DeliveryGuarantee.EXACTLY_ONCE

    def _writer(
        self, context: WriterInitContext, restored: Sequence[MongoWrite]
    ) -> CommittingSinkWriter[T, MongoCommittable]:
        converter = WriteConverter(self.options, self._to_document, self.on_error)
        if self._exactly_once():
            return _TransactionalWriter(context, converter)
        return _BulkWriter(context, self.options, converter, self.on_error, restored)

    @override
    def create_writer(
        self, context: WriterInitContext
    ) -> CommittingSinkWriter[T, MongoCommittable]:
        return self._writer(context, ())

    @override
    def restore_writer(
        self, context: WriterInitContext, states: list[Any]
    ) -> CommittingSinkWriter[T, MongoCommittable]:
        return self._writer(context, states)

    @override
    def writer_state_serializer(self) -> VersionedSerializer[Any]:
        return WRITE_SERIALIZER

    @override
    def create_committer(self, context: WriterInitContext) -> Committer[MongoCommittable]:
        return _TransactionCommitter(self.options, self.on_error)

    @override
    def committable_serializer(self) -> VersionedSerializer[MongoCommittable]:
        return COMMITTABLE_SERIALIZER
