"""Helpers of the RabbitMQ connector tests: queues, publishing and draining with plain pika.

Blocking pika, called from test code only (never on a job's event loop). Every queue a test
declares is deleted by :class:`Queues` afterwards; names come from the ``unique_name`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import pika
from pika.adapters.blocking_connection import BlockingChannel


@contextmanager
def channel(url: str) -> Iterator[BlockingChannel]:
    """A blocking channel on a fresh connection, closed afterwards."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        yield connection.channel()
    finally:
        connection.close()


def declare(url: str, *queues: str) -> None:
    """Declare durable queues."""
    with channel(url) as ch:
        for queue in queues:
            ch.queue_declare(queue, durable=True)


def delete(url: str, *queues: str) -> None:
    """Delete queues (missing ones are fine)."""
    with channel(url) as ch:
        for queue in queues:
            ch.queue_delete(queue)


def publish(
    url: str, queue: str, bodies: Iterable[bytes], ids: Sequence[str] | None = None
) -> None:
    """Publish ``bodies`` to ``queue`` (default exchange), persistent, with ``ids`` as message ids.

    Returns once the broker has enqueued them: a synchronous ``queue.declare`` on the same
    channel is answered after the publishes before it were routed.
    """
    with channel(url) as ch:
        for i, body in enumerate(bodies):
            properties = pika.BasicProperties(
                delivery_mode=2, message_id=None if ids is None else ids[i]
            )
            ch.basic_publish("", queue, body, properties)
        ch.queue_declare(queue, passive=True)


def drain(url: str, queue: str) -> list[tuple[str | None, bytes]]:
    """Every ready message of ``queue`` as (message_id, body), acknowledged (the queue is emptied)."""
    got: list[tuple[str | None, bytes]] = []
    with channel(url) as ch:
        while True:
            method, properties, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return got
            got.append((properties.message_id, body))


def ready_count(url: str, queue: str) -> int:
    """The ready messages of ``queue``."""
    with channel(url) as ch:
        return int(ch.queue_declare(queue, passive=True).method.message_count)
