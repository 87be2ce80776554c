"""pika's asyncio connection adapter as awaitables: one connection, channels, and error translation.

pika reports every outcome through callbacks on the event loop; :class:`AmqpConnection` and
:class:`AmqpChannel` turn each request into a future that completes with the broker's answer or
fails when the channel or connection closes. Nothing here blocks: the adapter does its socket I/O
on the job's loop.

Errors are translated at this boundary (:func:`translate`): a refused login or access is
:class:`~headwater.core.FatalError` (naming the user and address, never the password), a missing
queue or exchange (reply code 404) is fatal too, and a lost connection or channel is
:class:`~headwater.core.RetryableError`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
from headwater.core import FatalError, RetryableError
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.channel import Channel

__all__ = [
    "AmqpChannel",
    "AmqpConnection",
    "ConnectionLostError",
    "ResourceNotFoundError",
    "translate",
]

_NOT_FOUND = 404
_ACCESS_REFUSED = 403


class ConnectionLostError(RetryableError):
    """The connection or a channel to RabbitMQ closed; unacknowledged messages are redelivered."""


class ResourceNotFoundError(FatalError):
    """A queue or an exchange does not exist (reply code 404)."""


def translate(error: BaseException, doing: str, where: str) -> Exception:
    """A headwater error for a pika error raised while ``doing`` against ``where`` (user@host:port)."""
    if isinstance(error, FatalError | RetryableError):
        return error
    prefix = f"rabbitmq: {doing} at {where}"
    if isinstance(
        error,
        pika.exceptions.ProbableAuthenticationError | pika.exceptions.ProbableAccessDeniedError,
    ):
        return FatalError(
            f"{prefix}: login refused (check the username, password and virtual host)"
        )
    if isinstance(
        error, pika.exceptions.ChannelClosedByBroker | pika.exceptions.ConnectionClosedByBroker
    ):
        if error.reply_code == _NOT_FOUND:
            return ResourceNotFoundError(f"{prefix}: {error.reply_text}")
        if error.reply_code == _ACCESS_REFUSED:
            return FatalError(f"{prefix}: {error.reply_text}")
        return ConnectionLostError(
            f"{prefix}: closed by the broker ({error.reply_code}): {error.reply_text}"
        )
    if isinstance(error, pika.exceptions.AMQPError | OSError | TimeoutError):
        return ConnectionLostError(f"{prefix}: {type(error).__name__}: {error}")
    return error if isinstance(error, Exception) else RuntimeError(str(error))


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    """Complete ``future`` with ``value`` unless it is done (pika's answer callbacks)."""
    if not future.done():
        future.set_result(value)


class AmqpChannel:
    """One AMQP channel: requests as awaitables; every waiting request fails when it closes.

    Attributes:
        channel: pika's channel (for the calls that need no answer: acks, publishes).
        closed: the error it closed with (translated), or ``None`` while open.
    """

    def __init__(self, channel: Channel, where: str) -> None:
        self.channel = channel
        self.closed: Exception | None = None
        self._where = where
        self._waiting: set[asyncio.Future[Any]] = set()
        self._on_close: list[Callable[[Exception], None]] = []
        channel.add_on_close_callback(self._closed)

    def _closed(self, _channel: Channel, reason: BaseException) -> None:
        self.closed = translate(reason, "using a channel", self._where)
        waiting, self._waiting = self._waiting, set()
        for future in waiting:
            if not future.done():
                future.set_exception(self.closed)
        for callback in self._on_close:
            callback(self.closed)

    def on_close(self, callback: Callable[[Exception], None]) -> None:
        """Call ``callback(error)`` when the channel closes (on the loop)."""
        self._on_close.append(callback)

    def future(self) -> asyncio.Future[Any]:
        """A future that fails with the channel's error if the channel closes first."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.closed is not None:
            future.set_exception(self.closed)
        else:
            self._waiting.add(future)
            future.add_done_callback(self._waiting.discard)
        return future

    async def call(self, method: Callable[..., Any], doing: str, /, **kwargs: Any) -> Any:
        """Call a pika channel method that takes ``callback`` and await the broker's answer frame."""
        future = self.future()
        if self.closed is None:
            method(callback=functools.partial(_resolve, future), **kwargs)
        try:
            return await future
        except Exception as exc:
            raise translate(exc, doing, self._where) from exc

    async def queue_message_count(self, queue: str) -> int:
        """The ready messages of ``queue`` (a passive declare; fails if it does not exist)."""
        frame = await self.call(
            self.channel.queue_declare, f"checking queue {queue!r}", queue=queue, passive=True
        )
        return int(frame.method.message_count)

    def close(self) -> None:
        """Close the channel if it is open."""
        if self.closed is None and self.channel.is_open:
            self.channel.close()


class AmqpConnection:
    """One connection through pika's :class:`AsyncioConnection` on the running loop.

    Open it with :meth:`open`; ``closed`` holds the error it closed with. ``where`` (user@host:port)
    names it in errors; the password never appears.
    """

    def __init__(
        self, connection: AsyncioConnection, where: str, closed: asyncio.Future[Exception]
    ) -> None:
        self._connection = connection
        self.where = where
        self._closed = closed

    @property
    def closed(self) -> Exception | None:
        """The error the connection closed with, or ``None`` while it is open."""
        return self._closed.result() if self._closed.done() else None

    @classmethod
    async def open(
        cls, parameters: pika.ConnectionParameters, where: str, timeout: float
    ) -> AmqpConnection:
        """Connect (login included) within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        closed: asyncio.Future[Exception] = loop.create_future()

        def on_open(_connection: Any) -> None:
            if not opened.done():
                opened.set_result(None)

        def on_open_error(_connection: Any, error: BaseException) -> None:
            if not opened.done():
                opened.set_exception(translate(error, "connecting", where))

        def on_close(_connection: Any, error: BaseException) -> None:
            if not closed.done():
                closed.set_result(translate(error, "connection closed", where))

        connection = AsyncioConnection(
            parameters,
            on_open_callback=on_open,
            on_open_error_callback=on_open_error,
            on_close_callback=on_close,
            custom_ioloop=loop,
        )
        try:
            await asyncio.wait_for(opened, timeout)
        except TimeoutError as exc:
            if connection.is_open or connection.is_opening:
                connection.close()
            raise ConnectionLostError(
                f"rabbitmq: connecting at {where}: no answer within {timeout} s"
            ) from exc
        return cls(connection, where, closed)

    async def channel(self) -> AmqpChannel:
        """A new channel."""
        if self.closed is not None:
            raise self.closed
        future: asyncio.Future[Channel] = asyncio.get_running_loop().create_future()
        self._connection.channel(on_open_callback=functools.partial(_resolve, future))
        done, _ = await asyncio.wait([future, self._closed], return_when=asyncio.FIRST_COMPLETED)
        if future not in done:
            future.cancel()
            raise self._closed.result()
        return AmqpChannel(future.result(), self.where)

    async def close(self) -> None:
        """Close the connection and wait until it is closed."""
        if self._connection.is_open:
            self._connection.close()
        if not self._connection.is_closed:
            await asyncio.wait([self._closed], timeout=5.0)
