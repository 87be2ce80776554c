"""Test-only botocore hook that makes SubscribeToShard work against kinesis-mock.

kinesis-mock streams SubscribeToShard events but omits the ``initial-response`` frame botocore
reads first. :func:`install` registers a ``before-parse.kinesis.SubscribeToShard`` handler for
every botocore session created afterwards; it prepends that frame when the answer lacks it (so the
real service's answers pass unchanged). It can also end each subscription after some events
(:data:`end_after_events`), standing in for the real service's 5-minute subscription limit.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Iterator
from typing import Any

from botocore import handlers

end_after_events: int | None = None
"""End every event stream opened from now on after this many events (``None``: never)."""


def _frame(event_type: str, payload: bytes = b"{}") -> bytes:
    headers = b""
    for name, value in (
        (":message-type", "event"),
        (":event-type", event_type),
        (":content-type", "application/json"),
    ):
        headers += struct.pack("!B", len(name)) + name.encode() + b"\x07"
        headers += struct.pack("!H", len(value)) + value.encode()
    prelude = struct.pack("!II", 12 + len(headers) + len(payload) + 4, len(headers))
    message = prelude + struct.pack("!I", binascii.crc32(prelude)) + headers + payload
    return message + struct.pack("!I", binascii.crc32(message))


class _Body:
    """The raw event stream, cut into whole frames, with an ``initial-response`` frame first."""

    def __init__(self, raw: Any, end_after: int | None) -> None:
        self._raw = raw
        self._end_after = end_after

    def _frames(self) -> Iterator[bytes]:
        buffer = b""
        for chunk in self._raw.stream():
            buffer += chunk
            while len(buffer) >= 4 and len(buffer) >= (size := struct.unpack("!I", buffer[:4])[0]):
                yield buffer[:size]
                buffer = buffer[size:]

    def stream(self) -> Iterator[bytes]:
        frames = self._frames()
        first = next(frames, None)
        if first is None:
            return
        if b"initial-response" not in first:
            yield _frame("initial-response")
        yield first
        events = 0 if b"initial-response" in first else 1
        for frame in frames:
            if self._end_after is not None and events >= self._end_after:
                return
            yield frame
            events += 1

    def close(self) -> None:
        self._raw.close()


def _prepend_initial_response(response_dict: dict[str, Any], **_: Any) -> None:
    if response_dict["status_code"] == 200:
        response_dict["body"] = _Body(response_dict["body"], end_after_events)


HANDLER = ("before-parse.kinesis.SubscribeToShard", _prepend_initial_response)


def install() -> None:
    """Register the handler for botocore sessions created from now on (idempotent)."""
    if HANDLER not in handlers.BUILTIN_HANDLERS:
        handlers.BUILTIN_HANDLERS.append(HANDLER)
