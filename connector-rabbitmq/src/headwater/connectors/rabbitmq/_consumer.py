"""The split reader of the RabbitMQ source: one connection, one channel and consumer per split.

:class:`RabbitMQSplitReader` is a connector-base ``SplitReader`` on pika's asyncio adapter. pika
hands deliveries to a callback on the loop, which appends them to the split's buffer; ``fetch``
returns what is buffered (waiting up to ``fetch_timeout`` when nothing is). Acknowledgements go
through :meth:`RabbitMQSplitReader.acknowledge`, called by the source reader when a checkpoint
completes. Each (re)connection is an *epoch*: delivery tags are only valid on the channel that
delivered them, so an acknowledgement names the epoch of its tag and is refused for an older one
(the broker redelivers those messages instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from headwater.connectors.base import RecordsBySplit, SplitReader, retry
from headwater.connectors.rabbitmq._client import AmqpChannel, AmqpConnection, ResourceNotFoundError
from headwater.connectors.rabbitmq._options import RabbitMQSourceOptions
from headwater.connectors.rabbitmq._split import RabbitMQQueueSplit
from headwater.core import FatalError
from pika.spec import Basic, BasicProperties
from typing_extensions import override

__all__ = ["Delivery", "RabbitMQSplitReader"]

log = logging.getLogger(__name__)


class Delivery(NamedTuple):
    """One delivered message, as the split reader fetches it."""

    epoch: int
    """The connection it arrived on (its delivery tag is valid only there)."""
    method: Basic.Deliver
    properties: BasicProperties
    body: bytes


@dataclass(slots=True)
class _Consumer:
    """One split's channel and consumer, and the deliveries not fetched yet."""

    split: RabbitMQQueueSplit
    channel: AmqpChannel | None = None
    tag: str | None = None
    buffer: list[Delivery] = field(default_factory=list)
    finished: bool = False


class RabbitMQSplitReader(SplitReader[Delivery, RabbitMQQueueSplit]):
    """Consumes the queues of one subtask's splits with manual acknowledgements.

    One connection for all of them, one channel per split (a split's delivery tags are its
    channel's), each with ``basic.qos(prefetch)``. A lost connection or channel is reopened with
    the connection options' retry policy at the next fetch; buffered deliveries of the lost
    connection are dropped (the broker redelivers them). A missing queue (404) or a refused
    login fails the job.
    """

    def __init__(self, options: RabbitMQSourceOptions) -> None:
        self._options = options
        self._connection: AmqpConnection | None = None
        self._consumers: dict[str, _Consumer] = {}
        self._added: list[RabbitMQQueueSplit] = []
        self._wake = asyncio.Event()
        self._broken = False
        self.epoch = 0
        """The current connection's number (0 before the first)."""

    # -- hooks ------------------------------------------------------------------------------
    @override
    def handle_splits_changes(self, added: Sequence[RabbitMQQueueSplit]) -> None:
        self._added.extend(added)

    @override
    def wake_up(self) -> None:
        self._wake.set()

    @override
    def close(self) -> None:
        """Nothing here: :meth:`aclose` closes the connection (it needs the loop)."""

    async def aclose(self) -> None:
        """Close the connection (unacknowledged messages go back to their queues)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    # -- acknowledgements -------------------------------------------------------------------
    def acknowledge(self, split_id: str, epoch: int, tag: int) -> bool:
        """Acknowledge every delivery of the split up to ``tag`` (``multiple``) if still possible.

        ``False`` when the tag's connection is gone (``epoch`` is not the current one) or the
        channel is closed: the broker then redelivers those messages.
        """
        consumer = self._consumers.get(split_id)
        if consumer is None or epoch != self.epoch or consumer.channel is None:
            return False
        channel = consumer.channel
        if channel.closed is not None or not channel.channel.is_open:
            return False
        channel.channel.basic_ack(delivery_tag=tag, multiple=True)
        return True

    def forget(self, split_ids: Sequence[str]) -> None:
        """Close the channels of splits that are finished and acknowledged."""
        for split_id in split_ids:
            consumer = self._consumers.pop(split_id, None)
            if consumer is not None and consumer.channel is not None:
                consumer.channel.close()

    # -- fetching ---------------------------------------------------------------------------
    @override
    async def fetch(self) -> RecordsBySplit[Delivery]:
        if self._broken or self._connection is None or self._connection.closed is not None:
            await retry(self._reconnect, self._options.connection.reconnect)
        if self._added:
            added, self._added = self._added, []
            for split in added:
                consumer = _Consumer(split)
                self._consumers[split.split_id] = consumer
                await self._start(consumer)
        active = [c for c in self._consumers.values() if not c.finished]
        if not any(c.buffer for c in active):
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), self._options.fetch_timeout.total_seconds()
                )
        if self._broken:
            return RecordsBySplit()
        finished = await self._drained(active) if self._options.bounded else []
        return self._take(active, finished)

    def _take(self, active: list[_Consumer], finished: list[str]) -> RecordsBySplit[Delivery]:
        budget = self._options.max_messages_per_fetch
        records: dict[str, list[Delivery]] = {}
        size = 0
        newest: int | None = None
        for consumer in active:
            if not consumer.buffer or budget <= 0:
                continue
            batch = consumer.buffer[:budget]
            del consumer.buffer[:budget]
            budget -= len(batch)
            records[consumer.split.split_id] = batch
            size += sum(len(d.body) for d in batch)
            stamp = batch[-1].properties.timestamp
            if stamp is not None:
                newest = max(newest or 0, int(stamp) * 1000)
        return RecordsBySplit(
            records=records, finished_splits=finished, size_in_bytes=size, max_event_time=newest
        )

    async def _drained(self, active: list[_Consumer]) -> list[str]:
        """Bounded: the splits whose queue has no ready message and nothing buffered."""
        finished = []
        for consumer in active:
            if consumer.buffer or consumer.channel is None:
                continue
            count = await consumer.channel.queue_message_count(consumer.split.queue)
            if count == 0 and not consumer.buffer:
                # Deliveries sent before the declare-ok have arrived (frames keep their order on a
                # channel), so the queue is drained for this consumer.
                if consumer.tag is not None:
                    consumer.channel.channel.basic_cancel(consumer.tag)
                consumer.finished = True
                finished.append(consumer.split.split_id)
        return finished

    async def _reconnect(self) -> None:
        """Open a new connection (a new epoch) and restart every unfinished consumer."""
        old, self._connection = self._connection, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()
        connection_options = self._options.connection
        self._connection = await AmqpConnection.open(
            connection_options.parameters(),
            connection_options.where,
            connection_options.connection_timeout.total_seconds(),
        )
        self.epoch += 1
        self._broken = False
        for consumer in self._consumers.values():
            consumer.buffer.clear()  # unacknowledged: the broker redelivers them
            consumer.channel = None
            consumer.tag = None
            if not consumer.finished:
                await self._start(consumer)
        if self.epoch > 1:
            log.warning(
                "rabbitmq source: reconnected to %s (connection %d)",
                connection_options.where,
                self.epoch,
            )

    async def _start(self, consumer: _Consumer) -> None:
        """Open the split's channel, declare or check its queue, set the prefetch, consume."""
        assert self._connection is not None
        options = self._options
        queue = consumer.split.queue
        channel = await self._connection.channel()
        channel.on_close(lambda error: self._on_channel_closed(consumer, channel, error))
        consumer.channel = channel
        try:
            if options.declare:
                await channel.call(
                    channel.channel.queue_declare,
                    f"declaring queue {queue!r}",
                    queue=queue,
                    durable=True,
                )
                for binding in options.bindings:
                    await channel.call(
                        channel.channel.exchange_declare,
                        f"declaring exchange {binding.exchange!r}",
                        exchange=binding.exchange,
                        exchange_type=binding.exchange_type,
                        durable=True,
                    )
                    await channel.call(
                        channel.channel.queue_bind,
                        f"binding queue {queue!r}",
                        queue=queue,
                        exchange=binding.exchange,
                        routing_key=binding.routing_key,
                    )
            else:
                await channel.queue_message_count(queue)
            await channel.call(
                channel.channel.basic_qos, "setting the prefetch", prefetch_count=options.prefetch
            )
            epoch = self.epoch
            buffer = consumer.buffer
            wake = self._wake

            def on_message(
                _channel: Any, method: Basic.Deliver, properties: BasicProperties, body: bytes
            ) -> None:
                buffer.append(Delivery(epoch, method, properties, body))
                if not wake.is_set():
                    wake.set()

            consumer.tag = channel.channel.basic_consume(queue, on_message, auto_ack=False)
        except ResourceNotFoundError as exc:
            raise ResourceNotFoundError(
                f"rabbitmq source: queue {queue!r} does not exist in virtual host "
                f"{options.connection.virtual_host!r} (declare=False: create it, or set declare=True)"
            ) from exc

    def _on_channel_closed(
        self, consumer: _Consumer, channel: AmqpChannel, error: Exception
    ) -> None:
        """A consumer's channel closed (alone or with the connection): reconnect at the next fetch."""
        if consumer.finished or consumer.channel is not channel:
            return  # closed by forget(), or replaced already
        if isinstance(error, FatalError):
            log.error("rabbitmq source: a channel failed: %s", error)
        self._broken = True
        self._wake.set()
