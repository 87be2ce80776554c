"""The split enumerator of the shard sources: discovery, lineage (parents before children), assignment.

Shared by :class:`KinesisStreamsSource` and :class:`DynamoDbStreamsSource`. A shard is assigned
only when every parent it names was read to its end (or is unknown: expired, or left out by the
first discovery's filter). Readers report shards they read to the end with a
:class:`ShardsFinished` event; the enumerator answers with :class:`FinishedAcknowledged` naming the
last checkpoint whose enumerator state does not know it yet, so the reader keeps a finished marker
in its own checkpoints until a later checkpoint completes. That is how lineage survives a
restore: either the enumerator's state knows the shard finished, or the reader's state says so
again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from headwater.connectors.aws._shards import EnumeratorState, Shard, ShardSplit, StartingPosition
from headwater.connectors.aws._stream_api import StreamApi
from headwater.core import RetryableError, SplitEnumerator, SplitEnumeratorContext
from typing_extensions import override

__all__ = [
    "AssignmentContext",
    "FinishedAcknowledged",
    "ShardAssigner",
    "ShardSplitEnumerator",
    "ShardsFinished",
    "uniform_shard_assigner",
]

log = logging.getLogger(__name__)

_HASH_SPACE = 1 << 128


@dataclass(frozen=True, slots=True)
class ShardsFinished:
    """Reader to enumerator: these shards were read to their end."""

    shard_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FinishedAcknowledged:
    """Enumerator to reader: the shards' end is known from checkpoints after ``after_checkpoint``."""

    shard_ids: tuple[str, ...]
    after_checkpoint: int


@dataclass(frozen=True, slots=True)
class AssignmentContext:
    """What an assigner sees: the parallelism and how many shards each reader holds now."""

    parallelism: int
    assigned_counts: Mapping[int, int]


class ShardAssigner(Protocol):
    """Picks the reader (subtask index) of a shard ready to be read."""

    def __call__(self, split: ShardSplit, context: AssignmentContext, /) -> int:
        """The subtask index, in ``[0, context.parallelism)``."""
        ...


def uniform_shard_assigner(split: ShardSplit, context: AssignmentContext) -> int:
    """The default: spread shards by the middle of their hash-key range.

    The hash space is cut into ``parallelism`` equal ranges and a shard goes to the reader whose
    range holds its middle, so shards of a uniformly sharded stream spread evenly and children of
    a split stay near their parent. Shards without a hash-key range (DynamoDB Streams) go to the
    reader holding the fewest shards.
    """
    if split.hash_key_range is not None:
        low, high = split.hash_key_range
        return min(context.parallelism - 1, (low + high) // 2 * context.parallelism // _HASH_SPACE)
    counts = context.assigned_counts
    return min(range(context.parallelism), key=lambda i: (counts.get(i, 0), i))


class ShardSplitEnumerator(SplitEnumerator[ShardSplit, EnumeratorState]):
    """Discovers shards, holds children back until their parents are read, assigns ready shards.

    Splits are pushed to readers (split requests are ignored). Shards found by the first
    discovery start at ``initial``; shards found later are new and start at ``TRIM_HORIZON``. A
    bounded source discovers once and signals "no more splits" when every shard was read.

    Args:
        context: the enumerator context.
        stream_arn: the stream.
        initial: where shards of the first discovery start.
        api_factory: builds the service API (blocking; called on the thread pool). The
            enumerator calls its ``acquire`` at start and ``release`` when it closes.
        assigner: picks the reader of a shard.
        discovery_interval: seconds between discoveries; ``None`` for none after the first.
        bounded: discover once and end when all shards were read.
        state: the restored state, if any.
    """

    def __init__(
        self,
        context: SplitEnumeratorContext[ShardSplit],
        *,
        stream_arn: str,
        initial: StartingPosition,
        api_factory: Callable[[], StreamApi],
        assigner: ShardAssigner,
        discovery_interval: float | None,
        bounded: bool,
        state: EnumeratorState | None = None,
    ) -> None:
        self._context = context
        self._stream_arn = stream_arn
        self._initial = initial
        self._api_factory = api_factory
        self._assigner = assigner
        self._interval = discovery_interval
        self._bounded = bounded
        state = state or EnumeratorState()
        self._pending: dict[str, ShardSplit] = {s.shard_id: s for s in state.pending}
        self._assigned: dict[str, int | None] = dict.fromkeys(state.assigned)
        self._finished: set[str] = set(state.finished)
        self._last_seen = state.last_seen_shard_id
        self._initial_done = state.initial_discovery_done
        self._last_snapshot = -1
        self._signalled: set[int] = set()
        self._api: StreamApi | None = None
        self._discovery: asyncio.Task[None] | None = None

    @override
    async def start(self) -> None:
        self._api = await self._context.run_blocking(self._api_factory)
        await self._context.run_blocking(self._api.acquire, self._stream_arn)
        if not (self._bounded and self._initial_done):
            await self.discover()
        if not self._bounded and self._interval is not None:
            self._context.call_periodically(
                self._discover_or_log, timedelta(seconds=self._interval)
            )

    async def _discover_or_log(self) -> None:
        try:
            await self.discover()
        except RetryableError as exc:  # try again at the next interval
            log.warning("%s: shard discovery failed, retrying later: %s", self._api_name(), exc)

    async def _discover_soon(self) -> None:
        try:
            await self.discover()
        except Exception as exc:  # the periodic discovery retries, and fails the job if fatal
            log.warning("%s: shard discovery failed, retrying later: %s", self._api_name(), exc)

    def _api_name(self) -> str:
        return self._api.connector if self._api is not None else "shard source"

    async def discover(self) -> None:
        """List shards not known yet, add them as pending splits, assign those that are ready."""
        api = self._api
        assert api is not None
        initial = None if self._initial_done else self._initial
        shards: list[Shard] = await self._context.run_blocking(
            api.list_shards, self._stream_arn, initial, self._last_seen
        )
        known = self._pending.keys() | self._assigned.keys() | self._finished
        start = self._initial if not self._initial_done else StartingPosition("TRIM_HORIZON")
        for shard in shards:
            if shard.shard_id not in known:
                self._pending[shard.shard_id] = ShardSplit(
                    self._stream_arn, shard.shard_id, start, shard.parent_ids, shard.hash_key_range
                )
            if self._last_seen is None or shard.shard_id > self._last_seen:
                self._last_seen = shard.shard_id
        self._initial_done = True
        self._assign_ready()

    def _ready(self, split: ShardSplit) -> bool:
        return all(
            parent in self._finished
            or (parent not in self._pending and parent not in self._assigned)
            for parent in split.parent_ids
        )

    def _assign_ready(self) -> None:
        registered = self._context.registered_readers()
        counts: dict[int, int] = {}
        for owner in self._assigned.values():
            if owner is not None:
                counts[owner] = counts.get(owner, 0) + 1
        assignment: dict[int, list[ShardSplit]] = {}
        for shard_id in sorted(self._pending):
            split = self._pending[shard_id]
            if not self._ready(split):
                continue
            owner = self._assigner(split, AssignmentContext(self._context.parallelism, counts))
            if owner not in registered:
                continue
            del self._pending[shard_id]
            self._assigned[shard_id] = owner
            counts[owner] = counts.get(owner, 0) + 1
            assignment.setdefault(owner, []).append(split)
        if assignment:
            self._context.assign_splits(assignment)
        self._maybe_end()

    def _maybe_end(self) -> None:
        if not self._bounded or self._pending or self._assigned or not self._initial_done:
            return
        for reader in sorted(self._context.registered_readers() - self._signalled):
            self._signalled.add(reader)
            self._context.signal_no_more_splits(reader)

    @override
    def handle_split_request(self, subtask_index: int) -> None:
        """Ignored: splits are pushed as they become ready."""

    @override
    def add_reader(self, subtask_index: int) -> None:
        self._assign_ready()

    @override
    def add_splits_back(self, splits: Sequence[ShardSplit], subtask_index: int) -> None:
        for split in splits:
            self._assigned.pop(split.shard_id, None)
            if split.finished:
                self._finished.add(split.shard_id)
            else:
                self._pending[split.shard_id] = split
        self._assign_ready()

    @override
    def handle_source_event(self, subtask_index: int, event: Any) -> None:
        if not isinstance(event, ShardsFinished):
            return
        for shard_id in event.shard_ids:
            self._assigned.pop(shard_id, None)
            self._pending.pop(shard_id, None)
            self._finished.add(shard_id)
        self._context.send_event_to_reader(
            subtask_index, FinishedAcknowledged(event.shard_ids, self._last_snapshot)
        )
        self._assign_ready()
        if not self._bounded and (self._discovery is None or self._discovery.done()):
            # Children of a finished shard may not be known yet: look for them now.
            self._discovery = asyncio.get_running_loop().create_task(self._discover_soon())

    @override
    def snapshot_state(self, checkpoint_id: int) -> EnumeratorState:
        self._last_snapshot = checkpoint_id
        return EnumeratorState(
            pending=tuple(self._pending[k] for k in sorted(self._pending)),
            assigned=frozenset(self._assigned),
            finished=frozenset(self._finished),
            last_seen_shard_id=self._last_seen,
            initial_discovery_done=self._initial_done,
        )

    @override
    async def close(self) -> None:
        if self._discovery is not None:
            self._discovery.cancel()
        if self._api is not None:
            try:
                await self._context.run_blocking(self._api.release, self._stream_arn)
            finally:
                await self._context.run_blocking(self._api.close)
