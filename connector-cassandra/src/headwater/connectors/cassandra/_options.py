"""The options models of the Cassandra connector: one frozen, keyword-only model per component.

Every model validates when constructed and raises :class:`headwater.core.ConfigurationError`
naming the model and the option. The password is a ``SecretStr``: its ``str`` and ``repr`` hide it,
and error messages never echo option values.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Self

from headwater.connectors.base import AsyncSinkOptions, OptionsModel, RetryPolicy
from headwater.core import DeliveryGuarantee
from pydantic import Field, SecretStr, model_validator
from pydantic.json_schema import SkipJsonSchema

__all__ = [
    "CassandraConnectionOptions",
    "CassandraLookupOptions",
    "CassandraSinkOptions",
    "CassandraSourceOptions",
    "CassandraWriterOptions",
    "Consistency",
    "RecordErrorPolicy",
    "RowFormat",
    "WriteKind",
]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\"[^\"]+\"")
_NAME_RULE = "a CQL identifier (letters, digits, _; double-quoted for case-sensitive names)"


def _check_identifier(value: str, option: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(f"{option} must be {_NAME_RULE}")
    return value


class Consistency(enum.Enum):
    """A Cassandra consistency level (the driver's ``ConsistencyLevel`` by name)."""

    ANY = "ANY"
    ONE = "ONE"
    TWO = "TWO"
    THREE = "THREE"
    QUORUM = "QUORUM"
    ALL = "ALL"
    LOCAL_QUORUM = "LOCAL_QUORUM"
    EACH_QUORUM = "EACH_QUORUM"
    SERIAL = "SERIAL"
    LOCAL_SERIAL = "LOCAL_SERIAL"
    LOCAL_ONE = "LOCAL_ONE"


class RowFormat(enum.Enum):
    """How the source (and the lookup) return a row."""

    DICT = "dict"
    """A ``dict`` of column name to value."""
    NAMED_TUPLE = "named_tuple"
    """A named tuple with one field per column (the driver's ``named_tuple_factory``)."""


class WriteKind(enum.Enum):
    """The statement the sink prepares from ``table`` and ``key_columns`` (when ``cql`` is not set)."""

    INSERT = "insert"
    """``INSERT INTO table (columns...) VALUES (?...)``: an upsert of every field of the record."""
    UPDATE = "update"
    """``UPDATE table SET col = ? ... WHERE key = ?``: the non-key fields set on the row of the key."""
    DELETE = "delete"
    """``DELETE FROM table WHERE key = ?``: the row of the key is deleted."""


class RecordErrorPolicy(enum.Enum):
    """What the sink does with a record Cassandra refuses for good (a bad value, an invalid query)."""

    FAIL = "fail"
    """Fail the job with an error naming the record's key and the server's message (default)."""
    SKIP = "skip"
    """Drop the record, count it in ``numRecordsSendErrors`` and log the key and the message."""


class CassandraConnectionOptions(OptionsModel):
    """How to reach the Cassandra (or ScyllaDB) cluster."""

    contact_points: tuple[str, ...] = Field(
        default=("127.0.0.1",),
        min_length=1,
        description="Hosts (names or addresses) the driver contacts first; it discovers the rest.",
    )
    port: int = Field(default=9042, ge=1, le=65535, description="The native transport (CQL) port.")
    protocol_version: int | None = Field(
        default=None,
        ge=3,
        le=6,
        description="The CQL native protocol version; None negotiates the highest both sides "
        "speak. Set 3 for Cassandra 2.1 (its handshake breaks the driver's negotiation).",
    )
    username: str | None = Field(
        default=None, description="User for PasswordAuthenticator (with password)."
    )
    password: SecretStr | None = Field(
        default=None, description="Password for PasswordAuthenticator; never logged or shown."
    )
    local_datacenter: str | None = Field(
        default=None,
        description="Route requests to this datacenter's nodes first (DCAwareRoundRobinPolicy); "
        "None: the driver's default load balancing.",
    )
    connect_timeout: timedelta = Field(
        default=timedelta(seconds=10),
        gt=timedelta(0),
        description="How long opening a connection to a node may take.",
    )
    request_timeout: timedelta = Field(
        default=timedelta(seconds=12),
        gt=timedelta(0),
        description="How long the driver waits for the answer to one request.",
    )

    @model_validator(mode="after")
    def _check_credentials(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be set together")
        return self


class CassandraSourceOptions(OptionsModel):
    """A bounded read of one table, split by token ranges of the partitioner."""

    connection: CassandraConnectionOptions = Field(
        default=CassandraConnectionOptions(), description="How to reach the cluster."
    )
    keyspace: str = Field(description="The keyspace of the table.")
    table: str = Field(description="The table to read.")
    columns: tuple[str, ...] | None = Field(
        default=None, description="The columns to read; None reads every column."
    )
    where: str | None = Field(
        default=None,
        description="A CQL condition on clustering (or indexed) columns added to each split's "
        "token-range condition, e.g. \"day = '2024-01-01'\". No bind markers.",
    )
    allow_filtering: bool = Field(
        default=False,
        description="Append ALLOW FILTERING (needed by some `where` conditions; a full scan "
        "on the server).",
    )
    split_count: int | None = Field(
        default=None,
        ge=1,
        description="Split the token ring into this many ranges; None sizes them from "
        "system.size_estimates (split_size_in_mb each), at least one per reader.",
    )
    split_size_in_mb: int = Field(
        default=64,
        ge=1,
        description="The data per split when sizing from system.size_estimates.",
    )
    fetch_size: int = Field(
        default=1000, ge=1, description="Rows per page (driver paging): one fetch of a split."
    )
    consistency: Consistency = Field(
        default=Consistency.LOCAL_ONE, description="The consistency level of the reads."
    )
    row_format: RowFormat = Field(
        default=RowFormat.DICT, description="Rows as dicts or as named tuples."
    )
    record_factory: SkipJsonSchema[Callable[..., Any] | None] = Field(
        default=None,
        exclude=True,
        description="Called with each row's columns as keyword arguments to build the record "
        "(a dataclass, a pydantic model, a function); overrides row_format.",
    )

    @model_validator(mode="after")
    def _check_names(self) -> Self:
        _check_identifier(self.keyspace, "keyspace")
        _check_identifier(self.table, "table")
        for column in self.columns or ():
            _check_identifier(column, "columns")
        if self.where is not None and "?" in self.where:
            raise ValueError("where must not contain bind markers (?)")
        return self


class CassandraWriterOptions(AsyncSinkOptions):
    """The async sink base's knobs, with Cassandra's defaults (entries are statements)."""

    max_batch_size: int = AsyncSinkOptions.default("max_batch_size", 500)
    # One request at a time keeps writes of one row in order across requests (inside a request
    # they go one partition lane at a time); more needs timestamp_field for ordered rows.
    max_in_flight_requests: int = AsyncSinkOptions.default("max_in_flight_requests", 1)
    max_buffered_requests: int = AsyncSinkOptions.default("max_buffered_requests", 5_000)
    max_time_in_buffer: timedelta = AsyncSinkOptions.default(
        "max_time_in_buffer", timedelta(milliseconds=100)
    )
    request_timeout: timedelta = AsyncSinkOptions.default("request_timeout", timedelta(seconds=60))


class CassandraSinkOptions(OptionsModel):
    """Where and how the sink writes; see the connector docs for the delivery guarantees."""

    connection: CassandraConnectionOptions = Field(
        default=CassandraConnectionOptions(), description="How to reach the cluster."
    )
    keyspace: str = Field(description="The keyspace of the table.")
    table: str | None = Field(
        default=None,
        description="The table the generated statement writes (with key_columns and kind); "
        "not used with cql.",
    )
    key_columns: tuple[str, ...] = Field(
        default=(),
        description="The primary-key columns (partition and clustering) of table: the WHERE "
        "of UPDATE and DELETE, and the key named in errors.",
    )
    columns: tuple[str, ...] | None = Field(
        default=None,
        description="The columns written by INSERT/UPDATE (record fields of the same names); "
        "None: every column of the table.",
    )
    kind: WriteKind = Field(default=WriteKind.INSERT, description="The generated statement.")
    cql: str | None = Field(
        default=None,
        description="A user statement with named bind markers (:field) filled from each "
        "record's fields, e.g. 'UPDATE t SET c = c + 1 WHERE k = :k'; replaces table/kind.",
    )
    consistency: Consistency = Field(
        default=Consistency.LOCAL_QUORUM, description="The consistency level of the writes."
    )
    ttl: timedelta | None = Field(
        default=None,
        description="USING TTL for generated INSERT/UPDATE statements; None: no expiry.",
    )
    timestamp_field: str | None = Field(
        default=None,
        description="The record field (microseconds since the epoch, or a datetime) written "
        "as USING TIMESTAMP, so replays resolve last-write-wins by the record's time.",
    )
    batch_by_partition: bool = Field(
        default=False,
        description="Send the statements of one request that share a partition key as one "
        "UNLOGGED batch (one mutation per partition); helps with many rows per partition.",
    )
    max_concurrent_requests: int = Field(
        default=64,
        ge=1,
        description="The most statements (or batches) awaiting an answer at once, across the "
        "writer's requests and commits; writes wait (backpressure) beyond it.",
    )
    delivery_guarantee: DeliveryGuarantee = Field(
        default=DeliveryGuarantee.AT_LEAST_ONCE,
        description="AT_LEAST_ONCE writes at once and flushes on checkpoints; EXACTLY_ONCE "
        "keeps a checkpoint's writes in it and applies them after it completes, once.",
    )
    commit_chunk_size: int = Field(
        default=50,
        ge=1,
        le=1000,
        description="EXACTLY_ONCE: statements applied with one commit marker in one batch.",
    )
    marker_table: str = Field(
        default="headwater_commits",
        description="EXACTLY_ONCE: the table (in keyspace) of commit markers; created if missing.",
    )
    marker_ttl: timedelta = Field(
        default=timedelta(days=7),
        gt=timedelta(seconds=0),
        description="EXACTLY_ONCE: how long commit markers are kept (longer than any restore "
        "from an old checkpoint).",
    )
    error_policy: RecordErrorPolicy = Field(
        default=RecordErrorPolicy.FAIL,
        description="What to do with a record Cassandra refuses for good.",
    )
    retry_policy: RetryPolicy = Field(
        default=RetryPolicy(),
        description="Backoff and limits for timeouts, unavailable nodes and lost connections.",
    )
    writer: CassandraWriterOptions = Field(
        default=CassandraWriterOptions(),
        description="Batching and buffering of the async sink base (AT_LEAST_ONCE).",
    )

    @model_validator(mode="after")
    def _check_statement(self) -> Self:
        _check_identifier(self.keyspace, "keyspace")
        _check_identifier(self.marker_table, "marker_table")
        if self.cql is None:
            if self.table is None:
                raise ValueError("set table (with key_columns) or cql")
            _check_identifier(self.table, "table")
            if self.kind is not WriteKind.INSERT and not self.key_columns:
                raise ValueError(f"key_columns are needed for {self.kind.value} statements")
        elif self.table is not None:
            raise ValueError("set table or cql, not both")
        for column in (*self.key_columns, *(self.columns or ())):
            _check_identifier(column, "key_columns/columns")
        if self.ttl is not None and self.ttl < timedelta(seconds=1):
            raise ValueError("ttl must be at least one second")
        return self


class CassandraLookupOptions(OptionsModel):
    """Looks rows up by partition key, for async I/O enrichment."""

    connection: CassandraConnectionOptions = Field(
        default=CassandraConnectionOptions(), description="How to reach the cluster."
    )
    keyspace: str = Field(description="The keyspace of the table.")
    table: str = Field(description="The table to look rows up in.")
    key_columns: tuple[str, ...] = Field(
        min_length=1, description="The partition-key columns a lookup key gives values for."
    )
    columns: tuple[str, ...] | None = Field(
        default=None, description="The columns returned; None returns every column."
    )
    consistency: Consistency = Field(
        default=Consistency.LOCAL_ONE, description="The consistency level of the reads."
    )
    row_format: RowFormat = Field(
        default=RowFormat.DICT, description="Rows as dicts or as named tuples."
    )
    cache_ttl: timedelta | None = Field(
        default=None, description="Keep looked-up rows this long; None: no cache."
    )
    cache_max_keys: int = Field(
        default=10_000, ge=1, description="The most keys cached (least recently used dropped)."
    )
    cache_missing: bool = Field(
        default=True, description="Cache keys that have no rows too (with cache_ttl)."
    )
    retry_policy: RetryPolicy = Field(
        default=RetryPolicy(max_attempts=3),
        description="Retries of timeouts and unavailable errors.",
    )

    @model_validator(mode="after")
    def _check_names(self) -> Self:
        _check_identifier(self.keyspace, "keyspace")
        _check_identifier(self.table, "table")
        for column in (*self.key_columns, *(self.columns or ())):
            _check_identifier(column, "key_columns/columns")
        return self
