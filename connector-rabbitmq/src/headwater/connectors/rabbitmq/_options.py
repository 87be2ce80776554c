"""The options of the RabbitMQ connector: frozen, keyword-only, validated at construction.

The docs page's options tables are generated from these models' JSON Schemas.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import pika
from headwater.connectors.base import AsyncSinkOptions, OptionsModel, RetryPolicy
from headwater.core import ConfigurationError, DeliveryGuarantee
from pydantic import Field, SecretStr, model_validator

__all__ = [
    "QueueBinding",
    "RabbitMQConnectionOptions",
    "RabbitMQSinkOptions",
    "RabbitMQSourceOptions",
    "RabbitMQWriterOptions",
]

_MAX_PREFETCH = 65_535  # basic.qos prefetch_count is a 16-bit field


class RabbitMQConnectionOptions(OptionsModel):
    """How to reach RabbitMQ (AMQP 0-9-1). The password never appears in logs or errors."""

    host: str = Field(default="localhost", description="The broker's host name or address.")
    port: int = Field(default=5672, ge=1, le=65_535, description="The broker's AMQP port.")
    virtual_host: str = Field(default="/", description="The virtual host to open.")
    username: str = Field(default="guest", description="The user to log in as.")
    password: SecretStr = Field(
        default=SecretStr("guest"), description="The user's password (kept secret in reprs)."
    )
    heartbeat: timedelta = Field(
        default=timedelta(seconds=30),
        gt=timedelta(0),
        description="The AMQP heartbeat: a peer silent for about twice this long is dead.",
    )
    connection_timeout: timedelta = Field(
        default=timedelta(seconds=10),
        gt=timedelta(0),
        description="How long connecting (socket, handshake and login) may take.",
    )
    reconnect: RetryPolicy = Field(
        default=RetryPolicy(max_attempts=20),
        description="Backoff and limits for reconnecting after the connection is lost.",
    )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RabbitMQConnectionOptions:
        """The options of an ``amqp://user:password@host:port/vhost`` URL; ``options`` override them."""
        parts = urlsplit(url)
        if parts.scheme != "amqp" or not parts.hostname:
            raise ConfigurationError("RabbitMQConnectionOptions: expected an amqp://host URL")
        fields: dict[str, Any] = {
            "host": parts.hostname,
            "port": parts.port or 5672,
            "virtual_host": unquote(parts.path[1:]) if len(parts.path) > 1 else "/",
            "username": unquote(parts.username or "guest"),
            "password": SecretStr(unquote(parts.password or "guest")),
        }
        return cls(**(fields | options))

    @property
    def where(self) -> str:
        """``user@host:port/vhost``, for errors (no password)."""
        return f"{self.username}@{self.host}:{self.port}{'' if self.virtual_host == '/' else '/' + self.virtual_host}"

    def parameters(self) -> pika.ConnectionParameters:
        """Pika's connection parameters (one attempt: reconnecting is headwater's retry policy)."""
        return pika.ConnectionParameters(
            host=self.host,
            port=self.port,
            virtual_host=self.virtual_host,
            credentials=pika.PlainCredentials(self.username, self.password.get_secret_value()),
            heartbeat=max(1, round(self.heartbeat.total_seconds())),
            socket_timeout=self.connection_timeout.total_seconds(),
            stack_timeout=self.connection_timeout.total_seconds(),
            connection_attempts=1,
        )


class QueueBinding(OptionsModel):
    """A binding the source declares for its queues: ``exchange`` routes ``routing_key`` to them."""

    exchange: str = Field(description="The exchange (declared if it does not exist).")
    exchange_type: Literal["direct", "fanout", "topic", "headers"] = Field(
        default="direct", description="The exchange's type, when it is declared."
    )
    routing_key: str = Field(default="", description="The binding key.")


class RabbitMQSourceOptions(OptionsModel):
    """What the RabbitMQ source reads and how it acknowledges.

    Acknowledgements are manual and sent only when the checkpoint that covers the messages
    completes. A consumer's prefetch (``basic.qos``) caps its unacknowledged messages, so it also
    caps the messages one consumer reads per checkpoint interval.
    """

    connection: RabbitMQConnectionOptions = Field(
        default=RabbitMQConnectionOptions(), description="How to reach the broker."
    )
    queues: tuple[str, ...] = Field(min_length=1, description="The queues to consume.")
    consumers_per_queue: int = Field(
        default=1,
        ge=1,
        description="Splits (consumers) per queue. More than one only with AT_LEAST_ONCE: the "
        "deduplication set of exactly-once is per split, and the broker may redeliver a "
        "message to any consumer of its queue.",
    )
    delivery_guarantee: DeliveryGuarantee = Field(
        default=DeliveryGuarantee.AT_LEAST_ONCE,
        description="EXACTLY_ONCE drops redelivered messages by id (every message needs one); "
        "AT_LEAST_ONCE may emit a redelivered message again; NONE acknowledges messages as soon "
        "as they are emitted (lost on a failure, works without checkpoints).",
    )
    id_from: Literal["message_id", "correlation_id"] = Field(
        default="message_id",
        description="Which property identifies a message for EXACTLY_ONCE (a source's "
        "`id_extractor` overrides it).",
    )
    declare: bool = Field(
        default=False,
        description="Declare the queues (durable) and the bindings; without it a missing queue "
        "fails the job.",
    )
    bindings: tuple[QueueBinding, ...] = Field(
        default=(), description="Bindings declared for every queue (needs `declare`)."
    )
    bounded: bool = Field(
        default=False,
        description="End each split when its queue has no ready message left (a drain).",
    )
    max_messages_per_fetch: int = Field(
        default=1000, ge=1, description="The most messages handed over per fetch."
    )
    prefetch_count: int | None = Field(
        default=None,
        ge=1,
        le=_MAX_PREFETCH,
        description="Unacknowledged messages per consumer; default: sized from the source's "
        "buffer (10 fetches). Raise it for high rates with long checkpoint intervals.",
    )
    fetch_timeout: timedelta = Field(
        default=timedelta(milliseconds=500),
        gt=timedelta(0),
        description="How long a fetch waits for messages before returning empty.",
    )
    timestamp_header: str | None = Field(
        default=None,
        description="A header holding each message's event time in epoch milliseconds; without "
        "it the `timestamp` property (seconds) is used, when set.",
    )
    dedup_retention: timedelta = Field(
        default=timedelta(minutes=10),
        gt=timedelta(0),
        description="How long ids of messages whose acknowledgement was lost (restore, lost "
        "connection) are kept to drop their redeliveries.",
    )

    @model_validator(mode="after")
    def _check(self) -> RabbitMQSourceOptions:
        if self.bindings and not self.declare:
            raise ValueError("bindings are declared only with declare=True")
        if (
            self.delivery_guarantee is DeliveryGuarantee.EXACTLY_ONCE
            and self.consumers_per_queue > 1
        ):
            raise ValueError(
                "consumers_per_queue > 1 needs delivery_guarantee AT_LEAST_ONCE: exactly-once drops "
                "redeliveries by the ids kept per split, and the broker may redeliver a message to "
                "another consumer of the queue"
            )
        if len(set(self.queues)) != len(self.queues):
            raise ValueError(f"queues are listed twice: {sorted(self.queues)}")
        return self

    @property
    def prefetch(self) -> int:
        """The ``basic.qos`` prefetch count of each consumer."""
        if self.prefetch_count is not None:
            return self.prefetch_count
        return min(_MAX_PREFETCH, 10 * self.max_messages_per_fetch)


class RabbitMQWriterOptions(AsyncSinkOptions):
    """The async sink writer's knobs, with RabbitMQ's defaults.

    A request is a batch of publishes awaiting their confirms, so ``max_in_flight_requests *
    max_batch_size`` bounds the unconfirmed messages.
    """

    max_batch_size: int = AsyncSinkOptions.default("max_batch_size", 500)
    max_in_flight_requests: int = AsyncSinkOptions.default("max_in_flight_requests", 4)
    max_time_in_buffer: timedelta = AsyncSinkOptions.default(
        "max_time_in_buffer", timedelta(milliseconds=100)
    )
    request_timeout: timedelta = AsyncSinkOptions.default("request_timeout", timedelta(seconds=60))


class RabbitMQSinkOptions(OptionsModel):
    """Where and how the RabbitMQ sink publishes."""

    connection: RabbitMQConnectionOptions = Field(
        default=RabbitMQConnectionOptions(), description="How to reach the broker."
    )
    exchange: str = Field(default="", description="The exchange ('' is the default exchange).")
    routing_key: str | None = Field(
        default=None,
        description="The routing key of every message; a message's own key wins (per record "
        "keys come from the sink's message builder). With neither, the record fails.",
    )
    delivery_guarantee: DeliveryGuarantee = Field(
        default=DeliveryGuarantee.AT_LEAST_ONCE,
        description="AT_LEAST_ONCE waits for every publisher confirm before a checkpoint "
        "completes and publishes nacked messages again; NONE publishes without confirms.",
    )
    mandatory: bool = Field(
        default=True,
        description="Publish as mandatory: a message no queue takes is returned and fails the job.",
    )
    persistent: bool = Field(default=True, description="Publish with delivery mode 2 (persistent).")
    content_type: str | None = Field(
        default=None, description="The content_type property of messages that set none."
    )
    writer: RabbitMQWriterOptions = Field(
        default=RabbitMQWriterOptions(), description="Batching, requests in flight, retries."
    )

    @model_validator(mode="after")
    def _check(self) -> RabbitMQSinkOptions:
        if self.delivery_guarantee is DeliveryGuarantee.EXACTLY_ONCE:
            raise ValueError(
                "EXACTLY_ONCE is not offered: RabbitMQ has no transactions that survive a crash "
                "between publish and commit. Use AT_LEAST_ONCE with a message id per record, and "
                "a RabbitMQ source with EXACTLY_ONCE downstream drops the repeats"
            )
        return self
