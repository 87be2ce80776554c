"""The Cassandra sink: prepared statements with bounded concurrency; at-least-once or exactly-once.

Example::

    from headwater.connectors.cassandra import CassandraSink, CassandraSinkOptions

    counts.sink_to(CassandraSink(CassandraSinkOptions(
        keyspace="shop",
        cql="UPDATE views SET n = n + :n WHERE page = :page",
        delivery_guarantee=DeliveryGuarantee.EXACTLY_ONCE,
    )))

Guarantees:

- ``AT_LEAST_ONCE``: records are bound and sent at once, by connector-base's async sink writer
  (batches of ``writer.max_batch_size`` statements, at most ``max_concurrent_requests`` in
  flight); a checkpoint waits for every statement in flight and keeps the ones still buffered.
  After a failure the statements since the last checkpoint are sent again: idempotent statements
  (an INSERT/UPDATE that sets values, a DELETE) end up exact, counters and list appends do not.
- ``EXACTLY_ONCE``: nothing is sent before the checkpoint completes. The writes of a checkpoint
  are the committable (the statement's serialized values, kept in the checkpoint); the committer
  applies them in chunks of ``commit_chunk_size``, each chunk in one batch together with a commit
  marker ``(commit id, chunk)``. A LOGGED batch is atomic, so a chunk and its marker are applied
  together or not at all; a commit repeated after a failure reads the markers and skips the
  chunks already applied. Counter updates cannot be in a logged batch: they go in a COUNTER batch
  with a counter marker, which one coordinator applies in full once it has it. That holds when
  the job fails (a kill, a restart); a Cassandra node failing in the middle of a counter batch can
  apply part of it, which no client can detect.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from headwater.connectors.base import (
    AsyncSinkWriter,
    SubmitResult,
    retry,
)
from headwater.connectors.cassandra._errors import (
    CassandraConnectionError,
    CassandraError,
    CassandraRecordError,
    CassandraUnavailableError,
    is_transient,
    server_message,
    with_cassandra_classifier,
)
from headwater.connectors.cassandra._options import CassandraSinkOptions, RecordErrorPolicy
from headwater.connectors.cassandra._session import (
    Connection,
    aexecute,
    connect,
    consistency_level,
    execute_concurrently,
)
from headwater.connectors.cassandra._statements import (
    ENTRY_SERIALIZER,
    Entry,
    StatementBinder,
    entry_from_json,
    entry_to_json,
    sink_cql,
)
from headwater.connectors.cassandra._table import describe_table
from headwater.core import (
    CommitRequest,
    Committer,
    CommittingSinkWriter,
    DeliveryGuarantee,
    JsonSerializer,
    TwoPhaseCommittingSink,
    VersionedSerializer,
    WriterInitContext,
)
from typing_extensions import override

from cassandra.query import BatchStatement, BatchType, PreparedStatement, Statement

__all__ = ["CassandraSink", "Commit"]

_WHO = "cassandra sink"
_log = logging.getLogger("headwater.connectors.cassandra")
_schema_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Commit:
    """The writes of one writer between two checkpoints (``EXACTLY_ONCE``'s committable).

    Attributes:
        commit_id: unique; the partition of its commit markers.
        cql: the statement the entries are bound to.
        protocol_version: the protocol version the values were serialized with.
        entries: the bound values, in the order the records arrived.
    """

    commit_id: str
    cql: str
    protocol_version: int
    entries: tuple[Entry, ...]


COMMIT_SERIALIZER: VersionedSerializer[Commit] = JsonSerializer(
    version=1,
    to_json=lambda c: {
        "id": c.commit_id,
        "cql": c.cql,
        "protocol": c.protocol_version,
        "entries": [entry_to_json(e) for e in c.entries],
    },
    from_json=lambda v, d: Commit(
        d["id"], d["cql"], int(d["protocol"]), tuple(entry_from_json(v, e) for e in d["entries"])
    ),
)


def _identity(entry: Entry) -> Entry:
    return entry


class _Target:
    """The connection and the prepared statement of a writer or committer, opened lazily.

    Opening blocks (connect, prepare): it runs on the job's thread pool.
    """

    def __init__(
        self,
        options: CassandraSinkOptions,
        context: WriterInitContext,
        converter: Callable[[Any], Any] | None = None,
    ) -> None:
        self.options = options
        self._context = context
        self._converter = converter
        self.connection: Connection | None = None
        self._binders: dict[str, StatementBinder] = {}
        self._cql: str | None = options.cql
        self._lock = asyncio.Lock()

    async def binder(self, cql: str | None = None) -> StatementBinder:
        """The binder of ``cql`` (default: the sink's statement), preparing it on first use."""
        key = cql or self._cql or ""
        found = self._binders.get(key)
        if found is None:
            async with self._lock:
                found = self._binders.get(key)
                if found is None:
                    found = await self._context.run_blocking(self._prepare, cql)
                    self._binders[key] = found
                    self._binders.setdefault(found.prepared.query_string, found)
        return found

    @property
    def session(self) -> Any:
        """The driver session (after :meth:`binder`)."""
        assert self.connection is not None
        return self.connection.session

    def _prepare(self, cql: str | None) -> StatementBinder:
        options = self.options
        if self.connection is None:
            self.connection = connect(options.connection, _WHO)
        if cql is None:
            if self._cql is None:
                assert options.table is not None
                table = describe_table(
                    self.connection.cluster, options.keyspace, options.table, _WHO
                )
                self._cql = sink_cql(options, options.columns or table.columns)
            cql = self._cql
        try:
            prepared = self.connection.session.prepare(cql)
        except Exception as exc:
            if is_transient(exc):
                raise
            raise CassandraConnectionError(
                f"{_WHO}: cannot prepare {cql!r}: {server_message(exc)}"
            ) from None
        prepared.consistency_level = consistency_level(options.consistency)
        return StatementBinder(
            prepared,
            options.timestamp_field,
            options.key_columns,
            _WHO,
            counter=self._writes_counters(prepared),
        )

    def _writes_counters(self, prepared: PreparedStatement) -> bool:
        """Whether the statement's table has counter columns (``n = n + 1`` has no counter marker)."""
        assert self.connection is not None
        if not prepared.column_metadata:
            return False
        column = prepared.column_metadata[0]
        table = describe_table(
            self.connection.cluster, column.keyspace_name, column.table_name, _WHO
        )
        return bool(table.counters)

    def bind_all(self, binder: StatementBinder, records: Sequence[Any], first: int) -> list[Entry]:
        """Bind ``records`` (``first``: the position of the first one); the error policy applies."""
        if self._converter is not None:
            records = list(map(self._converter, records))
        bind = binder.bind
        if self.options.error_policy is RecordErrorPolicy.FAIL:
            return [bind(record, first + i) for i, record in enumerate(records)]
        entries = []
        for i, record in enumerate(records):
            try:
                entries.append(bind(record, first + i))
            except CassandraRecordError as exc:
                self._context.metric_group.counter("numRecordsSendErrors").inc()
                _log.warning("%s (skipped)", exc)
        return entries

    @property
    def protocol_version(self) -> int:
        """The protocol version of the connection (after :meth:`binder`)."""
        assert self.connection is not None
        return self.connection.protocol_version

    async def close(self) -> None:
        """Shut the driver down."""
        if self.connection is not None:
            connection, self.connection = self.connection, None
            await self._context.run_blocking(connection.close)


def _concurrency(options: CassandraSinkOptions) -> int:
    """Statements in flight per request, so that all requests stay within ``max_concurrent_requests``."""
    return max(1, options.max_concurrent_requests // options.writer.max_in_flight_requests)


class _AtLeastOnceWriter(AsyncSinkWriter[Any, Entry], CommittingSinkWriter[Any, Commit]):
    """Sends statements at once on connector-base's async sink writer (``AT_LEAST_ONCE``).

    A request is ``writer.max_batch_size`` statements sent with at most
    ``max_concurrent_requests / writer.max_in_flight_requests`` in flight; statements that failed
    with a transient error are sent again after a backoff (the shared retry policy), the ones
    refused for good go through the error policy. Nothing to pre-commit.
    """

    def __init__(
        self,
        options: CassandraSinkOptions,
        context: WriterInitContext,
        restored: Sequence[Entry],
        converter: Callable[[Any], Any] | None,
    ) -> None:
        # Statements failing with a transient error back off (per statement) under retry_policy.
        policy = with_cassandra_classifier(options.retry_policy)
        writer = options.writer.model_copy(update={"retry_policy": policy})
        super().__init__(context, element_converter=_identity, options=writer, restored=restored)
        self._sink_options = options
        self._target = _Target(options, context, converter)
        self._concurrency = _concurrency(options)
        self._position = 0

    @override
    async def write_batch(self, records: Sequence[Any]) -> None:
        """Bind ``records`` and hand them to the async sink base."""
        binder = await self._target.binder()
        entries = self._target.bind_all(binder, records, self._position)
        self._position += len(records)
        await super().write_batch(entries)

    @override
    async def submit_request_entries(self, entries: list[Entry]) -> SubmitResult[Entry]:
        """Send the statements; retry the transient failures, judge the others."""
        binder = await self._target.binder()
        groups = self._groups(binder, entries)
        statements = [self._statement(binder, group) for group in groups]
        # Counter increments commute; other writes of one partition keep their order.
        keys = None if binder.counter else [binder.partition(group[0]) for group in groups]
        errors = await execute_concurrently(
            self._target.session, statements, self._concurrency, keys
        )
        again: list[Entry] = []
        transient: BaseException | None = None
        for group, error in zip(groups, errors, strict=True):
            if error is None:
                continue
            if is_transient(error):
                again.extend(group)
                transient = error
                continue
            refused = CassandraRecordError(
                f"{_WHO}: Cassandra refused the write of key "
                f"({binder.describe(group[0], self._target.protocol_version)}): "
                f"{server_message(error)}"
            )
            if self._sink_options.error_policy is RecordErrorPolicy.FAIL:
                return SubmitResult.fail(refused)
            self.context.metric_group.counter("numRecordsSendErrors").inc(len(group))
            _log.warning("%s (skipped)", refused)
        if transient is None:
            return SubmitResult.complete()
        return SubmitResult.retry(
            again,
            CassandraUnavailableError(
                f"{_WHO}: {len(again)} writes failed: {server_message(transient)}"
            ),
        )

    def _groups(self, binder: StatementBinder, entries: list[Entry]) -> list[list[Entry]]:
        """One group per statement, or per partition key with ``batch_by_partition``."""
        if not self._sink_options.batch_by_partition:
            return [[entry] for entry in entries]
        by_partition: dict[tuple[bytes | None, ...], list[Entry]] = {}
        for entry in entries:
            by_partition.setdefault(binder.partition(entry), []).append(entry)
        return list(by_partition.values())

    def _statement(self, binder: StatementBinder, group: list[Entry]) -> Statement:
        if len(group) == 1:
            return binder.statement(group[0])
        batch_type = BatchType.COUNTER if binder.counter else BatchType.UNLOGGED
        batch = BatchStatement(batch_type, consistency_level=binder.prepared.consistency_level)
        for entry in group:
            batch.add(binder.statement(entry))
        return batch

    @override
    def size_in_bytes(self, entry: Entry) -> int:
        """The serialized values' size."""
        return sum(len(v) for v in entry.values if v is not None)

    @override
    async def prepare_commit(self) -> list[Commit]:
        """Nothing: writes are sent at once."""
        return []

    @override
    async def close(self) -> None:
        """Cancel requests in flight and shut the driver down."""
        await super().close()
        await self._target.close()


class _ExactlyOnceWriter(CommittingSinkWriter[Any, Commit]):
    """Binds records and keeps them until the checkpoint (``EXACTLY_ONCE``); sends nothing."""

    def __init__(
        self,
        options: CassandraSinkOptions,
        context: WriterInitContext,
        converter: Callable[[Any], Any] | None,
    ) -> None:
        self._target = _Target(options, context, converter)
        self._entries: list[Entry] = []
        self._position = 0
        self._run = f"{context.operator_uid}/{context.subtask_index}/{uuid.uuid4().hex[:12]}"
        self._sequence = 0

    @override
    async def write_batch(self, records: Sequence[Any]) -> None:
        """Bind ``records`` (a bad one goes through the error policy now) and keep them."""
        binder = await self._target.binder()
        self._entries += self._target.bind_all(binder, records, self._position)
        self._position += len(records)

    @override
    async def prepare_commit(self) -> list[Commit]:
        """The writes since the last checkpoint, as one committable."""
        if not self._entries:
            return []
        binder = await self._target.binder()
        commit = Commit(
            f"{self._run}/{self._sequence}",
            binder.prepared.query_string,
            self._target.protocol_version,
            tuple(self._entries),
        )
        self._sequence += 1
        self._entries = []
        return [commit]

    @override
    async def close(self) -> None:
        """Shut the driver down (writes not pre-committed are dropped: they are replayed)."""
        await self._target.close()


class _MarkerTables:
    """The commit markers: a regular table for logged batches, a counter table for counter batches."""

    def __init__(self, options: CassandraSinkOptions) -> None:
        name = f"{options.keyspace}.{options.marker_table}"
        self.create = (
            f"CREATE TABLE IF NOT EXISTS {name} "
            "(commit_id text, chunk int, PRIMARY KEY (commit_id, chunk))",
            f"CREATE TABLE IF NOT EXISTS {name}_counters "
            "(commit_id text, chunk int, applied counter, PRIMARY KEY (commit_id, chunk))",
        )
        ttl = int(options.marker_ttl.total_seconds())
        self.mark = f"INSERT INTO {name} (commit_id, chunk) VALUES (?, ?) USING TTL {ttl}"
        self.mark_counter = (
            f"UPDATE {name}_counters SET applied = applied + 1 WHERE commit_id = ? AND chunk = ?"
        )
        self.read = f"SELECT chunk FROM {name} WHERE commit_id = ?"
        self.read_counter = f"SELECT chunk FROM {name}_counters WHERE commit_id = ?"


@dataclass(frozen=True, slots=True)
class _MarkerStatements:
    mark: PreparedStatement
    read: PreparedStatement


class _CassandraCommitter(Committer[Commit]):
    """Applies committables chunk by chunk, each chunk atomic with its marker (see the module docs)."""

    def __init__(self, options: CassandraSinkOptions, context: WriterInitContext) -> None:
        self._options = options
        self._context = context
        self._target = _Target(options, context)
        self._tables = _MarkerTables(options)
        self._markers: dict[bool, _MarkerStatements] | None = None
        self._policy = with_cassandra_classifier(options.retry_policy)
        self._retries = context.metric_group.counter("numCommitRetries")

    @override
    async def commit(self, requests: Sequence[CommitRequest[Commit]]) -> None:
        """Apply each commit in order; a transient failure is retried at the next checkpoint."""
        for request in requests:
            commit = request.committable
            try:
                applied = await retry(functools.partial(self._apply, commit), self._policy)
            except CassandraUnavailableError:
                self._retries.inc()
                request.retry_later()  # the markers make the next attempt skip what was applied
            except CassandraError as exc:
                request.signal_failed_with_known_reason(exc)
            except Exception as exc:
                if is_transient(exc):
                    self._retries.inc()
                    request.retry_later()
                else:
                    request.signal_failed_with_unknown_reason(exc)
            else:
                if not applied:
                    request.signal_already_committed()

    async def _apply(self, commit: Commit) -> bool:
        """Apply the chunks of ``commit`` not applied yet; whether any was."""
        binder = await self._target.binder(commit.cql)
        if commit.protocol_version < 3 or self._target.protocol_version < 3:
            # Collections are serialized differently before protocol v3.
            raise CassandraConnectionError(
                f"{_WHO}: commit {commit.commit_id} was serialized with protocol version "
                f"{commit.protocol_version} and the connection speaks "
                f"{self._target.protocol_version}: both must be >= 3"
            )
        markers = await self._marker_statements()
        counter = binder.counter
        marker = markers[counter]
        found = await aexecute(self._target.session, marker.read.bind((commit.commit_id,)))
        done = {row[0] for row in found.current_rows}
        chunks = _chunks(binder, commit.entries, self._options.commit_chunk_size, counter)
        due = [(i, chunk) for i, chunk in enumerate(chunks) if i not in done]
        if not due:
            return False
        batches = [self._batch(binder, marker.mark, commit.commit_id, i, c) for i, c in due]
        # Counter increments commute: their chunks go concurrently. Other statements may write
        # one row twice, so their chunks go in order (each batch gets a later timestamp).
        concurrency = self._options.max_concurrent_requests if counter else 1
        errors = await execute_concurrently(self._target.session, batches, concurrency)
        for error in errors:
            if error is None:
                continue
            if is_transient(error):
                raise CassandraUnavailableError(
                    f"{_WHO}: commit {commit.commit_id}: {server_message(error)}"
                ) from error
            raise CassandraRecordError(
                f"{_WHO}: Cassandra refused a batch of commit {commit.commit_id}: "
                f"{server_message(error)}"
            ) from error
        return True

    def _batch(
        self,
        binder: StatementBinder,
        mark: PreparedStatement,
        commit_id: str,
        index: int,
        chunk: Sequence[Entry],
    ) -> BatchStatement:
        kind = BatchType.COUNTER if binder.counter else BatchType.LOGGED
        batch = BatchStatement(kind, consistency_level=binder.prepared.consistency_level)
        for entry in chunk:
            batch.add(binder.statement(entry))
        batch.add(mark, (commit_id, index))
        return batch

    async def _marker_statements(self) -> dict[bool, _MarkerStatements]:
        if self._markers is None:
            self._markers = await self._context.run_blocking(self._prepare_markers)
        return self._markers

    def _prepare_markers(self) -> dict[bool, _MarkerStatements]:
        session = self._target.session
        with _schema_lock:  # one CREATE at a time from this process
            for create in self._tables.create:
                session.execute(create)
        level = consistency_level(self._options.consistency)
        prepared = {
            False: _MarkerStatements(
                session.prepare(self._tables.mark), session.prepare(self._tables.read)
            ),
            True: _MarkerStatements(
                session.prepare(self._tables.mark_counter),
                session.prepare(self._tables.read_counter),
            ),
        }
        for statements in prepared.values():
            statements.mark.consistency_level = statements.read.consistency_level = level
        return prepared

    @override
    async def close(self) -> None:
        """Shut the driver down."""
        await self._target.close()


def _chunks(
    binder: StatementBinder, entries: Sequence[Entry], size: int, counter: bool
) -> list[list[Entry]]:
    """Consecutive chunks of at most ``size`` entries, the same for every attempt of a commit.

    A chunk of a non-counter statement never holds two writes of one partition: a batch has one
    timestamp, so two writes of one row in it would not resolve by their order.
    """
    chunks: list[list[Entry]] = []
    current: list[Entry] = []
    seen: set[tuple[bytes | None, ...] | None] = set()
    for entry in entries:
        key = None if counter else binder.partition(entry)
        if len(current) >= size or (not counter and key in seen):
            chunks.append(current)
            current, seen = [], set()
        current.append(entry)
        seen.add(key)
    if current:
        chunks.append(current)
    return chunks


class CassandraSink(TwoPhaseCommittingSink[Any, Commit]):
    """Writes records to Cassandra with a prepared statement; see :class:`CassandraSinkOptions`.

    Records are mappings, dataclasses, pydantic models or named tuples whose fields name the
    statement's bind markers.
    """

    def __init__(
        self,
        options: CassandraSinkOptions,
        *,
        element_converter: Callable[[Any], Any] | None = None,
    ) -> None:
        if not isinstance(options, CassandraSinkOptions):
            raise TypeError(
                f"CassandraSink: expected CassandraSinkOptions, got {type(options).__name__}"
            )
        self.options = options
        self.element_converter = element_converter
        """Turns a record into the statement's fields (a mapping, ...); ``None``: records are."""

    def __repr__(self) -> str:
        target = self.options.table or "cql"
        return f"CassandraSink({self.options.keyspace}.{target}, {self.options.delivery_guarantee.name})"

    @property
    def delivery_guarantee(self) -> DeliveryGuarantee:
        """The configured guarantee (``AT_LEAST_ONCE`` by default)."""
        return self.options.delivery_guarantee

    def create_writer(self, context: WriterInitContext) -> CommittingSinkWriter[Any, Commit]:
        """A writer for one subtask."""
        return self.restore_writer(context, [])

    def restore_writer(
        self, context: WriterInitContext, states: list[Any]
    ) -> CommittingSinkWriter[Any, Commit]:
        """A writer sending the checkpointed statements first (``AT_LEAST_ONCE``)."""
        if self.options.delivery_guarantee is DeliveryGuarantee.EXACTLY_ONCE:
            return _ExactlyOnceWriter(self.options, context, self.element_converter)
        return _AtLeastOnceWriter(self.options, context, states, self.element_converter)

    def writer_state_serializer(self) -> VersionedSerializer[Any]:
        """Buffered statements (``AT_LEAST_ONCE``), one entry at a time."""
        return ENTRY_SERIALIZER

    def create_committer(self, context: WriterInitContext) -> Committer[Commit]:
        """The committer of one subtask (it has work with ``EXACTLY_ONCE`` only)."""
        return _CassandraCommitter(self.options, context)

    def committable_serializer(self) -> VersionedSerializer[Commit]:
        """A checkpoint's writes, as versioned JSON."""
        return COMMIT_SERIALIZER
