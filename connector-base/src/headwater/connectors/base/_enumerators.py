"""Enumerator bases: a queue that hands planned splits out on request, and a push enumerator.

- :class:`QueueSplitEnumerator` (pull): the splits of a bounded source are planned once when a
  fresh job starts (:meth:`~QueueSplitEnumerator.plan_splits`); readers ask for splits and get
  them from a queue (requests made before the plan is ready wait for it); splits of a failed
  reader go back to the front. State: the unassigned splits (``None`` before planning). JDBC,
  OpenSearch and Cassandra scans use it.
- :class:`PushSplitEnumerator`: splits are discovered (at start, then periodically unless the
  source is bounded; a :class:`~headwater.core.RetryableError` from a periodic discovery is logged
  and tried again at the next interval), kept as pending until their owner has registered, and
  pushed to it; split requests are ignored. A bounded source tells each reader "no more splits"
  once nothing more can come for it. Kafka and the AWS shard sources use it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
from abc import abstractmethod
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Generic, TypeVar

from headwater.core import RetryableError, SourceSplit, SplitEnumerator, SplitEnumeratorContext

__all__ = ["HandOut", "PushSplitEnumerator", "QueueSplitEnumerator"]

log = logging.getLogger(__name__)

SplitT = TypeVar("SplitT", bound=SourceSplit)
"""The split type."""
EnumStateT = TypeVar("EnumStateT")
"""The enumerator's checkpointed state."""


class HandOut(enum.Enum):
    """How many queued splits a reader gets per request."""

    ONE = "one"
    """One split per request."""
    ALL_TO_SOLE_READER = "all_to_sole_reader"
    """One per request, but a sole reader (parallelism 1) gets every split at once.

    A reader with per-split outputs then holds event time back for every split from the start; a
    split handed out later would find the watermark already past its records.
    """
    EVEN_SHARE = "even_share"
    """Each request gets ``ceil(left / parallelism)`` splits (a sole reader gets them all)."""


class QueueSplitEnumerator(SplitEnumerator[SplitT, "list[SplitT] | None"], Generic[SplitT]):
    """Plans the splits once and hands them out on request (see the module docstring).

    A subclass implements :meth:`plan_splits`.

    Args:
        context: the enumerator context.
        unassigned: the restored state (the splits not yet assigned), or ``None`` for a fresh job.
        hand_out: how many splits a request gets.
    """

    def __init__(
        self,
        context: SplitEnumeratorContext[SplitT],
        unassigned: Sequence[SplitT] | None,
        *,
        hand_out: HandOut = HandOut.ONE,
    ) -> None:
        self.context = context
        self._unassigned: deque[SplitT] | None = None if unassigned is None else deque(unassigned)
        self._hand_out = hand_out
        self._waiting: list[int] = []

    @abstractmethod
    async def plan_splits(self) -> Sequence[SplitT]:
        """Every split of a fresh job (called once, at start; may use ``context.run_blocking``)."""

    async def start(self) -> None:
        """Plan the splits of a fresh job and answer the requests that waited for them."""
        if self._unassigned is not None:
            return
        self._unassigned = deque(await self.plan_splits())
        waiting, self._waiting = self._waiting, []
        for subtask in waiting:
            self.handle_split_request(subtask)

    def _share(self, left: int) -> int:
        parallelism = self.context.parallelism
        if self._hand_out is HandOut.EVEN_SHARE:
            return math.ceil(left / parallelism)
        if self._hand_out is HandOut.ALL_TO_SOLE_READER and parallelism == 1:
            return left
        return 1

    def handle_split_request(self, subtask_index: int) -> None:
        """Assign the next split(s), or tell the reader there are no more."""
        queue = self._unassigned
        if queue is None:
            self._waiting.append(subtask_index)
        elif queue:
            splits = [queue.popleft() for _ in range(self._share(len(queue)))]
            self.context.assign_splits({subtask_index: splits})
        else:
            self.context.signal_no_more_splits(subtask_index)

    def add_reader(self, subtask_index: int) -> None:
        """Readers ask for splits themselves."""

    def add_splits_back(self, splits: Sequence[SplitT], subtask_index: int) -> None:
        """Splits of a failed reader go to the front of the queue."""
        if self._unassigned is None:
            self._unassigned = deque()
        self._unassigned.extendleft(reversed(splits))

    def snapshot_state(self, checkpoint_id: int) -> list[SplitT] | None:
        """The unassigned splits (``None`` before they were planned)."""
        return None if self._unassigned is None else list(self._unassigned)


class PushSplitEnumerator(SplitEnumerator[SplitT, EnumStateT], Generic[SplitT, EnumStateT]):
    """Discovers splits and pushes each to its owner once the owner has registered.

    The base owns the pending splits (by split id, in the order they were added), the periodic
    discovery with its logged retryable errors, the hand-over to registered owners and the
    "no more splits" signal of a bounded source. A subclass implements :meth:`discover` (find
    splits and :meth:`add_pending` them), :meth:`owner` (which reader gets a split, or ``None``
    while it is not ready), :meth:`snapshot_state`, and optionally :meth:`open` / :meth:`release`
    for its client and :meth:`no_more_splits_for` for when a bounded reader is done.

    Args:
        context: the enumerator context.
        name: the source, as logs name it (``"kafka source"``).
        what: what is discovered, as logs name it (``"partition"``).
        bounded: discover at start only and signal "no more splits".
        discovery_interval: time between discoveries of an unbounded source (``None``: none
            after the first).
        pending: restored pending splits.
        discovered: whether the restored state had done its first discovery.
    """

    def __init__(
        self,
        context: SplitEnumeratorContext[SplitT],
        *,
        name: str,
        what: str,
        bounded: bool,
        discovery_interval: timedelta | None,
        pending: Iterable[SplitT] = (),
        discovered: bool = False,
    ) -> None:
        self.context = context
        self.name = name
        self._what = what
        self.bounded = bounded
        self._interval = discovery_interval
        self.pending: dict[str, SplitT] = {s.split_id: s for s in pending}
        """Splits not yet handed out, by split id."""
        self.discovered = discovered
        """Whether the first discovery has been done (checkpoint it)."""
        self._signalled: set[int] = set()

    # -- hooks -----------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect to the external system (before the first discovery)."""

    async def release(self) -> None:
        """Release the client (at close)."""

    @abstractmethod
    async def discover(self) -> None:
        """Find new splits, :meth:`add_pending` them; the base then assigns them."""

    @abstractmethod
    def owner(self, split: SplitT, counts: Mapping[int, int]) -> int | None:
        """The reader of ``split``, or ``None`` while it must wait.

        ``counts``: splits per reader assigned so far (see :meth:`assigned_counts`), updated
        during a hand-over round, for balancing assigners.
        """

    def assigned(self, split: SplitT, reader: int) -> None:
        """``split`` was handed to ``reader`` (record it for the state)."""

    def no_more_splits_for(self, reader: int) -> bool:
        """Whether a bounded source will give ``reader`` nothing more.

        Default: the first discovery is done and no split is pending.
        """
        return self.discovered and not self.pending

    def assigned_counts(self) -> dict[int, int]:
        """Splits per reader already assigned, the start of each hand-over's ``counts``."""
        return {}

    def pending_in_order(self) -> list[SplitT]:
        """The pending splits in hand-over order (insertion order by default)."""
        return list(self.pending.values())

    # -- the base --------------------------------------------------------------------------
    def add_pending(self, splits: Iterable[SplitT]) -> None:
        """Add splits to hand out (at the next :meth:`assign_pending`)."""
        for split in splits:
            self.pending[split.split_id] = split

    async def start(self) -> None:
        """Open the client, discover (unless a bounded source already did), schedule discovery."""
        await self.open()
        if not (self.bounded and self.discovered):
            await self.run_discovery()
        if not self.bounded and self._interval is not None:
            self.context.call_periodically(self._discover_or_log, self._interval)

    async def run_discovery(self) -> None:
        """Discover, mark the first discovery done, hand out what is ready."""
        await self.discover()
        self.discovered = True
        self.assign_pending()

    async def _discover_or_log(self) -> None:
        try:
            await self.run_discovery()
        except RetryableError as exc:  # try again at the next interval
            log.warning("%s: %s discovery failed, retrying later: %s", self.name, self._what, exc)

    def discover_soon(self) -> asyncio.Task[None]:
        """Start a discovery now in the background (errors are logged; the periodic one retries)."""

        async def discover() -> None:
            try:
                await self.run_discovery()
            except Exception as exc:
                log.warning(
                    "%s: %s discovery failed, retrying later: %s", self.name, self._what, exc
                )

        return asyncio.get_running_loop().create_task(discover())

    def assign_pending(self) -> None:
        """Hand every ready pending split whose owner has registered to it, then signal ends."""
        registered = self.context.registered_readers()
        counts = self.assigned_counts()
        assignment: dict[int, list[SplitT]] = {}
        for split in self.pending_in_order():
            owner = self.owner(split, counts)
            if owner is None or owner not in registered:
                continue
            del self.pending[split.split_id]
            counts[owner] = counts.get(owner, 0) + 1
            assignment.setdefault(owner, []).append(split)
            self.assigned(split, owner)
        if assignment:
            self.context.assign_splits(assignment)
        if self.bounded:
            for reader in sorted(registered - self._signalled):
                if self.no_more_splits_for(reader):
                    self._signalled.add(reader)
                    self.context.signal_no_more_splits(reader)

    def handle_split_request(self, subtask_index: int) -> None:
        """Ignored: splits are pushed to their owners."""

    def add_reader(self, subtask_index: int) -> None:
        """A (re-)registered reader gets its pending splits (and, if bounded, its end again)."""
        self._signalled.discard(subtask_index)
        if self.discovered:
            self.assign_pending()

    def add_splits_back(self, splits: Sequence[SplitT], subtask_index: int) -> None:
        """Splits of a failed reader become pending again."""
        self.add_pending(splits)
        self.assign_pending()

    async def close(self) -> None:
        """Release the client."""
        await self.release()
