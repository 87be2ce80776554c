"""The split enumerator of the Kafka source: partition discovery, offset resolution, assignment."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from headwater.connectors.kafka._errors import translate
from headwater.connectors.kafka._options import (
    AtTimestamp,
    Committed,
    Earliest,
    KafkaSourceOptions,
    Latest,
    SpecificOffsets,
)
from headwater.connectors.kafka._split import (
    NO_STOPPING_OFFSET,
    EnumeratorState,
    KafkaPartitionSplit,
)
from headwater.core import FatalError, RetryableError, SplitEnumerator, SplitEnumeratorContext
from typing_extensions import override

__all__ = ["KafkaSourceEnumerator", "owner_of"]

log = logging.getLogger(__name__)


def _java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` (32-bit signed), so assignments match Flink's."""
    data = text.encode("utf-16-be")
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i : i + 2], "big")) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def owner_of(topic: str, partition: int, parallelism: int) -> int:
    """The reader that owns a partition, as Flink's ``KafkaSourceEnumerator.getSplitOwner``.

    The topic's hash picks where the topic's partitions start; partitions then go round-robin,
    so every topic is spread evenly, and the owner never changes while the parallelism does not.
    """
    start = ((_java_string_hash(topic) * 31) & 0x7FFFFFFF) % parallelism
    return (start + partition) % parallelism


class KafkaSourceEnumerator(SplitEnumerator[KafkaPartitionSplit, EnumeratorState]):
    """Discovers the partitions of the source's topics and assigns each to its owner.

    Readers do not ask for splits: splits are pushed to their owners as they are found. Partitions
    found by the first discovery start at the configured starting offsets; partitions found later
    are new and start at their earliest offset. A bounded source discovers once and then tells
    every reader that no more splits follow.
    """

    def __init__(
        self,
        context: SplitEnumeratorContext[KafkaPartitionSplit],
        options: KafkaSourceOptions,
        state: EnumeratorState | None = None,
    ) -> None:
        self._context = context
        self._options = options
        self._bounded = options.stopping_offsets is not None
        self._assigned: set[tuple[str, int]] = set(state.assigned) if state else set()
        self._initial_done = state.initial_discovery_done if state else False
        self._pending: dict[int, list[KafkaPartitionSplit]] = defaultdict(list)
        for split in state.pending if state else ():
            self._pending[self._owner(split)].append(split)
        self._consumer: AIOKafkaConsumer | None = None

    def _owner(self, split: KafkaPartitionSplit) -> int:
        return owner_of(split.topic, split.partition, self._context.parallelism)

    @override
    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            group_id=self._options.group_id,
            enable_auto_commit=False,
            isolation_level=self._options.isolation_level,
            **self._options.client_kwargs(),
        )
        try:
            await self._consumer.start()
        except (KafkaError, OSError) as exc:
            raise translate(exc, "connecting the source's enumerator") from exc
        await self.discover()
        interval = self._options.partition_discovery_interval
        if not self._bounded and interval is not None:
            self._context.call_periodically(self._periodic_discovery, interval)

    async def _periodic_discovery(self) -> None:
        try:
            await self.discover()
        except RetryableError as exc:  # try again at the next interval
            log.warning("kafka source: partition discovery failed, retrying later: %s", exc)

    async def discover(self) -> None:
        """Find partitions not yet assigned, resolve their offsets and assign them."""
        consumer = self._consumer
        assert consumer is not None
        try:
            cluster = await consumer._client.fetch_all_metadata()  # no public call lists partitions
            found = [
                TopicPartition(topic, partition)
                for topic in sorted(cluster.topics())
                if self._options.matches(topic)
                for partition in sorted(cluster.partitions_for_topic(topic) or ())
                if (topic, partition) not in self._assigned
            ]
            pending = {(s.topic, s.partition) for splits in self._pending.values() for s in splits}
            new = [tp for tp in found if (tp.topic, tp.partition) not in pending]
            if new:
                initial = not self._initial_done
                starts = await self._starting_offsets(new, initial)
                stops = await self._stopping_offsets(new)
                for tp in new:
                    split = KafkaPartitionSplit(tp.topic, tp.partition, starts[tp], stops[tp])
                    self._pending[self._owner(split)].append(split)
        except KafkaError as exc:
            raise translate(exc, "partition discovery") from exc
        if not self._initial_done and self._options.topics is not None:
            missing = (
                set(self._options.topics)
                - {tp.topic for tp in found}
                - {t for t, _ in self._assigned}
            )
            if missing and self._bounded:
                raise FatalError(f"kafka source: topics not found: {sorted(missing)}")
        self._initial_done = True
        for reader in sorted(self._context.registered_readers()):
            self._assign(reader)

    async def _starting_offsets(
        self, tps: list[TopicPartition], initial: bool
    ) -> dict[TopicPartition, int]:
        consumer = self._consumer
        assert consumer is not None
        spec = self._options.starting_offsets if initial else Earliest()
        if isinstance(spec, Earliest):
            return dict(await consumer.beginning_offsets(tps))
        if isinstance(spec, Latest):
            return dict(await consumer.end_offsets(tps))
        if isinstance(spec, Committed):
            result: dict[TopicPartition, int] = {}
            missing = []
            for tp in tps:
                committed = await consumer.committed(tp)
                if committed is None:
                    missing.append(tp)
                else:
                    result[tp] = committed
            if missing and spec.reset == "fail":
                raise FatalError(
                    f"kafka source: no committed offset for {missing[0].topic}-"
                    f"{missing[0].partition} and option 'starting_offsets' has reset='fail'"
                )
            if missing:
                reset = Earliest() if spec.reset == "earliest" else Latest()
                result.update(await self._resolve(reset, missing))
            return result
        return await self._resolve(spec, tps)

    async def _stopping_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        spec = self._options.stopping_offsets
        if spec is None:
            return dict.fromkeys(tps, NO_STOPPING_OFFSET)
        return await self._resolve(spec, tps)

    async def _resolve(
        self, spec: Earliest | Latest | AtTimestamp | SpecificOffsets, tps: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        consumer = self._consumer
        assert consumer is not None
        if isinstance(spec, Earliest):
            return dict(await consumer.beginning_offsets(tps))
        if isinstance(spec, Latest):
            return dict(await consumer.end_offsets(tps))
        if isinstance(spec, AtTimestamp):
            found = await consumer.offsets_for_times(dict.fromkeys(tps, spec.millis))
            ends = await consumer.end_offsets([tp for tp in tps if found.get(tp) is None])
            return {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in tps}
        given = spec.lookup()
        rest = [tp for tp in tps if (tp.topic, tp.partition) not in given]
        result = {tp: given[(tp.topic, tp.partition)] for tp in tps if tp not in rest}
        if rest:
            otherwise = Earliest() if spec.otherwise == "earliest" else Latest()
            result.update(await self._resolve(otherwise, rest))
        return result

    def _assign(self, reader: int) -> None:
        splits = self._pending.pop(reader, [])
        if splits:
            self._context.assign_splits({reader: splits})
            self._assigned.update((s.topic, s.partition) for s in splits)
        if self._bounded and self._initial_done:
            self._context.signal_no_more_splits(reader)

    @override
    def handle_split_request(self, subtask_index: int) -> None:
        """Splits are pushed to their owners; requests need no answer."""

    @override
    def add_reader(self, subtask_index: int) -> None:
        if self._initial_done:
            self._assign(subtask_index)

    @override
    def add_splits_back(self, splits: Sequence[KafkaPartitionSplit], subtask_index: int) -> None:
        for split in splits:
            self._assigned.discard((split.topic, split.partition))
            self._pending[self._owner(split)].append(split)

    @override
    def snapshot_state(self, checkpoint_id: int) -> EnumeratorState:
        pending = tuple(s for splits in self._pending.values() for s in splits)
        return EnumeratorState(frozenset(self._assigned), self._initial_done, pending)

    @override
    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
