"""The options models of the Kafka connector: frozen, keyword-only, validated at construction.

Every model raises :class:`headwater.core.ConfigurationError` naming the connector component and
the option at fault; error messages never echo option values, and ``repr`` masks secret client
properties (SASL passwords, OAuth tokens, TLS contexts), so secrets do not leak into logs.

The docs' options tables are generated from these models' JSON Schema.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, Self

from headwater.connectors.base import OptionsModel, mask_settings
from headwater.core import ConfigurationError, DeliveryGuarantee
from pydantic import Field, field_validator, model_validator

__all__ = [
    "AtTimestamp",
    "Committed",
    "Earliest",
    "KafkaClientOptions",
    "KafkaSinkOptions",
    "KafkaSourceOptions",
    "Latest",
    "PartitionOffset",
    "SpecificOffsets",
    "StartingOffsets",
    "StoppingOffsets",
]


_MANAGED = {
    "bootstrap_servers": "bootstrap_servers",
    "client_id": "client_id",
    "group_id": "group_id",
    "enable_auto_commit": "never auto-committed: offsets are committed on checkpoints",
    "isolation_level": "isolation_level",
    "transactional_id": "transactional_id_prefix",
    "transaction_timeout_ms": "transaction_timeout",
    "enable_idempotence": "delivery_guarantee",
    "acks": "delivery_guarantee",
}
"""Client settings the connector sets itself, and the option to use instead."""


class _Options(OptionsModel):
    """Frozen, keyword-only; invalid values raise ConfigurationError naming component and option."""

    options_name: ClassVar[str | None] = "kafka"


# -- offsets -------------------------------------------------------------------------------------
class Earliest(_Options):
    """Start at the earliest offset still in the log."""

    kind: Literal["earliest"] = "earliest"


class Latest(_Options):
    """Start (or stop) at the end of each partition as it is when the partition is discovered."""

    kind: Literal["latest"] = "latest"


class Committed(_Options):
    """Start at the consumer group's committed offset; ``reset`` applies where none is committed."""

    kind: Literal["committed"] = "committed"
    reset: Literal["earliest", "latest", "fail"] = Field(
        default="earliest",
        description="Where to start in a partition without a committed offset ('fail' raises).",
    )


class AtTimestamp(_Options):
    """The first offset whose record timestamp is at or after ``timestamp`` (the end if none is)."""

    kind: Literal["timestamp"] = "timestamp"
    timestamp: datetime = Field(description="A timezone-aware point in time.")

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must be timezone-aware (e.g. datetime(..., tzinfo=UTC))")
        return value

    @property
    def millis(self) -> int:
        """The timestamp in epoch milliseconds (Kafka's unit)."""
        return int(self.timestamp.timestamp() * 1000)


class PartitionOffset(_Options):
    """An offset of one partition."""

    topic: str = Field(min_length=1)
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


class SpecificOffsets(_Options):
    """Given offsets per partition; partitions not listed use ``otherwise``."""

    kind: Literal["specific"] = "specific"
    offsets: list[PartitionOffset] = Field(description="The offset of each listed partition.")
    otherwise: Literal["earliest", "latest"] = Field(
        default="earliest", description="The offset of partitions not listed."
    )

    def lookup(self) -> dict[tuple[str, int], int]:
        """The offsets by ``(topic, partition)``."""
        return {(p.topic, p.partition): p.offset for p in self.offsets}


StartingOffsets = Annotated[
    Earliest | Latest | Committed | AtTimestamp | SpecificOffsets, Field(discriminator="kind")
]
"""Where a source starts reading each partition."""
StoppingOffsets = Annotated[Latest | AtTimestamp | SpecificOffsets, Field(discriminator="kind")]
"""Where a bounded source stops reading each partition (exclusive)."""


# -- clients -------------------------------------------------------------------------------------
class KafkaClientOptions(_Options):
    """How to reach the Kafka cluster (shared by the source and the sink)."""

    bootstrap_servers: str = Field(
        min_length=1, description="Comma-separated host:port list of brokers to bootstrap from."
    )
    client_id: str | None = Field(default=None, description="The client id sent to the brokers.")
    request_timeout: timedelta = Field(
        default=timedelta(seconds=40),
        gt=timedelta(0),
        description="How long one request may take before it fails.",
    )
    properties: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Further aiokafka client keyword arguments, passed through unchanged: TLS "
            "(security_protocol, ssl_context), SASL (sasl_mechanism, sasl_plain_username, "
            "sasl_plain_password, sasl_oauth_token_provider), compression, fetch and batch sizes. "
            "Secret values are masked in repr, errors and logs."
        ),
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError("expected host:port[,host:port...]")
        return value

    @field_validator("properties")
    @classmethod
    def _unmanaged(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if key in _MANAGED:
                raise ValueError(f"'{key}' is set by the connector; use {_MANAGED[key]} instead")
        return value

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, (mask_settings(value) if name == "properties" else value)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments common to every aiokafka client built from these options."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "request_timeout_ms": int(self.request_timeout.total_seconds() * 1000),
            **self.properties,
        }
        if self.client_id is not None:
            kwargs["client_id"] = self.client_id
        return kwargs


class KafkaSourceOptions(KafkaClientOptions):
    """Options of :class:`~headwater.connectors.kafka.KafkaSource`."""

    options_name: ClassVar[str | None] = "kafka source"

    topics: list[str] | None = Field(default=None, description="The topics to read.")
    topic_pattern: str | None = Field(
        default=None, description="A regular expression; every matching topic is read."
    )
    group_id: str | None = Field(
        default=None,
        description="Consumer group for committed starting offsets and offset commits on checkpoints.",
    )
    starting_offsets: StartingOffsets = Field(
        default_factory=Earliest, description="Where reading starts in each partition."
    )
    stopping_offsets: StoppingOffsets | None = Field(
        default=None,
        description="Where reading stops; a source with stopping offsets is bounded.",
    )
    partition_discovery_interval: timedelta | None = Field(
        default=timedelta(seconds=30),
        description="How often to look for new topics and partitions; None disables (bounded "
        "sources never discover).",
    )
    commit_offsets_on_checkpoint: bool = Field(
        default=True,
        description="Commit the checkpointed offsets to the consumer group when a checkpoint "
        "completes (for monitoring and 'committed' starts). Needs group_id.",
    )
    isolation_level: Literal["read_committed", "read_uncommitted"] = Field(
        default="read_committed",
        description="read_committed hides records of open and aborted transactions.",
    )
    max_records_per_fetch: int = Field(
        default=5000, ge=1, description="Most records one fetch (one poll) returns."
    )
    fetch_timeout: timedelta = Field(
        default=timedelta(milliseconds=100),
        gt=timedelta(0),
        description="How long one fetch waits for records before it checks for new splits.",
    )

    @field_validator("topic_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if (self.topics is None) == (self.topic_pattern is None):
            raise ValueError("set exactly one of 'topics' and 'topic_pattern'")
        if self.topics is not None and not all(self.topics):
            raise ValueError("option 'topics': names must not be empty")
        if isinstance(self.starting_offsets, Committed) and self.group_id is None:
            raise ValueError("option 'starting_offsets': committed offsets need a group_id")
        if self.partition_discovery_interval is not None and (
            self.partition_discovery_interval <= timedelta(0)
        ):
            raise ValueError("option 'partition_discovery_interval': must be positive or None")
        return self

    def matches(self, topic: str) -> bool:
        """Whether ``topic`` is one this source reads."""
        if self.topics is not None:
            return topic in self.topics
        assert self.topic_pattern is not None
        return re.fullmatch(self.topic_pattern, topic) is not None


class KafkaSinkOptions(KafkaClientOptions):
    """Options of :class:`~headwater.connectors.kafka.KafkaSink`."""

    options_name: ClassVar[str | None] = "kafka sink"

    delivery_guarantee: DeliveryGuarantee = Field(
        default=DeliveryGuarantee.AT_LEAST_ONCE,
        description="NONE (fire and forget), AT_LEAST_ONCE (wait for acks at every checkpoint) "
        "or EXACTLY_ONCE (Kafka transactions committed when checkpoints complete).",
    )
    transactional_id_prefix: str | None = Field(
        default=None,
        description="Required for EXACTLY_ONCE: unique per job writing to the cluster; "
        "transactional ids are derived from it, the subtask and a counter.",
    )
    transaction_timeout: timedelta = Field(
        default=timedelta(minutes=15),
        gt=timedelta(0),
        description="The broker aborts a transaction open longer than this: it must exceed the "
        "checkpoint interval plus the checkpoint timeout, and the time a restart takes.",
    )
    linger: timedelta = Field(
        default=timedelta(milliseconds=5),
        ge=timedelta(0),
        description="How long the producer waits to fill a batch.",
    )
    max_batch_size: int = Field(
        default=256 * 1024, ge=1024, description="Most bytes per partition batch."
    )
    compression: Literal["gzip", "snappy", "lz4", "zstd"] | None = Field(
        default=None,
        description="Batch compression (snappy, lz4 and zstd need the extra).",
    )

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if self.delivery_guarantee is DeliveryGuarantee.EXACTLY_ONCE:
            if not self.transactional_id_prefix:
                raise ValueError(
                    "option 'transactional_id_prefix': required with EXACTLY_ONCE (unique per job)"
                )
        elif self.transactional_id_prefix is not None:
            raise ValueError("option 'transactional_id_prefix': only used with EXACTLY_ONCE")
        return self

    def check_checkpointing(self, interval: timedelta | None, timeout: timedelta) -> None:
        """Refuse a transaction timeout the broker would hit before a checkpoint commits.

        A transaction is open from its first record until the checkpoint after it completes:
        up to one checkpoint interval plus one checkpoint's duration (at most its timeout).
        """
        if self.delivery_guarantee is not DeliveryGuarantee.EXACTLY_ONCE or interval is None:
            return
        needed = interval + timeout
        if self.transaction_timeout <= needed:
            raise ConfigurationError(
                f"{self.options_name}: option 'transaction_timeout' ({self.transaction_timeout}) "
                f"must exceed the checkpoint interval plus the checkpoint timeout ({needed}): "
                f"raise transaction_timeout (the broker's transaction.max.timeout.ms permitting) "
                f"or lower the checkpoint timeout"
            )

    def producer_kwargs(self) -> dict[str, Any]:
        """Aiokafka producer keyword arguments (without transactional settings)."""
        kwargs = self.client_kwargs()
        kwargs.setdefault("linger_ms", int(self.linger.total_seconds() * 1000))
        kwargs.setdefault("max_batch_size", self.max_batch_size)
        if self.compression is not None:
            kwargs["compression_type"] = self.compression
        if self.delivery_guarantee is DeliveryGuarantee.NONE:
            kwargs["acks"] = 1
        else:
            kwargs["acks"] = "all"
            kwargs["enable_idempotence"] = True
        return kwargs
