"""Messages as typed records: what the source delivers and what the sink publishes."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from headwater.core import JsonSerializer, VersionedSerializer

__all__ = ["ENTRY_SERIALIZER", "OutgoingMessage", "RabbitMQMessage"]


@dataclass(frozen=True, slots=True)
class RabbitMQMessage:
    """A consumed message with its properties (what a source's ``message_deserializer`` sees).

    Attributes:
        queue: the queue it was consumed from.
        body: the payload.
        routing_key: the routing key it was published with.
        exchange: the exchange it was published to (``''``: the default exchange).
        redelivered: whether the broker delivered it before (to this or another consumer).
        message_id: the ``message_id`` property.
        correlation_id: the ``correlation_id`` property.
        content_type: the ``content_type`` property.
        timestamp: the ``timestamp`` property (seconds since the epoch).
        headers: the ``headers`` table.
    """

    queue: str
    body: bytes
    routing_key: str = ""
    exchange: str = ""
    redelivered: bool = False
    message_id: str | None = None
    correlation_id: str | None = None
    content_type: str | None = None
    timestamp: int | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message for the sink to publish (what a sink's ``message_builder`` returns).

    Attributes:
        body: the payload.
        routing_key: this message's routing key (``None``: the sink's ``routing_key`` option).
        message_id: the ``message_id`` property; set it (unique per record) for a RabbitMQ source
            with EXACTLY_ONCE downstream to drop the repeats of at-least-once publishing.
        correlation_id: the ``correlation_id`` property.
        content_type: the ``content_type`` property (``None``: the sink's option).
        headers: the ``headers`` table (JSON-compatible values: it is checkpointed while buffered).
    """

    body: bytes
    routing_key: str | None = None
    message_id: str | None = None
    correlation_id: str | None = None
    content_type: str | None = None
    headers: Mapping[str, Any] | None = None


def _entry_to_json(m: OutgoingMessage) -> list[Any]:
    return [
        base64.b64encode(m.body).decode("ascii"),
        m.routing_key,
        m.message_id,
        m.correlation_id,
        m.content_type,
        dict(m.headers) if m.headers is not None else None,
    ]


def _entry_from_json(_version: int, d: Any) -> OutgoingMessage:
    return OutgoingMessage(base64.b64decode(d[0]), d[1], d[2], d[3], d[4], d[5])


ENTRY_SERIALIZER: VersionedSerializer[OutgoingMessage] = JsonSerializer(
    version=1, to_json=_entry_to_json, from_json=_entry_from_json
)
"""Buffered sink entries in checkpoints, format 1:
``[body base64, routing_key, message_id, correlation_id, content_type, headers]``."""
