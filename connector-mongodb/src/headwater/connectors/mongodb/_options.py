"""The options of the MongoDB connector: frozen, keyword-only, validated at construction.

The docs page's options tables are generated from these models' JSON Schemas. The connection URI
is a pydantic ``SecretStr`` (it may carry a password): it never shows in reprs, logs or errors;
connector-base's :func:`mask_url` is what messages name.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from headwater.connectors.base import OptionsModel, RetryPolicy, mask_url
from headwater.core import DeliveryGuarantee
from pydantic import Field, SecretStr, field_validator, model_validator

__all__ = [
    "MongoConnectionOptions",
    "MongoLookupOptions",
    "MongoSinkOptions",
    "MongoSourceOptions",
]

StartupMode = Literal["snapshot", "initial", "latest", "timestamp"]
PartitionStrategy = Literal["sample", "split-vector", "single", "pagination"]
FullDocument = Literal["default", "update_lookup", "when_available", "required"]
BeforeChange = Literal["off", "when_available", "required"]
Output = Literal["document", "change_event", "changelog"]
WriteMode = Literal["insert", "upsert", "update", "delete"]


class MongoConnectionOptions(OptionsModel):
    """How to reach MongoDB (shared by the source, the sink and the lookup)."""

    uri: SecretStr = Field(
        description="The connection string, e.g. mongodb://host:27017/?replicaSet=rs0; "
        "credentials in it never appear in logs or errors."
    )
    database: str | None = Field(
        default=None,
        min_length=1,
        description="The database. Required by the sink and the lookup, and by a snapshot; a "
        "change stream without it watches the whole deployment.",
    )
    collection: str | None = Field(
        default=None,
        min_length=1,
        description="The collection. Required by the sink, the lookup and a snapshot; a change "
        "stream without it watches the whole database.",
    )
    server_selection_timeout: timedelta = Field(
        default=timedelta(seconds=30),
        gt=timedelta(0),
        description="How long to wait for a usable server before an operation fails (retryable).",
    )
    request_timeout: timedelta = Field(
        default=timedelta(seconds=30),
        gt=timedelta(0),
        description="How long one request may wait for a socket answer before it fails "
        "(retryable).",
    )

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if not text.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError(
                f"must start with mongodb:// or mongodb+srv://, got {mask_url(text)!r}"
            )
        return value

    @property
    def where(self) -> str:
        """``database.collection`` (or less) and the redacted URI, for messages."""
        namespace = ".".join(p for p in (self.database, self.collection) if p) or "deployment"
        return f"{namespace} at {mask_url(self.uri.get_secret_value())}"

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AsyncMongoClient`` (besides the URI)."""
        return {
            "serverSelectionTimeoutMS": int(self.server_selection_timeout.total_seconds() * 1000),
            "socketTimeoutMS": int(self.request_timeout.total_seconds() * 1000),
            "tz_aware": True,
        }


class MongoSourceOptions(MongoConnectionOptions):
    """What the source reads and how it splits and starts."""

    startup_mode: StartupMode = Field(
        default="snapshot",
        description="snapshot: read the collection once and end (bounded). initial: snapshot "
        "at one cluster time, then the change stream from just after it (no gap, no "
        "duplicate). latest: the change stream from now. timestamp: the change stream from "
        "startup_timestamp.",
    )
    startup_timestamp: datetime | None = Field(
        default=None,
        description="Where startup_mode='timestamp' starts (an aware datetime; cluster time).",
    )
    filter: dict[str, Any] | None = Field(
        default=None, description="A find filter: the snapshot reads only matching documents."
    )
    projection: dict[str, Any] | None = Field(
        default=None, description="A find projection applied to snapshot documents."
    )
    change_stream_pipeline: list[dict[str, Any]] | None = Field(
        default=None,
        description="Aggregation stages appended to the change stream (e.g. a $match on "
        "operationType).",
    )
    partition_strategy: PartitionStrategy = Field(
        default="sample",
        description="How a snapshot is split by _id ranges: sample ($sample + $bucketAuto), "
        "split-vector (the splitVector command), single (one split), pagination (every "
        "partition_records documents).",
    )
    partition_size_mb: float = Field(
        default=64.0,
        gt=0,
        description="The target size of a split for sample and split-vector (split-vector "
        "rounds it up to whole MB, at least 1).",
    )
    samples_per_partition: int = Field(
        default=10, ge=1, description="Documents sampled per split by the sample strategy."
    )
    partition_records: int = Field(
        default=10_000, ge=1, description="Documents per split for the pagination strategy."
    )
    fetch_size: int = Field(
        default=2048, ge=1, description="Documents or change events fetched per batch."
    )
    full_document: FullDocument = Field(
        default="update_lookup",
        description="The post-image of update events: default (none), update_lookup (the "
        "current document), when_available or required (stored post-images).",
    )
    full_document_before_change: BeforeChange = Field(
        default="off",
        description="The pre-image of update, replace and delete events: off, when_available "
        "or required (the collection needs changeStreamPreAndPostImages).",
    )
    max_await_time: timedelta = Field(
        default=timedelta(milliseconds=500),
        gt=timedelta(0),
        description="How long one change-stream fetch waits for new events.",
    )
    output: Output = Field(
        default="document",
        description="What a record is: document (a snapshot document, or the full document "
        "of an insert, update or replace, through the format), change_event "
        "(MongoChangeEvent) or changelog (MongoChangelogRecord, for an upsert sink).",
    )
    event_time_field: str | None = Field(
        default=None,
        description="A document field (a datetime or epoch milliseconds) giving the event "
        "time; by default change events carry their cluster time and snapshot documents none.",
    )

    @model_validator(mode="after")
    def _check(self) -> MongoSourceOptions:
        if self.startup_mode in ("snapshot", "initial") and (
            self.database is None or self.collection is None
        ):
            raise ValueError(
                f"startup_mode={self.startup_mode!r} reads a collection: set database and "
                "collection"
            )
        if self.collection is not None and self.database is None:
            raise ValueError("collection is set without database")
        if (self.startup_mode == "timestamp") != (self.startup_timestamp is not None):
            raise ValueError("startup_timestamp is set exactly when startup_mode='timestamp'")
        if self.startup_timestamp is not None and self.startup_timestamp.tzinfo is None:
            raise ValueError("startup_timestamp must be an aware datetime")
        return self

    @property
    def bounded(self) -> bool:
        """Whether the source ends (a snapshot only)."""
        return self.startup_mode == "snapshot"


class MongoSinkOptions(MongoConnectionOptions):
    """Where and how the sink writes."""

    write_mode: WriteMode = Field(
        default="upsert",
        description="insert (insertOne), upsert (replace the document with the same key, or "
        "insert it), update ($set of the record's fields on the document with its key, "
        "upserting) or delete (by key). Changelog records choose per record instead.",
    )
    key_fields: tuple[str, ...] = Field(
        default=("_id",),
        min_length=1,
        description="The fields that identify a document for upsert, update and delete; "
        "other than _id, they should carry a unique index.",
    )
    delivery_guarantee: DeliveryGuarantee = Field(
        default=DeliveryGuarantee.AT_LEAST_ONCE,
        description="at_least_once: bulk writes flushed at every checkpoint. exactly_once: a "
        "checkpoint's writes committed in MongoDB transactions with a per-writer marker "
        "document, after the checkpoint completes. none: as at_least_once.",
    )
    max_batch_size: int = Field(
        default=1000, ge=1, description="The most writes in one bulk_write request."
    )
    max_batch_size_in_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1,
        description="The most BSON bytes in one bulk_write request.",
    )
    max_in_flight_requests: int = Field(
        default=1,
        ge=1,
        description="bulk_write requests in flight at once (at-least-once); above 1, writes "
        "to one key in different batches may be applied out of order.",
    )
    max_time_in_buffer: timedelta = Field(
        default=timedelta(seconds=1),
        gt=timedelta(0),
        description="A write waits at most this long for a full batch (at-least-once).",
    )
    max_record_size_in_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1,
        description="The largest BSON document accepted (MongoDB's limit is 16 MiB); a larger "
        "one goes to the sink's error policy.",
    )
    transaction_max_writes: int = Field(
        default=5000,
        ge=1,
        description="exactly_once: the most writes in one transaction; a larger checkpoint is "
        "committed in several, each moving the writer's marker (still exactly-once).",
    )
    marker_collection: str = Field(
        default="headwater_sink_markers",
        min_length=1,
        description="exactly_once: the collection (in database) of the per-writer marker "
        "documents that record the last committed checkpoint.",
    )
    retry_policy: RetryPolicy = Field(
        default=RetryPolicy(),
        description="Backoff and limits for retryable errors (network, NotWritablePrimary, "
        "WriteConflict, transient transaction errors).",
    )

    @model_validator(mode="after")
    def _check_sink(self) -> MongoSinkOptions:
        if self.database is None or self.collection is None:
            raise ValueError("the sink writes a collection: set database and collection")
        return self


class MongoLookupOptions(MongoConnectionOptions):
    """How :class:`MongoLookup` finds documents."""

    key_field: str = Field(default="_id", min_length=1, description="The field looked up.")
    projection: dict[str, Any] | None = Field(
        default=None, description="A find projection of the returned document."
    )
    cache_size: int = Field(
        default=0, ge=0, description="Documents (and misses) cached per lookup; 0: no cache."
    )
    cache_ttl: timedelta = Field(
        default=timedelta(minutes=1),
        gt=timedelta(0),
        description="How long a cached answer is used.",
    )

    @model_validator(mode="after")
    def _check_lookup(self) -> MongoLookupOptions:
        if self.database is None or self.collection is None:
            raise ValueError("the lookup reads a collection: set database and collection")
        return self
