"""The output of a task: routes each batch to the channels of downstream subtasks."""

from __future__ import annotations

import random
from typing import Any

from headwater.core._graph import Edge, Partitioning
from headwater.core._keygroups import stable_hash, subtask_for_key_group
from headwater.core._runtime._channels import Channel, RecordBatch, Watermark
from headwater.core._runtime._operators import Output

__all__ = ["EdgeWriter", "TaskOutput"]


class EdgeWriter:
    """Sends batches across one edge to the downstream subtasks' channels."""

    def __init__(
        self,
        edge: Edge,
        partitioning: Partitioning,
        channels: list[Channel],
        subtask_index: int,
        max_parallelism: int,
    ) -> None:
        self.channels = channels
        self.partitioning = partitioning
        self.subtask_index = subtask_index
        self.key_selector = edge.key_selector
        self.tag = edge.tag
        self.partitioner = edge.partitioner
        self._next = subtask_index % len(channels)
        self._random = random.Random(subtask_index)
        self._max_parallelism = max_parallelism
        n = len(channels)
        self._owner = [
            subtask_for_key_group(kg, max_parallelism, n) for kg in range(max_parallelism)
        ]

    async def send(self, batch: RecordBatch) -> None:
        """Route ``batch`` (it is never modified, so one list may go to several channels)."""
        channels = self.channels
        p = self.partitioning
        if p is Partitioning.FORWARD:
            await channels[self.subtask_index].put(batch)
        elif p is Partitioning.REBALANCE:
            await channels[self._next].put(batch)
            self._next = (self._next + 1) % len(channels)
        elif p is Partitioning.BROADCAST:
            for channel in channels:
                await channel.put(batch)
        elif len(channels) == 1:
            await channels[0].put(batch)
        else:
            await self._split(batch, self._targets(batch.values))

    def _targets(self, values: list[Any]) -> list[int]:
        n = len(self.channels)
        if self.partitioning is Partitioning.SHUFFLE:
            rand = self._random.randrange
            return [rand(n) for _ in values]
        key_of = self.key_selector
        assert key_of is not None
        if self.partitioning is Partitioning.CUSTOM:
            partitioner = self.partitioner
            assert partitioner is not None
            targets = [partitioner(key_of(v), n) for v in values]
            bad = next((t for t in targets if not 0 <= t < n), None)
            if bad is not None:
                raise ValueError(f"custom partitioner returned {bad}, outside [0, {n})")
            return targets
        owner = self._owner
        mp = self._max_parallelism
        return [owner[stable_hash(key_of(v)) % mp] for v in values]

    async def _split(self, batch: RecordBatch, targets: list[int]) -> None:
        n = len(self.channels)
        parts: list[list[Any]] = [[] for _ in range(n)]
        stamps: list[list[int | None]] | None = None
        if batch.timestamps is None:
            for value, target in zip(batch.values, targets, strict=True):
                parts[target].append(value)
        else:
            stamps = [[] for _ in range(n)]
            for value, ts, target in zip(batch.values, batch.timestamps, targets, strict=True):
                parts[target].append(value)
                stamps[target].append(ts)
        for i, part in enumerate(parts):
            if part:
                await self.channels[i].put(RecordBatch(part, stamps[i] if stamps else None))

    def send_event(self, event: Any) -> None:
        """Send a control element (barrier, watermark, end of input) to every downstream subtask."""
        for channel in self.channels:
            channel.put_unbounded(event)


class TaskOutput(Output):
    """The output of the last operator of a chain: every outgoing edge."""

    def __init__(self, edges: list[EdgeWriter]) -> None:
        self.edges = edges

    async def process(self, batch: RecordBatch) -> None:
        """Send the batch across every edge of the main output."""
        for edge in self.edges:
            if edge.tag is None:
                await edge.send(batch)

    async def process_side(self, tag: str, batch: RecordBatch) -> None:
        """Send side-output records across the edges that consume ``tag``."""
        for edge in self.edges:
            if edge.tag == tag:
                await edge.send(batch)

    async def process_watermark(self, timestamp: int) -> None:
        """Broadcast the watermark."""
        self.send_event(Watermark(timestamp))

    def send_event(self, event: Any) -> None:
        """Broadcast a control element across every edge."""
        for edge in self.edges:
            edge.send_event(event)
