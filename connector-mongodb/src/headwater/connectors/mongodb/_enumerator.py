"""The split enumerator of the MongoDB source: plans the snapshot, hands out splits, then the stream.

Snapshot splits go to readers as they ask (pull), one at a time, so fast readers take more. In
``startup_mode='initial'`` the change-stream split goes out only once every snapshot split is
finished: a change applied before its document's snapshot read would otherwise be overwritten
by that (older) read downstream. Readers report the snapshot splits they hold when they start
(restored or not) and each split they finish, so after a restore the enumerator knows which
splits are still being read even if a finish was reported between its checkpoint and the
readers' ones.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bson.timestamp import Timestamp
from headwater.connectors.mongodb._client import connect, translate
from headwater.connectors.mongodb._options import MongoSourceOptions
from headwater.connectors.mongodb._planning import current_cluster_time, plan_snapshot
from headwater.connectors.mongodb._split import EnumeratorState, MongoSplit, after
from headwater.core import SplitEnumerator, SplitEnumeratorContext
from pymongo.errors import PyMongoError
from typing_extensions import override

__all__ = ["MongoSourceEnumerator", "SplitsFinished", "SplitsHeld"]

log = logging.getLogger(__name__)

STREAM_SPLIT_ID = "change-stream"


@dataclass(frozen=True, slots=True)
class SplitsHeld:
    """A reader's report at start: the snapshot splits it holds (restored ones)."""

    split_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class SplitsFinished:
    """A reader finished these snapshot splits."""

    split_ids: frozenset[str]


class MongoSourceEnumerator(SplitEnumerator[MongoSplit, EnumeratorState]):
    """Plans the snapshot once (split strategy), then assigns splits on request."""

    def __init__(
        self,
        context: SplitEnumeratorContext[MongoSplit],
        options: MongoSourceOptions,
        state: EnumeratorState | None = None,
    ) -> None:
        self._context = context
        self._options = options
        self._planned = state.planned if state else False
        self._pending: deque[MongoSplit] = deque(state.pending if state else ())
        self._stream = state.stream if state else None
        self._outstanding: set[str] = set()
        self._reported: set[int] = set()
        self._waiting: set[int] = set()

    @override
    async def start(self) -> None:
        if self._planned:
            return
        options = self._options
        client = connect(options)
        try:
            start_at: Timestamp | None = None
            snapshot_time: Timestamp | None = None
            if options.startup_mode in ("initial", "latest"):
                now = await current_cluster_time(client, options)
                snapshot_time = now if options.startup_mode == "initial" else None
                start_at = after(now)
            elif options.startup_mode == "timestamp":
                assert options.startup_timestamp is not None
                start_at = Timestamp(options.startup_timestamp, 0)
            if options.startup_mode in ("snapshot", "initial"):
                splits = await plan_snapshot(client, options, snapshot_time)
                self._pending.extend(splits)
                log.info(
                    "mongodb source: %d snapshot split(s) of %s (%s)",
                    len(splits), options.where, options.partition_strategy,
                )  # fmt: skip
            if start_at is not None:
                self._stream = MongoSplit(STREAM_SPLIT_ID, stream=True, start_at=start_at)
        except PyMongoError as exc:
            raise translate(exc, "planning the source's splits", options) from exc
        finally:
            await client.close()
        self._planned = True
        for reader in sorted(self._waiting):
            self._answer(reader)

    @override
    def handle_split_request(self, subtask_index: int) -> None:
        if not self._planned:
            self._waiting.add(subtask_index)
            return
        self._answer(subtask_index)

    def _answer(self, reader: int) -> None:
        self._waiting.discard(reader)
        if self._pending:
            split = self._pending.popleft()
            self._outstanding.add(split.split_id)
            self._context.assign_splits({reader: [split]})
        elif self._stream is not None:
            self._waiting.add(reader)
            self._maybe_start_stream()
        else:
            self._context.signal_no_more_splits(reader)

    def _maybe_start_stream(self) -> None:
        stream = self._stream
        if (
            stream is None
            or self._pending
            or self._outstanding
            or not self._waiting
            or len(self._reported) < self._context.parallelism
        ):
            return
        reader = min(self._waiting)
        self._stream = None
        self._context.assign_splits({reader: [stream]})
        for other in sorted(self._waiting - {reader}):
            self._context.signal_no_more_splits(other)
        self._waiting.clear()

    @override
    def handle_source_event(self, subtask_index: int, event: Any) -> None:
        if isinstance(event, SplitsHeld):
            self._reported.add(subtask_index)
            self._outstanding |= event.split_ids
        elif isinstance(event, SplitsFinished):
            self._outstanding -= event.split_ids
        self._maybe_start_stream()

    @override
    def add_reader(self, subtask_index: int) -> None:
        """Readers ask for splits; nothing to push."""

    @override
    def add_splits_back(self, splits: Sequence[MongoSplit], subtask_index: int) -> None:
        for split in splits:
            if split.stream:
                self._stream = split
            else:
                self._outstanding.discard(split.split_id)
                self._pending.appendleft(split)

    @override
    def snapshot_state(self, checkpoint_id: int) -> EnumeratorState:
        return EnumeratorState(self._planned, tuple(self._pending), self._stream)
