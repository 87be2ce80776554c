"""Engines, table metadata and the SQL the connector runs, per dialect.

Everything here is blocking: call it through ``context.run_blocking`` (or a thread), never on the
event loop. Statements are compiled once, with a positional parameter style, to a DB-API string and
the order of its parameters; every flush then runs one ``executemany`` of plain tuples.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from operator import itemgetter
from typing import Any

from headwater.connectors.jdbc._errors import JdbcError
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Double,
    Engine,
    Interval,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    Time,
    Uuid,
    create_engine,
    delete,
    event,
    insert,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, bindparam

__all__ = [
    "CompiledStatement",
    "MissingTableError",
    "connect",
    "create_tables",
    "reflect_table",
    "staging_table",
    "table_from_rows",
    "write_statements",
]


# Server-side keepalives (seconds): a vanished client's session ends after about a minute.
_PG_KEEPALIVES = {
    "tcp_keepalives_idle": 30,
    "tcp_keepalives_interval": 10,
    "tcp_keepalives_count": 3,
}


def connect(
    url: URL,
    connect_args: Mapping[str, Any],
    pool_size: int = 2,
    operation_timeout: timedelta | None = None,
) -> Engine:
    """An engine for ``url`` with a positional parameter style (fast tuple parameters).

    SQLite gets explicit ``BEGIN`` so that savepoints work (pysqlite's implicit transactions break them).
    ``operation_timeout`` bounds every wait on the server too, so no worker thread stays blocked:
    the wait for a pooled connection; on PostgreSQL and MariaDB/MySQL the wait for a lock (half of
    it, then a retryable error); on PostgreSQL a session idle inside a transaction (the server
    ends it and releases its locks). PostgreSQL sessions also get server-side TCP keepalives, so
    the server notices a client lost in a network partition within about a minute.
    """
    backend = url.get_backend_name()
    args = dict(connect_args)
    if backend == "postgresql":
        args.setdefault("connect_timeout", 10)  # seconds; libpq waits forever by default
        settings = dict(_PG_KEEPALIVES)
        if operation_timeout is not None:
            ms = int(operation_timeout.total_seconds() * 1000)
            # A lock wait ends (retryably) well before the client gives up on the call.
            settings.update(lock_timeout=ms // 2, idle_in_transaction_session_timeout=ms)
        given = args.get("options") or ""
        # Settings the user passed in ``options`` win: they come last.
        args["options"] = " ".join([*(f"-c {k}={v}" for k, v in settings.items()), given]).strip()
    if backend in ("mysql", "mariadb") and operation_timeout is not None:
        # InnoDB waits 50 s for a row lock by default; end the wait (error 1205, retryable) well
        # before the client gives up on the call, as on PostgreSQL. A user's init_command wins.
        seconds = max(1, int(operation_timeout.total_seconds() // 2))
        args.setdefault("init_command", f"SET SESSION innodb_lock_wait_timeout = {seconds}")
    options: dict[str, Any] = {"connect_args": args}
    if backend != "sqlite" or (url.database or ":memory:") != ":memory:":
        options.update(pool_size=pool_size, max_overflow=0)
        if operation_timeout is not None:
            options["pool_timeout"] = operation_timeout.total_seconds()
    engine = create_engine(url, paramstyle="qmark" if backend == "sqlite" else "format", **options)
    if backend == "sqlite":

        @event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN")

    return engine


class MissingTableError(JdbcError):
    """The sink's table does not exist (and ``create_table`` is off)."""


def reflect_table(connection: Connection, name: str, schema: str | None) -> Table:
    """The metadata of an existing table."""
    try:
        return Table(name, MetaData(), schema=schema, autoload_with=connection)
    except sa_exc.NoSuchTableError:
        where = f"{schema}.{name}" if schema else name
        raise MissingTableError(
            f"jdbc: table '{where}' does not exist (create it, or set the sink's create_table "
            f"option to create it from the rows or from table_ddl)"
        ) from None


# Python value -> column type of a created table (bool before int: a bool is an int).
_TYPES: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (bool, lambda _v: Boolean()),
    (int, lambda _v: BigInteger()),
    (float, lambda _v: Double()),
    (Decimal, lambda _v: Numeric(38, 10)),
    (str, lambda _v: Text()),
    (bytes, lambda _v: LargeBinary()),
    (dt.datetime, lambda v: DateTime(timezone=v.tzinfo is not None)),
    (dt.date, lambda _v: Date()),
    (dt.time, lambda _v: Time()),
    (dt.timedelta, lambda _v: Interval()),
    (uuid.UUID, lambda _v: Uuid()),
    (dict, lambda _v: JSON()),
    (list, lambda _v: JSON()),
)


def _column_type(value: Any, key: bool) -> Any:
    if key and isinstance(value, str):
        return String(255)  # MySQL/MariaDB cannot index TEXT without a length
    for cls, make in _TYPES:
        if isinstance(value, cls):
            return make(value)
    return None


def table_from_rows(
    name: str,
    schema: str | None,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None,
    key_columns: Sequence[str],
) -> Table:
    """A table for ``rows``: each column's type from its first non-null value.

    The columns are ``columns``, or the first row's keys in order; ``key_columns`` form the
    primary key. Raises :class:`JdbcError` naming a column whose type cannot be told (only
    nulls, or a value of another type).
    """
    if not rows:
        raise JdbcError(f"jdbc: cannot create table '{name}' before the first row arrives")
    names = list(columns or rows[0].keys())
    table_columns = []
    for column in names:
        value = next((r[column] for r in rows if r.get(column) is not None), None)
        key = column in key_columns
        kind = _column_type(value, key)
        if kind is None:
            what = "only nulls" if value is None else f"a {type(value).__name__}"
            raise JdbcError(
                f"jdbc: cannot create table '{name}': column '{column}' has {what} in the first "
                f"rows; give the table's DDL (table_ddl) or create the table"
            )
        table_columns.append(
            Column(column, kind, primary_key=key, nullable=not key, autoincrement=False)
        )
    return Table(name, MetaData(), *table_columns, schema=schema)


def create_tables(engine: Engine, tables: Sequence[Table], attempts: int = 3) -> None:
    """Create the ``tables`` that do not exist yet.

    Parallel subtasks may race to create the same table; PostgreSQL can then fail even with
    ``IF NOT EXISTS``, so a failure is retried (the table then exists).
    """
    for attempt in range(attempts):
        try:
            with engine.begin() as connection:
                for table in tables:
                    connection.execute(CreateTable(table, if_not_exists=True))
            return
        except sa_exc.DBAPIError:
            if attempt == attempts - 1:
                raise


@dataclass(frozen=True, slots=True)
class CompiledStatement:
    """A DB-API statement string and the row fields its positional parameters take, in order."""

    sql: str
    fields: tuple[str, ...]

    @classmethod
    def compile(cls, statement: ClauseElement, engine: Engine) -> CompiledStatement:
        """Compile ``statement`` for ``engine``'s dialect."""
        compiled = statement.compile(dialect=engine.dialect)
        assert isinstance(compiled, SQLCompiler)
        return cls(compiled.string, tuple(compiled.positiontup or ()))

    def parameters(self, rows: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """One parameter tuple per row (``KeyError`` if a row lacks a field)."""
        fields = self.fields
        if len(fields) == 1:
            name = fields[0]
            return [(row[name],) for row in rows]
        getter: Callable[[Mapping[str, Any]], tuple[Any, ...]] = itemgetter(*fields)
        return [getter(row) for row in rows]


def write_statements(
    engine: Engine,
    table: Table,
    columns: Sequence[str],
    key_columns: Sequence[str],
    statement: str | None,
) -> tuple[CompiledStatement, CompiledStatement | None]:
    """The statement for inserted/updated rows and, with key columns, the one for deletes.

    With key columns the first is an upsert: ``INSERT ... ON CONFLICT (keys) DO UPDATE`` on SQLite
    and PostgreSQL, ``INSERT ... ON DUPLICATE KEY UPDATE`` on MySQL/MariaDB.
    """
    missing = [c for c in (*columns, *key_columns) if c not in table.c]
    if missing:
        raise JdbcError(f"jdbc: table '{table.name}' has no column(s) {', '.join(missing)}")
    values: dict[str, Any] = {c: bindparam(c) for c in columns}
    if statement is not None:
        write: ClauseElement = text(statement)
    elif not key_columns:
        write = insert(table).values(values)
    else:
        write = _upsert(engine.dialect.name, table, values, key_columns)
    deletion = None
    if key_columns:
        condition = [table.c[k] == bindparam(k) for k in key_columns]
        deletion = CompiledStatement.compile(delete(table).where(*condition), engine)
    return CompiledStatement.compile(write, engine), deletion


def _upsert(
    dialect: str, table: Table, values: dict[str, Any], key_columns: Sequence[str]
) -> ClauseElement:
    updated = [c for c in values if c not in key_columns]
    if dialect in ("postgresql", "sqlite"):
        module: Any = postgresql if dialect == "postgresql" else sqlite
        stmt = module.insert(table).values(values)
        if not updated:
            return stmt.on_conflict_do_nothing(index_elements=list(key_columns))  # type: ignore[no-any-return]
        return stmt.on_conflict_do_update(  # type: ignore[no-any-return]
            index_elements=list(key_columns), set_={c: stmt.excluded[c] for c in updated}
        )
    if dialect in ("mysql", "mariadb"):
        stmt = mysql.insert(table).values(values)
        assigned = updated or [key_columns[0]]
        return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in assigned})
    raise JdbcError(
        f"jdbc: upserts are not generated for dialect '{dialect}'; give your own 'statement'"
    )


STAGING_TXN, STAGING_SEQ, STAGING_KIND = "hw_txn", "hw_seq", "hw_kind"


def staging_table(target: Table, columns: Sequence[str], name: str, metadata: MetaData) -> Table:
    """The exactly-once staging table of ``target``.

    It has the written columns, unconstrained, plus the transaction id, the row's sequence number
    within it and its :class:`RowKind`.
    """
    return Table(
        name,
        metadata,
        Column(STAGING_TXN, String(128), primary_key=True),
        Column(STAGING_SEQ, BigInteger, primary_key=True, autoincrement=False),
        Column(STAGING_KIND, SmallInteger, nullable=False),
        *(Column(c, target.c[c].type, nullable=True) for c in columns),
        schema=target.schema,
    )
