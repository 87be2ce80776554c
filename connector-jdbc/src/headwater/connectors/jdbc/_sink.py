"""The JDBC sink: batched inserts, upserts and deletes; at-least-once or exactly-once.

Example::

    from headwater.connectors.jdbc import JdbcSink, JdbcSinkOptions

    stream.sink_to(JdbcSink(JdbcSinkOptions(
        url="postgresql+psycopg://app@db/shop", table="totals", key_columns=("user_id",),
    )))

Guarantees:

- ``AT_LEAST_ONCE``: rows are written at every flush (by size, by interval, and at every
  checkpoint); after a failure the rows since the last checkpoint are written again. With
  ``key_columns`` a replay upserts the same values again, so the table ends up exact.
- ``EXACTLY_ONCE``: rows are staged (invisible) and become visible in the target table only when
  their checkpoint completes, in one local transaction that also records the transaction id in the
  commit log, so a repeated commit after a restore does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from headwater.connectors.jdbc._errors import JdbcError, JdbcTimeoutError, database_message
from headwater.connectors.jdbc._options import JdbcSinkOptions
from headwater.connectors.jdbc._records import ChangelogRow, RowKind
from headwater.connectors.jdbc._retry import Backoff, retrying, within
from headwater.connectors.jdbc._writes import (
    Change,
    TableWriter,
    WriteOutcome,
    transaction_id_prefix,
)
from headwater.core import (
    CommitRequest,
    Committer,
    CommittingSinkWriter,
    DeliveryGuarantee,
    JsonSerializer,
    RetryableError,
    TwoPhaseCommittingSink,
    VersionedSerializer,
    WriterInitContext,
)

__all__ = ["JdbcSink"]

_log = logging.getLogger("headwater.connectors.jdbc")

Record = Mapping[str, Any] | ChangelogRow
"""What the sink accepts: a row dict (an insert) or a :class:`ChangelogRow`."""

_COMMITTABLE_SERIALIZER: VersionedSerializer[str] = JsonSerializer(
    version=1, to_json=lambda txn: txn, from_json=lambda _v, data: str(data)
)


def _backoff(options: JdbcSinkOptions) -> Backoff:
    return Backoff(options.max_retries, options.retry_backoff, options.max_retry_backoff)


class _JdbcWriter(CommittingSinkWriter[Record, str]):
    """Buffers changes and flushes them by size, by interval and at checkpoints.

    At most one flush is in flight: it runs on the thread pool while the next batch is buffered,
    and the next flush first waits for it, so batches reach the database in order. At-least-once
    flushes write to the table; exactly-once flushes stage under the current transaction id, which
    :meth:`prepare_commit` hands over and replaces.
    """

    def __init__(self, options: JdbcSinkOptions, context: WriterInitContext) -> None:
        self._options = options
        self._context = context
        self._table = TableWriter(options)
        self._backoff = _backoff(options)
        self._buffer: list[Change] = []
        self._first_buffered = 0.0
        self._lock = asyncio.Lock()
        self._in_flight: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._exactly_once = options.delivery_guarantee is DeliveryGuarantee.EXACTLY_ONCE
        self._run = f"{uuid.uuid4().hex[:8]}-{context.subtask_index}"
        self._txn_id: str | None = None
        # One subtask deletes the staged rows that have expired, once, before it first stages.
        self._purge_pending = self._exactly_once and context.subtask_index == 0
        self._txn_number = 0
        self._staged = 0
        metrics = context.metric_group
        self._sent = metrics.counter("numRecordsSend")
        self._send_errors = metrics.counter("numRecordsSendErrors")
        self._retries = metrics.counter("numRetries")
        self._send_time = 0.0
        metrics.gauge("currentSendTime", lambda: self._send_time)

    @property
    def _txn(self) -> str:
        """The id of the transaction being staged, fixed when its first row is staged.

        It starts with that time (see :func:`transaction_id_prefix`), so staged rows expire by
        ``staging_retention`` counted from their transaction's first row.
        """
        if self._txn_id is None:
            created = transaction_id_prefix(time.time())
            self._txn_id = f"{created}-{self._run}-{self._txn_number}"
        return self._txn_id

    async def write_batch(self, records: Sequence[Record]) -> None:
        """Buffer ``records``; send a batch whenever ``batch_size`` changes are buffered."""
        self._raise_failure()
        if not self._buffer:
            self._first_buffered = time.monotonic()
        insert = RowKind.INSERT
        self._buffer.extend(
            (r.kind, r.row) if isinstance(r, ChangelogRow) else (insert, r) for r in records
        )
        if len(self._buffer) >= self._options.batch_size:
            async with self._lock:
                await self._send_buffered(full_batches_only=True)
        if self._timer is None and self._options.batch_interval is not None:
            self._timer = asyncio.create_task(self._flush_periodically())

    async def flush(self, end_of_input: bool) -> None:
        """Write (or stage) everything buffered and wait until it is done."""
        self._raise_failure()
        async with self._lock:
            await self._send_buffered()
            await self._wait_in_flight()

    async def prepare_commit(self) -> list[str]:
        """Exactly-once: the transaction staged since the last checkpoint, if it has rows."""
        if not self._exactly_once or self._staged == 0:
            return []
        txn = self._txn
        self._txn_id = None
        self._txn_number += 1
        self._staged = 0
        return [txn]

    async def close(self) -> None:
        """Stop the timer and a flush in flight, release the connections (buffered rows are dropped)."""
        for task in (self._timer, self._in_flight):
            if task is not None:
                task.cancel()
        await self._context.run_blocking(self._table.close)

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _flush_periodically(self) -> None:
        assert self._options.batch_interval is not None
        interval = self._options.batch_interval.total_seconds()
        try:
            while True:
                await asyncio.sleep(interval)
                if self._buffer and time.monotonic() - self._first_buffered >= interval:
                    async with self._lock:
                        await self._send_buffered()
        except Exception as exc:  # reported by the next write_batch or flush
            self._failure = exc

    async def _send_buffered(self, full_batches_only: bool = False) -> None:
        """Hand buffered batches to the database, one in flight at a time (hold the lock)."""
        batch_size = self._options.batch_size
        while len(self._buffer) >= (batch_size if full_batches_only else 1):
            chunk = self._buffer[:batch_size]
            del self._buffer[:batch_size]
            await self._wait_in_flight()
            first_seq = self._staged
            if self._exactly_once:
                self._staged += len(chunk)
            self._in_flight = asyncio.create_task(self._send(chunk, self._txn, first_seq))
            self._first_buffered = time.monotonic()

    async def _wait_in_flight(self) -> None:
        task, self._in_flight = self._in_flight, None
        if task is not None:
            await task

    async def _purge_expired(self) -> None:
        """Delete staged rows and commit-log entries older than ``staging_retention``.

        Housekeeping: a failure is logged and never fails the job.
        """
        self._purge_pending = False
        retention = self._options.staging_retention
        if retention is None:
            return
        created_before = time.time() - retention.total_seconds()
        try:
            staged, logged = await within(
                self._options.operation_timeout,
                partial(self._context.run_blocking, self._table.purge_expired, created_before),
            )
        except Exception as exc:
            _log.warning(
                "jdbc sink: could not delete expired staged rows of '%s': %s",
                self._options.table,
                database_message(exc),
            )
            return
        if staged or logged:
            _log.info(
                "jdbc sink: deleted %d staged rows and %d commit-log entries older than %s (%s)",
                staged,
                logged,
                retention,
                self._options.table,
            )

    async def _send(self, chunk: list[Change], txn: str, first_seq: int) -> None:
        if self._purge_pending:
            await self._purge_expired()
        if self._exactly_once:
            call = partial(self._context.run_blocking, self._table.stage, chunk, txn, first_seq)
        else:
            call = partial(self._context.run_blocking, self._table.write, chunk)
        started = time.monotonic()
        outcome: WriteOutcome = await retrying(
            partial(within, self._options.operation_timeout, call),
            self._backoff,
            f"flush of {len(chunk)} rows into '{self._options.table}'",
            self._retries.inc,
        )
        self._send_time = (time.monotonic() - started) * 1000
        self._send_errors.inc(outcome.refused)
        if not self._exactly_once:
            self._sent.inc(outcome.written)


class _JdbcCommitter(Committer[str]):
    """Moves staged transactions into the target table, idempotently (see the module docs)."""

    def __init__(self, options: JdbcSinkOptions, context: WriterInitContext) -> None:
        self._options = options
        self._context = context
        self._table = TableWriter(options)
        self._backoff = _backoff(options)
        self._retries = context.metric_group.counter("numCommitRetries")

    async def commit(self, requests: Sequence[CommitRequest[str]]) -> None:
        """Commit each transaction; a transient failure is retried at the next checkpoint."""
        for request in requests:
            txn = request.committable
            try:
                applied = await retrying(
                    partial(
                        within,
                        self._options.operation_timeout,
                        partial(self._context.run_blocking, self._table.commit_staged, txn),
                    ),
                    self._backoff,
                    f"commit of transaction {txn}",
                    self._retries.inc,
                )
            except (RetryableError, JdbcTimeoutError):
                request.retry_later()  # commits are idempotent: a hung one is simply redone
            except JdbcError as exc:
                request.signal_failed_with_known_reason(exc)
            except Exception as exc:
                request.signal_failed_with_unknown_reason(exc)
            else:
                if not applied:
                    request.signal_already_committed()

    async def close(self) -> None:
        """Release the connections."""
        await self._context.run_blocking(self._table.close)


class JdbcSink(TwoPhaseCommittingSink[Record, str]):
    """Writes rows into a SQL table (SQLite, PostgreSQL, MySQL/MariaDB).

    Records are row dicts (column -> value; inserted, or upserted with ``key_columns``) or
    :class:`ChangelogRow` values (inserts, updates and deletes). See :class:`JdbcSinkOptions` for
    batching, retries, the error policy and the delivery guarantee.
    """

    def __init__(self, options: JdbcSinkOptions) -> None:
        if not isinstance(options, JdbcSinkOptions):
            raise TypeError(f"JdbcSink: expected JdbcSinkOptions, got {type(options).__name__}")
        self.options = options

    def __repr__(self) -> str:
        return f"JdbcSink(url={self.options.url!r}, table={self.options.table!r})"

    @property
    def delivery_guarantee(self) -> DeliveryGuarantee:
        """The configured guarantee (``AT_LEAST_ONCE`` by default)."""
        return self.options.delivery_guarantee

    def create_writer(self, context: WriterInitContext) -> CommittingSinkWriter[Record, str]:
        """A writer for one subtask."""
        return _JdbcWriter(self.options, context)

    def create_committer(self, context: WriterInitContext) -> Committer[str]:
        """The committer of one subtask (used with ``EXACTLY_ONCE`` only)."""
        return _JdbcCommitter(self.options, context)

    def committable_serializer(self) -> VersionedSerializer[str]:
        """Committables are transaction ids (strings)."""
        return _COMMITTABLE_SERIALIZER
