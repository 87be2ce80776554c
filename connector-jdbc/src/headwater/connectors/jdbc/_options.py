"""The options models of the JDBC connector: one frozen, keyword-only model per component.

Every model validates when constructed and raises :class:`headwater.core.ConfigurationError` naming
the connector, the component and the option. The connection URL is kept as a SQLAlchemy
:class:`~sqlalchemy.engine.URL`, whose ``str`` and ``repr`` hide the password; error messages never
echo input values, so a password cannot leak through them either.
"""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Self

from headwater.connectors.base import OptionsModel
from headwater.core import DeliveryGuarantee
from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)
from sqlalchemy.engine import URL, make_url

__all__ = [
    "DatabaseUrl",
    "ErrorPolicy",
    "JdbcLookupOptions",
    "JdbcSinkOptions",
    "JdbcSourceOptions",
]


def _to_url(value: Any) -> URL:
    if isinstance(value, URL):
        return value
    if not isinstance(value, str):
        raise TypeError("expected a connection URL string or a sqlalchemy URL")
    try:
        return make_url(value)
    except Exception:  # the message of make_url may quote the whole URL, password included
        raise ValueError(
            "not a valid SQLAlchemy URL (e.g. postgresql+psycopg://user:pw@host/db)"
        ) from None


DatabaseUrl = Annotated[
    URL,
    BeforeValidator(_to_url),
    PlainSerializer(lambda url: url.render_as_string(hide_password=True), return_type=str),
    WithJsonSchema({"type": "string", "format": "uri"}),
]
"""A database URL (``sqlite:///path``, ``postgresql+psycopg://...``, ``mysql+pymysql://...``)."""


class ErrorPolicy(enum.Enum):
    """What the sink does with a row the database refuses (constraint violation, bad value)."""

    FAIL = "fail"
    """Fail the task, naming the row's position in its batch (the default)."""
    SKIP = "skip"
    """Drop the row, count it in ``numRecordsSendErrors`` and log it (secrets masked)."""
    DEAD_LETTER = "dead_letter"
    """Write the row, as JSON with its error, to ``dead_letter_table`` and go on."""


class _Options(OptionsModel):
    """Shared behaviour: frozen, keyword-only, errors as ConfigurationError naming the option."""

    options_name: ClassVar[str | None] = "jdbc options"

    url: DatabaseUrl
    """The database URL; its password is never shown in logs, errors or reprs."""
    table: str = Field(min_length=1)
    """The table to read or write."""
    db_schema: str | None = None
    """The schema (PostgreSQL) or database (MySQL) of ``table``; ``None`` for the default."""
    connect_args: dict[str, Any] = Field(default_factory=dict, repr=False)
    """Extra keyword arguments for the DB-API driver's ``connect()`` (not shown in reprs)."""


class JdbcSinkOptions(_Options):
    """Options of :class:`~headwater.connectors.jdbc.JdbcSink`.

    Tuning: ``batch_size`` rows go to the database as one ``executemany`` per flush; larger batches
    raise throughput until the database's per-statement work dominates (1,000-5,000 is typical).
    ``batch_interval`` bounds how long a row waits in the buffer when input is slow.
    """

    options_name: ClassVar[str | None] = "jdbc sink"

    columns: tuple[str, ...] | None = None
    """The columns written; ``None`` for every column of the table. Each row must have them all."""
    key_columns: tuple[str, ...] = ()
    """Upsert and delete on these columns (a primary key or unique index); empty for plain inserts."""
    statement: str | None = None
    """Your own SQL run for every inserted/updated row, with ``:column`` placeholders."""
    create_table: bool = False
    """Create the table if it does not exist: with ``table_ddl`` if given, else from the first
    rows written (their keys, or ``columns``, in order; each column's type from its first
    non-null value: int, float, Decimal (``NUMERIC(38, 10)``), str, bytes, bool, datetime, date,
    time, timedelta, UUID, dict/list as JSON; ``key_columns`` are the primary key)."""
    table_ddl: str | None = None
    """The ``CREATE TABLE`` statement ``create_table`` runs when the table is missing."""
    batch_size: int = Field(default=1000, ge=1)
    """Rows per flush (one batch statement)."""
    batch_interval: timedelta | None = timedelta(seconds=1)
    """Flush a non-empty buffer at least this often; ``None`` flushes only by size and checkpoint."""
    max_retries: int = Field(default=5, ge=0)
    """Retries of a batch (or a commit) after a transient error (lost connection, deadlock)."""
    retry_backoff: timedelta = timedelta(milliseconds=100)
    """The first retry's delay; it doubles per retry (with jitter) up to ``max_retry_backoff``."""
    max_retry_backoff: timedelta = timedelta(seconds=5)
    """The longest delay between two retries."""
    operation_timeout: timedelta = timedelta(minutes=2)
    """The longest one database call (a flush or a commit) may take. A call that hangs (a
    half-open connection after a network partition) then fails the attempt, and the job restarts
    from its last checkpoint with new connections; a commit that hangs is tried again later. It
    also bounds the wait for a pooled connection, and on PostgreSQL it is the sessions'
    ``lock_timeout`` at half of it (a lock wait becomes a retryable error) and
    ``idle_in_transaction_session_timeout`` (the server ends a session whose client vanished
    mid-transaction and releases its locks)."""
    error_policy: ErrorPolicy = ErrorPolicy.FAIL
    """What to do with a row the database refuses."""
    dead_letter_table: str | None = None
    """Table for refused rows with ``error_policy=DEAD_LETTER`` (created if missing)."""
    redact_columns: frozenset[str] = frozenset()
    """Columns whose values are shown as ``***`` in errors and logs."""
    delivery_guarantee: DeliveryGuarantee = DeliveryGuarantee.AT_LEAST_ONCE
    """``AT_LEAST_ONCE`` writes at every flush; ``EXACTLY_ONCE`` stages rows and commits them per
    checkpoint (see the docs for the design and its limits)."""
    staging_table: str | None = None
    """Exactly-once: the staging table (default ``<table>_hw_staging``, created if missing)."""
    commit_log_table: str = "headwater_commits"
    """Exactly-once: the table recording committed transaction ids (created if missing)."""
    staging_retention: timedelta | None = timedelta(days=7)
    """Exactly-once: when a job starts, staged rows older than this are deleted (rows of
    checkpoints that never completed, which no commit will ever apply), and so are commit-log
    entries older than this. Keep it above the longest time a completed checkpoint may wait for
    its commit (an outage plus the recovery). ``None`` keeps both. Rows staged before
    transaction ids carried their time are never deleted."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.statement is not None and self.key_columns and self.columns is None:
            raise ValueError("a custom 'statement' with key_columns needs explicit 'columns'")
        if self.columns is not None and not self.columns:
            raise ValueError("'columns' must not be empty")
        if self.columns is not None and not set(self.key_columns) <= set(self.columns):
            raise ValueError("every key column must be one of 'columns'")
        if self.table_ddl is not None and not self.create_table:
            raise ValueError("'table_ddl' is used only with create_table = true")
        if (self.error_policy is ErrorPolicy.DEAD_LETTER) != (self.dead_letter_table is not None):
            raise ValueError("'dead_letter_table' is set exactly when error_policy is DEAD_LETTER")
        if self.staging_retention is not None and self.staging_retention <= timedelta(0):
            raise ValueError("'staging_retention' must be positive (or None to keep staged rows)")
        if self.operation_timeout <= timedelta(0):
            raise ValueError("'operation_timeout' must be positive")
        if self.max_retry_backoff < self.retry_backoff:
            raise ValueError("'max_retry_backoff' must be >= 'retry_backoff'")
        if self.batch_interval is not None and self.batch_interval <= timedelta(0):
            raise ValueError("'batch_interval' must be positive (or None)")
        if self.delivery_guarantee is DeliveryGuarantee.NONE:
            raise ValueError("'delivery_guarantee' NONE is not offered; use AT_LEAST_ONCE")
        return self


class JdbcSourceOptions(_Options):
    """Options of :class:`~headwater.connectors.jdbc.JdbcSource`.

    Bounded (``poll_interval=None``): the rows of ``table`` with ``lower_bound <= column <=
    upper_bound`` (bounds default to the column's min and max when the job starts), split into
    ``num_partitions`` ranges read in parallel. Unbounded (``poll_interval`` set): rows with
    ``column`` above a checkpointed high-water mark, polled every ``poll_interval``.
    """

    options_name: ClassVar[str | None] = "jdbc source"

    column: str = Field(min_length=1)
    """The split and resume column: numeric or timestamp, unique (a key), not null."""
    columns: tuple[str, ...] | None = None
    """The columns read; ``None`` for all."""
    where: str | None = None
    """An extra SQL condition (trusted text, ANDed to the range condition)."""
    lower_bound: int | float | None = None
    """Bounded mode: the smallest value read (default: the column's minimum at start)."""
    upper_bound: int | float | None = None
    """Bounded mode: the largest value read (default: the column's maximum at start)."""
    num_partitions: int | None = Field(default=None, ge=1)
    """Bounded mode: the number of ranges (default: the source's parallelism)."""
    fetch_size: int = Field(default=1000, ge=1)
    """Rows per query page; also the granularity of progress in checkpoints."""
    poll_interval: timedelta | None = None
    """Unbounded mode: how often to look for new rows once caught up."""
    start_after: int | float | None = None
    """Unbounded mode: the initial high-water mark (rows above it are read); ``None`` reads all."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if (
            self.lower_bound is not None
            and self.upper_bound is not None
            and self.upper_bound < self.lower_bound
        ):
            raise ValueError("'upper_bound' is below 'lower_bound'")
        if self.poll_interval is not None:
            if self.poll_interval <= timedelta(0):
                raise ValueError("'poll_interval' must be positive")
            if self.lower_bound is not None or self.upper_bound is not None:
                raise ValueError("bounds apply to bounded mode; use 'start_after' when polling")
        elif self.start_after is not None:
            raise ValueError("'start_after' applies to unbounded mode (set 'poll_interval')")
        return self


class JdbcLookupOptions(_Options):
    """Options of :class:`~headwater.connectors.jdbc.JdbcLookup`."""

    options_name: ClassVar[str | None] = "jdbc lookup"

    key_columns: tuple[str, ...] = Field(min_length=1)
    """The columns matched against the lookup key (in this order)."""
    columns: tuple[str, ...] | None = None
    """The columns returned; ``None`` for all."""
    cache_ttl: timedelta | None = timedelta(minutes=1)
    """How long a looked-up result is reused; ``None`` disables the cache."""
    cache_max_rows: int = Field(default=10_000, ge=1)
    """The most keys kept in the cache (least recently used are evicted first)."""
    cache_missing: bool = True
    """Whether an empty result is cached too."""
    max_retries: int = Field(default=3, ge=0)
    """Retries of a lookup after a transient error."""
    retry_backoff: timedelta = timedelta(milliseconds=100)
    """The first retry's delay; it doubles per retry."""
    max_retry_backoff: timedelta = timedelta(seconds=2)
    """The longest delay between two retries."""
