"""Bounded channels between tasks, and the input gate that reads them with barrier alignment."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Barrier",
    "Channel",
    "EndOfInput",
    "InputGate",
    "ProcessingTimeTick",
    "RecordBatch",
    "Watermark",
    "WatermarkStatus",
]


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """Records in arrival order, with their event timestamps (``None`` when they have none)."""

    values: list[Any]
    timestamps: list[int | None] | None = None


@dataclass(frozen=True, slots=True)
class Barrier:
    """Checkpoint barrier: everything before it belongs to checkpoint ``checkpoint_id``."""

    checkpoint_id: int


@dataclass(frozen=True, slots=True)
class Watermark:
    """No record with a timestamp at or before ``timestamp`` follows on this channel."""

    timestamp: int


class _EndOfInput:
    __slots__ = ()

    def __repr__(self) -> str:
        return "EndOfInput"


EndOfInput = _EndOfInput()
"""The last element a channel carries."""


@dataclass(frozen=True, slots=True)
class WatermarkStatus:
    """The channel went idle (it stops holding back the watermark) or became active again."""

    idle: bool


@dataclass(frozen=True, slots=True)
class ProcessingTimeTick:
    """A processing-time timer is due (posted to the task's control queue by the event loop)."""


class Channel:
    """A bounded FIFO from one upstream subtask to one downstream subtask.

    ``put`` waits while the channel holds ``capacity`` elements: that is the backpressure that keeps
    a job's memory flat when a downstream task is slow.
    """

    __slots__ = ("_capacity", "_gate", "_items", "_space", "index", "waited_s")

    def __init__(self, gate: InputGate, index: int, capacity: int) -> None:
        self._gate = gate
        self.index = index
        self._capacity = capacity
        self._items: deque[Any] = deque()
        self._space: asyncio.Future[None] | None = None
        self.waited_s = 0.0
        """Time the producer spent waiting for space (backpressure)."""

    async def put(self, item: Any) -> None:
        """Append ``item``, waiting for space first."""
        if len(self._items) >= self._capacity:
            started = time.perf_counter()
            while len(self._items) >= self._capacity:
                self._space = asyncio.get_running_loop().create_future()
                await self._space
            self.waited_s += time.perf_counter() - started
        self._items.append(item)
        self._gate._wake()

    def put_unbounded(self, item: Any) -> None:
        """Append a control element without waiting (barriers and end of input must never block)."""
        self._items.append(item)
        self._gate._wake()

    def _pop(self) -> Any:
        item = self._items.popleft()
        space = self._space
        if space is not None and not space.done():
            space.set_result(None)
            self._space = None
        return item


class InputGate:
    """All input channels of one subtask, read fairly; channels can be blocked for alignment."""

    def __init__(
        self, num_channels: int, capacity: int, channel_inputs: list[int] | None = None
    ) -> None:
        self.channels = [Channel(self, i, capacity) for i in range(num_channels)]
        self.channel_inputs = channel_inputs or [0] * num_channels
        """For each channel, the operator input it feeds (two-input operators)."""
        self.blocked = [False] * num_channels
        self.ended = [False] * num_channels
        self._next = 0
        self._waiter: asyncio.Future[None] | None = None
        self._control: deque[Any] = deque()
        self.idle_s = 0.0
        """Time the consumer spent waiting for input."""

    def post_control(self, item: Any) -> None:
        """Queue a control element for the task ahead of channel input (timers, async results)."""
        self._control.append(item)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> tuple[int, Any]:
        """The next element from any unblocked channel, with its index (-1 for control elements)."""
        channels = self.channels
        n = len(channels)
        while True:
            if self._control:
                return -1, self._control.popleft()
            start = self._next
            for offset in range(n):
                i = (start + offset) % n
                if not self.blocked[i] and channels[i]._items:
                    self._next = (i + 1) % n
                    return i, channels[i]._pop()
            self._waiter = asyncio.get_running_loop().create_future()
            started = time.perf_counter()
            await self._waiter
            self.idle_s += time.perf_counter() - started
            self._waiter = None

    def active_channels(self) -> int:
        """Channels that have not ended."""
        return self.ended.count(False)

    def unblock_all(self) -> None:
        """Release every channel blocked for alignment."""
        self.blocked = [False] * len(self.channels)
