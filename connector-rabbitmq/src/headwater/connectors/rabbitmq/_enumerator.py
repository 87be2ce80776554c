"""The split enumerator of the RabbitMQ source: a fixed set of splits, pushed to their owners."""

from __future__ import annotations

from collections.abc import Sequence

from headwater.connectors.rabbitmq._split import EnumeratorState, RabbitMQQueueSplit
from headwater.core import SplitEnumerator, SplitEnumeratorContext
from typing_extensions import override

__all__ = ["RabbitMQSplitEnumerator"]


class RabbitMQSplitEnumerator(SplitEnumerator[RabbitMQQueueSplit, EnumeratorState]):
    """Hands every split (``consumers_per_queue`` per queue) to a reader, round-robin.

    ``split_ids`` lists every split of the source in a fixed order: the owner of a split is its
    index modulo the parallelism, so it stays the same while the parallelism does.

    Splits are known up front, so nothing is discovered: a reader gets its splits when it
    registers, and splits that come back after a failure go to their owner again. A bounded
    source then tells each reader that no more splits follow.
    """

    def __init__(
        self,
        context: SplitEnumeratorContext[RabbitMQQueueSplit],
        unassigned: Sequence[RabbitMQQueueSplit],
        *,
        split_ids: Sequence[str],
        bounded: bool,
    ) -> None:
        self._context = context
        self._bounded = bounded
        self._unassigned = list(unassigned)
        self._order = {split_id: i for i, split_id in enumerate(split_ids)}
        self._started = False

    def _owner(self, split: RabbitMQQueueSplit) -> int:
        return self._order.get(split.split_id, len(self._order)) % self._context.parallelism

    def _assign(self, reader: int) -> None:
        mine = [s for s in self._unassigned if self._owner(s) == reader]
        if mine:
            self._unassigned = [s for s in self._unassigned if self._owner(s) != reader]
            self._context.assign_splits({reader: mine})
        if self._bounded:
            self._context.signal_no_more_splits(reader)

    @override
    async def start(self) -> None:
        self._started = True
        for reader in sorted(self._context.registered_readers()):
            self._assign(reader)

    @override
    def handle_split_request(self, subtask_index: int) -> None:
        """Splits are pushed to their owners; requests need no answer."""

    @override
    def add_reader(self, subtask_index: int) -> None:
        if self._started:
            self._assign(subtask_index)

    @override
    def add_splits_back(self, splits: Sequence[RabbitMQQueueSplit], subtask_index: int) -> None:
        self._unassigned.extend(splits)
        if self._started and subtask_index in self._context.registered_readers():
            self._assign(subtask_index)

    @override
    def snapshot_state(self, checkpoint_id: int) -> EnumeratorState:
        return EnumeratorState(tuple(self._unassigned))
