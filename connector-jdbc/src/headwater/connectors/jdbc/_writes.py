"""Blocking writes of row batches into a table, with refused rows handled by the error policy.

A batch of changes is applied in one transaction: consecutive changes are reduced to the last one
per key (with key columns), then one ``executemany`` for upserts/inserts and one for deletes. When
the database refuses the batch because of a row (a constraint, a bad value), the batch is applied
again row by row, each under a savepoint, to find the refused rows: ``FAIL`` raises
:class:`JdbcRowError` naming the first one's position; ``SKIP`` and ``DEAD_LETTER`` leave them out.

Exactly-once staging also lives here: rows are staged under a transaction id, and
:meth:`TableWriter.commit_staged` applies them to the target table, records the id in the commit log
and deletes them from the staging table, all in one local transaction (or does nothing if the id is
already in the log).

Every method blocks: run it on a worker thread (``context.run_blocking``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from headwater.connectors.jdbc._database import (
    STAGING_KIND,
    STAGING_SEQ,
    STAGING_TXN,
    CompiledStatement,
    MissingTableError,
    connect,
    create_tables,
    reflect_table,
    staging_table,
    table_from_rows,
    write_statements,
)
from headwater.connectors.jdbc._errors import (
    ErrorKind,
    JdbcError,
    JdbcRowError,
    classify,
    database_message,
    describe_row,
    redact_values,
)
from headwater.connectors.jdbc._options import ErrorPolicy, JdbcSinkOptions
from headwater.connectors.jdbc._records import RowKind
from headwater.core import DeliveryGuarantee
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    insert,
    select,
)
from sqlalchemy import exc as sa_exc

__all__ = ["Change", "TableWriter", "WriteOutcome", "transaction_id_prefix"]

Change = tuple[RowKind, Mapping[str, Any]]
"""One buffered change: its kind and the row."""


def transaction_id_prefix(created: float) -> str:
    """The start of the ids of transactions created at ``created`` (epoch seconds).

    ``t`` and the second as 10 hex digits: ids sort by creation time, as strings, on every
    database, and :meth:`TableWriter.purge_expired` can delete the expired ones by a range.
    """
    return f"t{int(created):010x}"


_log = logging.getLogger("headwater.connectors.jdbc")
_UPSERT_KINDS = (RowKind.INSERT, RowKind.UPDATE_AFTER)
Hook = Callable[[Connection], bool]
Apply = Callable[[Connection, Sequence[Change], int], None]
"""Applies changes; the int is the position of the first one in its batch."""


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What a write did: rows applied and rows refused (skipped or dead-lettered)."""

    written: int
    refused: int


class TableWriter:
    """Writes changes into one table (and stages/commits them for exactly-once). Blocking."""

    def __init__(self, options: JdbcSinkOptions, pool_size: int = 1) -> None:
        self._options = options
        self._engine: Engine | None = None
        self._pool_size = pool_size
        self._write: CompiledStatement
        self._delete: CompiledStatement | None
        self._keys: Callable[[Mapping[str, Any]], Any] | None = None
        self._columns: tuple[str, ...] = ()
        self._staging: Table | None = None
        self._stage: CompiledStatement
        self._commit_log: Table
        self._dead_letter: Table | None = None

    # -- set-up --------------------------------------------------------------------------------
    def _open(self, changes: Sequence[Change] = ()) -> Engine:
        """Connect and prepare the statements; ``changes`` (the first rows) type a created table."""
        if self._engine is not None:
            return self._engine
        options = self._options
        engine = connect(
            options.url,
            options.connect_args,
            self._pool_size,
            operation_timeout=options.operation_timeout,
        )
        try:
            table = self._target(engine, changes)
            columns = options.columns or tuple(c.name for c in table.columns)
            self._write, self._delete = write_statements(
                engine, table, columns, options.key_columns, options.statement
            )
            self._columns = columns
            keys = options.key_columns
            if keys:
                self._keys = (
                    (lambda row: row[keys[0]])
                    if len(keys) == 1
                    else (lambda row: tuple(row[k] for k in keys))
                )
            metadata = MetaData()
            if options.dead_letter_table is not None:
                self._dead_letter = Table(
                    options.dead_letter_table,
                    metadata,
                    Column("id", Integer, primary_key=True, autoincrement=True),
                    Column("failed_at", DateTime, nullable=False),
                    Column("target_table", String(200), nullable=False),
                    Column("error", Text, nullable=False),
                    Column("row_json", Text, nullable=False),
                    schema=options.db_schema,
                )
            if options.delivery_guarantee is DeliveryGuarantee.EXACTLY_ONCE:
                name = options.staging_table or f"{options.table}_hw_staging"
                self._staging = staging_table(table, columns, name, metadata)
                self._stage = CompiledStatement.compile(
                    insert(self._staging).values(
                        {c.name: bindparam(c.name) for c in self._staging.c}
                    ),
                    engine,
                )
                self._commit_log = Table(
                    options.commit_log_table,
                    metadata,
                    Column("txn_id", String(128), primary_key=True),
                    Column("committed_at", DateTime, nullable=False),
                    schema=options.db_schema,
                )
            create_tables(engine, list(metadata.tables.values()))
        except BaseException:
            engine.dispose()
            raise
        self._engine = engine
        return engine

    def _target(self, engine: Engine, changes: Sequence[Change]) -> Table:
        """The table, created first if it is missing and ``create_table`` is on."""
        options = self._options
        try:
            with engine.connect() as connection:
                return reflect_table(connection, options.table, options.db_schema)
        except MissingTableError:
            if not options.create_table:
                raise
        if options.table_ddl is None:
            rows = [row for _kind, row in changes]
            create_tables(
                engine,
                [
                    table_from_rows(
                        options.table, options.db_schema, rows, options.columns, options.key_columns
                    )
                ],
            )
        else:
            try:
                with engine.begin() as connection:
                    connection.exec_driver_sql(options.table_ddl)
            except sa_exc.DBAPIError:  # another subtask may have created it first
                pass
        with engine.connect() as connection:
            return reflect_table(connection, options.table, options.db_schema)

    def close(self) -> None:
        """Release the connections."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- writing -------------------------------------------------------------------------------
    def write(self, changes: Sequence[Change]) -> WriteOutcome:
        """Apply ``changes`` to the table in one transaction (at-least-once flush)."""
        return self._transaction(changes, self._apply)

    def stage(self, changes: Sequence[Change], txn: str, first_seq: int) -> WriteOutcome:
        """Stage ``changes`` under ``txn``, numbered from ``first_seq`` (invisible until committed)."""
        self._open(changes)
        fields = self._stage.fields[3:]

        def apply(connection: Connection, batch: Sequence[Change], offset: int) -> None:
            params = []
            for seq, (kind, row) in enumerate(batch, first_seq + offset):
                params.append((txn, seq, kind.value, *(row[f] for f in fields)))
            connection.exec_driver_sql(self._stage.sql, params)

        # Rows are numbered by position, so refused ones leave gaps; order is kept.
        return self._transaction(changes, apply)

    def purge_expired(
        self, created_before: float, changes: Sequence[Change] = ()
    ) -> tuple[int, int]:
        """Delete what expired before ``created_before`` (epoch seconds); returns the counts.

        Staged rows of transactions created earlier (ids carry their creation time as
        fixed-width hex after a ``t``, which no legacy id, a hex run id, starts with), and
        commit-log entries written earlier. Dropping a log entry is safe: a commit deletes its
        staged rows in the same local transaction, so committing the same id again finds nothing
        to apply (it is reported as committed rather than already committed). ``changes`` are
        the rows about to be staged (for a table created from them).
        """
        engine = self._open(changes)
        staging, log = self._staging, self._commit_log
        assert staging is not None
        txn = staging.c[STAGING_TXN]
        before = transaction_id_prefix(created_before)
        with engine.begin() as connection:
            staged = connection.execute(staging.delete().where(txn.like("t%"), txn < before))
            logged = connection.execute(
                log.delete().where(log.c.committed_at < datetime.fromtimestamp(created_before, UTC))
            )
        return int(staged.rowcount or 0), int(logged.rowcount or 0)

    def commit_staged(self, txn: str) -> bool:
        """Apply the rows staged under ``txn`` and log ``txn``, in one transaction.

        Returns ``False`` when ``txn`` was committed before (nothing is done).
        """
        engine = self._open()
        staging, log = self._staging, self._commit_log
        assert staging is not None
        with engine.connect() as connection:
            rows = (
                connection.execute(
                    select(staging)
                    .where(staging.c[STAGING_TXN] == txn)
                    .order_by(staging.c[STAGING_SEQ])
                )
                .mappings()
                .all()
            )
        changes: list[Change] = [(RowKind(row[STAGING_KIND]), dict(row)) for row in rows]
        applied = False

        def claim(connection: Connection) -> bool:
            nonlocal applied
            found = connection.execute(select(log.c.txn_id).where(log.c.txn_id == txn)).first()
            if found is not None:
                return False
            connection.execute(insert(log).values(txn_id=txn, committed_at=datetime.now(UTC)))
            connection.execute(staging.delete().where(staging.c[STAGING_TXN] == txn))
            applied = True
            return True

        self._transaction(changes, self._apply, claim)
        return applied

    # -- internals -----------------------------------------------------------------------------
    def _apply(self, connection: Connection, changes: Sequence[Change], _offset: int = 0) -> None:
        if self._keys is None:
            if any(kind is RowKind.DELETE for kind, _ in changes):
                raise JdbcError("jdbc sink: a DELETE row needs 'key_columns'")
            rows = [row for kind, row in changes if kind is not RowKind.UPDATE_BEFORE]
            if rows:
                connection.exec_driver_sql(self._write.sql, self._write.parameters(rows))
            return
        last: dict[Any, Change] = {}
        key = self._keys
        for change in changes:
            if change[0] is not RowKind.UPDATE_BEFORE:
                last[key(change[1])] = change
        upserts = [row for kind, row in last.values() if kind in _UPSERT_KINDS]
        deletes = [row for kind, row in last.values() if kind is RowKind.DELETE]
        if upserts:
            connection.exec_driver_sql(self._write.sql, self._write.parameters(upserts))
        if deletes and self._delete is not None:
            connection.exec_driver_sql(self._delete.sql, self._delete.parameters(deletes))

    def _transaction(
        self,
        changes: Sequence[Change],
        apply: Apply,
        claim: Hook | None = None,
    ) -> WriteOutcome:
        engine = self._open(changes)
        try:
            with engine.begin() as connection:
                if claim is not None and not claim(connection):
                    return WriteOutcome(0, 0)
                apply(connection, changes, 0)
            return WriteOutcome(len(changes), 0)
        except Exception as exc:
            if classify(exc) is not ErrorKind.ROW:
                raise
        return self._isolate(engine, changes, apply, claim)

    def _isolate(
        self,
        engine: Engine,
        changes: Sequence[Change],
        apply: Apply,
        claim: Hook | None,
    ) -> WriteOutcome:
        options = self._options
        refused: list[tuple[Change, str]] = []
        with engine.begin() as connection:
            if claim is not None and not claim(connection):
                return WriteOutcome(0, 0)
            for index, change in enumerate(changes):
                try:
                    with connection.begin_nested():
                        apply(connection, [change], index)
                except Exception as exc:
                    if classify(exc) is not ErrorKind.ROW:
                        raise
                    shown = describe_row(dict(change[1]), options.redact_columns)
                    reason = redact_values(database_message(exc), change[1], options.redact_columns)
                    if options.error_policy is ErrorPolicy.FAIL:
                        raise JdbcRowError(
                            f"jdbc sink: table '{options.table}' refused row {index} of a batch "
                            f"of {len(changes)} ({change[0].name}): {reason}; "
                            f"row: {shown}",
                            index=index,
                            row=shown,
                        ) from exc
                    _log.warning(
                        "jdbc sink: %s row %d of a batch of %d: %s; row: %s",
                        options.error_policy.value,
                        index,
                        len(changes),
                        reason,
                        shown,
                    )
                    refused.append((change, reason))
            if refused and self._dead_letter is not None:
                now = datetime.now(UTC)
                connection.execute(
                    insert(self._dead_letter),
                    [
                        {
                            "failed_at": now,
                            "target_table": options.table,
                            "error": reason,
                            "row_json": json.dumps(
                                {"kind": change[0].name, "row": dict(change[1])}, default=str
                            ),
                        }
                        for change, reason in refused
                    ],
                )
        return WriteOutcome(len(changes) - len(refused), len(refused))
