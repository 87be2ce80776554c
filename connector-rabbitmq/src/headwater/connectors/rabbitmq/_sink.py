"""RabbitMQSink: publishes to an exchange on connector-base's async sink, with publisher confirms.

A request of the async sink base is one batch of publishes on one channel. Under
``AT_LEAST_ONCE`` the channel is in confirm mode and the request completes when the broker has
confirmed every message of the batch: nacked messages are handed back for retry
(:meth:`SubmitResult.retry`), a lost connection fails the request as retryable (the whole batch
is published again on a new connection), and a message returned as unroutable (``mandatory``)
fails the job. Checkpoints wait for every request in flight, so a completed checkpoint means
every message before it was confirmed. Under ``NONE`` publishes are not confirmed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from headwater.connectors.base import AsyncSinkBase, AsyncSinkWriter, Format, SubmitResult
from headwater.connectors.rabbitmq._client import AmqpChannel, AmqpConnection
from headwater.connectors.rabbitmq._options import RabbitMQSinkOptions
from headwater.connectors.rabbitmq._records import ENTRY_SERIALIZER, OutgoingMessage
from headwater.core import (
    ConfigurationError,
    DeliveryGuarantee,
    FatalError,
    SerializationError,
    VersionedSerializer,
    WriterInitContext,
)
from pika.spec import Basic, BasicProperties
from typing_extensions import override

__all__ = ["RabbitMQSink", "RabbitMQSinkWriter", "UnroutableMessageError"]

IN = TypeVar("IN")
"""The type of the records the sink consumes."""

_PERSISTENT = 2


class UnroutableMessageError(FatalError):
    """A mandatory message was returned: no queue is bound for its routing key."""


@dataclass(slots=True)
class _Batch:
    """The publishes of one request awaiting their confirms (delivery tags ``first..last``)."""

    first: int
    last: int
    done: asyncio.Future[list[int]]
    unconfirmed: set[int] = field(default_factory=set)
    nacked: list[int] = field(default_factory=list)


class _Confirms:
    """Matches the broker's acks and nacks (``multiple`` or not) to the batches waiting for them."""

    def __init__(self) -> None:
        self.batches: list[_Batch] = []
        self.next_tag = 1
        self.floor = 0

    def add(self, count: int) -> _Batch:
        first = self.next_tag
        self.next_tag += count
        batch = _Batch(first, first + count - 1, asyncio.get_running_loop().create_future())
        batch.unconfirmed.update(range(first, first + count))
        self.batches.append(batch)
        return batch

    def on_confirm(self, frame: Any) -> None:
        method = frame.method
        tag, multiple = method.delivery_tag, method.multiple
        nack = isinstance(method, Basic.Nack)
        # Every tag up to `floor` was settled by an earlier `multiple` frame: start after it, so
        # each tag is looked at once however many frames the broker sends.
        low = self.floor + 1 if multiple else tag
        if multiple:
            self.floor = max(self.floor, tag)
        for batch in self.batches:
            if batch.first > tag:
                break
            if batch.last < low:
                continue
            hit = batch.unconfirmed.intersection(
                range(max(low, batch.first), min(tag, batch.last) + 1)
            )
            if hit:
                batch.unconfirmed -= hit
                if nack:
                    batch.nacked.extend(hit)
        self._settle()

    def _settle(self) -> None:
        while self.batches and not self.batches[0].unconfirmed:
            batch = self.batches.pop(0)
            if not batch.done.done():
                batch.done.set_result(sorted(t - batch.first for t in batch.nacked))
        for batch in self.batches:  # later batches may be confirmed before earlier ones
            if not batch.unconfirmed and not batch.done.done():
                batch.done.set_result(sorted(t - batch.first for t in batch.nacked))

    def fail(self, error: BaseException) -> None:
        batches, self.batches = self.batches, []
        for batch in batches:
            if not batch.done.done():
                batch.done.set_exception(error)


class RabbitMQSinkWriter(AsyncSinkWriter[IN, OutgoingMessage], Generic[IN]):
    """Publishes batches on one channel; opens (again) the connection when it is needed."""

    def __init__(
        self,
        context: WriterInitContext,
        options: RabbitMQSinkOptions,
        element_converter: Callable[[IN], OutgoingMessage],
        restored: Sequence[OutgoingMessage],
    ) -> None:
        super().__init__(
            context, element_converter=element_converter, options=options.writer, restored=restored
        )
        self._sink_options = options
        self._confirm = options.delivery_guarantee is DeliveryGuarantee.AT_LEAST_ONCE
        self._connection: AmqpConnection | None = None
        self._channel: AmqpChannel | None = None
        self._confirms = _Confirms()
        self._opening = asyncio.Lock()
        self._returned: UnroutableMessageError | None = None
        self._default_properties = BasicProperties(
            delivery_mode=_PERSISTENT if options.persistent else None,
            content_type=options.content_type,
        )

    async def _open(self) -> tuple[AmqpChannel, _Confirms]:
        """The open channel and its confirms (requests in flight share them; one opens them)."""
        async with self._opening:
            channel = self._channel
            if channel is None or channel.closed is not None or not channel.channel.is_open:
                channel = await self._reopen()
            return channel, self._confirms

    async def _reopen(self) -> AmqpChannel:
        if self._connection is None or self._connection.closed is not None:
            if self._connection is not None:
                await self._connection.close()
            connection = self._sink_options.connection
            self._connection = await AmqpConnection.open(
                connection.parameters(),
                connection.where,
                connection.connection_timeout.total_seconds(),
            )
        channel = await self._connection.channel()
        confirms = self._confirms = _Confirms()
        channel.on_close(confirms.fail)
        channel.channel.add_on_return_callback(self._on_return)
        if self._confirm:
            await channel.call(
                channel.channel.confirm_delivery,
                "enabling publisher confirms",
                ack_nack_callback=confirms.on_confirm,
            )
        self._channel = channel
        return channel

    def _on_return(
        self, _channel: Any, method: Any, properties: BasicProperties, _body: bytes
    ) -> None:
        error = UnroutableMessageError(
            f"rabbitmq sink: a message (message_id {properties.message_id!r}) was returned by "
            f"exchange {method.exchange!r} for routing key {method.routing_key!r}: "
            f"{method.reply_code} {method.reply_text} (no queue is bound; with mandatory=True this fails the job)"
        )
        self._returned = self._returned or error
        self._confirms.fail(error)

    def _properties(self, entry: OutgoingMessage) -> BasicProperties:
        if (
            entry.message_id is None
            and entry.correlation_id is None
            and entry.content_type is None
            and not entry.headers
        ):
            return self._default_properties
        default = self._default_properties
        return BasicProperties(
            delivery_mode=default.delivery_mode,
            content_type=entry.content_type or default.content_type,
            message_id=entry.message_id,
            correlation_id=entry.correlation_id,
            headers=dict(entry.headers) if entry.headers else None,
        )

    @override
    async def submit_request_entries(
        self, entries: list[OutgoingMessage]
    ) -> SubmitResult[OutgoingMessage]:
        if self._returned is not None:
            return SubmitResult.fail(self._returned)
        channel, confirms = await self._open()
        batch = confirms.add(len(entries)) if self._confirm else None
        publish = channel.channel.basic_publish
        exchange = self._sink_options.exchange
        default_key = self._sink_options.routing_key or ""
        mandatory = self._sink_options.mandatory
        properties = self._properties
        for entry in entries:
            publish(
                exchange, entry.routing_key or default_key, entry.body, properties(entry), mandatory
            )
        if batch is None:
            return SubmitResult.complete()
        nacked = await batch.done
        if nacked:
            return SubmitResult.retry([entries[i] for i in nacked])
        return SubmitResult.complete()

    @override
    def size_in_bytes(self, entry: OutgoingMessage) -> int:
        return len(entry.body)

    @override
    async def close(self) -> None:
        try:
            await super().close()
        finally:
            connection, self._connection = self._connection, None
            if connection is not None:
                await connection.close()


class RabbitMQSink(AsyncSinkBase[IN, OutgoingMessage], Generic[IN]):
    """Publishes records to a RabbitMQ exchange; at-least-once with publisher confirms.

    Example::

        sink = RabbitMQSink(
            RabbitMQSinkOptions(exchange="orders", routing_key="created"),
            value_format=JsonFormat(),
            message_id=lambda order: str(order["id"]),
        )

    Guarantees: ``AT_LEAST_ONCE`` (default): every checkpoint waits until the broker confirmed
    every message published before it; messages of a failed run since the last checkpoint are
    published again (buffered ones are in the checkpoint). Give each record a ``message_id``, and
    a RabbitMQ source with ``EXACTLY_ONCE`` downstream drops the repeats. ``NONE``: no confirms.

    Args:
        options: where and how to publish.
        value_format: encodes a record into the body (a connector-base format).
        message_builder: builds the whole :class:`OutgoingMessage` (routing key, properties,
            headers) of a record. Exclusive with ``value_format`` and ``message_id``. With neither,
            records must be ``bytes`` (or ``OutgoingMessage``).
        message_id: the ``message_id`` property of a record (with ``value_format`` or bytes).
    """

    def __init__(
        self,
        options: RabbitMQSinkOptions,
        *,
        value_format: Format[IN] | None = None,
        message_builder: Callable[[IN], OutgoingMessage] | None = None,
        message_id: Callable[[IN], str] | None = None,
    ) -> None:
        if not isinstance(options, RabbitMQSinkOptions):
            raise ConfigurationError(
                f"rabbitmq sink: expected RabbitMQSinkOptions, got {type(options).__name__}"
            )
        if message_builder is not None and (value_format is not None or message_id is not None):
            raise ConfigurationError(
                "rabbitmq sink: 'message_builder' builds the whole message: do not also set "
                "'value_format' or 'message_id'"
            )
        self.sink_options = options
        self._value_format = value_format
        self._message_builder = message_builder
        self._message_id = message_id
        super().__init__(element_converter=self._convert, options=options.writer)

    def __repr__(self) -> str:
        return f"RabbitMQSink({self.sink_options!r})"

    @property
    @override
    def delivery_guarantee(self) -> DeliveryGuarantee:
        return self.sink_options.delivery_guarantee

    def _convert(self, record: IN) -> OutgoingMessage:
        if self._message_builder is not None:
            message = self._message_builder(record)
        elif self._value_format is not None:
            message = OutgoingMessage(self._value_format.encode(record))
        elif isinstance(record, OutgoingMessage):
            message = record
        elif isinstance(record, bytes | bytearray):
            message = OutgoingMessage(bytes(record))
        else:
            raise SerializationError(
                f"rabbitmq sink: a record of type {type(record).__name__} is not bytes: set "
                "'value_format' or 'message_builder'"
            )
        if self._message_id is not None:
            message = dataclasses.replace(message, message_id=self._message_id(record))
        if (
            message.routing_key is None
            and self.sink_options.routing_key is None
            and self.sink_options.exchange == ""
        ):
            raise SerializationError(
                "rabbitmq sink: a message has no routing key, and option 'routing_key' is not set "
                "(the default exchange routes by queue name)"
            )
        return message

    @override
    def create_async_writer(
        self, context: WriterInitContext, restored: Sequence[OutgoingMessage]
    ) -> RabbitMQSinkWriter[IN]:
        return RabbitMQSinkWriter(context, self.sink_options, self.element_converter, restored)

    @override
    def entry_serializer(self) -> VersionedSerializer[OutgoingMessage]:
        return ENTRY_SERIALIZER
