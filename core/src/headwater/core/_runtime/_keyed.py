"""Keyed operators: running reduce, KeyedProcessFunction with timers, and windows.

A keyed operator is always the head of its task (``key_by`` never chains), so its timers and
side outputs go through the task directly. Keyed state lives in a :class:`KeyedStateBackend` (in
memory or in RocksDB) and is checkpointed per key group together with the operator's timers and
windows, which stay in memory. With incremental checkpoints the state tables go to files of their
own, each checkpoint writing only the entries changed since the one before.
"""

from __future__ import annotations

import copy
import heapq
import time
import uuid
from collections.abc import Callable, Iterable
from operator import length_hint
from typing import Any

from headwater.core._errors import TaskFailedError
from headwater.core._functions import KeyedProcessFunction, OutputTag
from headwater.core._keygroups import key_group_range
from headwater.core._runtime._channels import RecordBatch
from headwater.core._runtime._context import OperatorContext
from headwater.core._runtime._operators import Operator
from headwater.core._state import AggregateFunction, KeyedStateBackend, encode_entries
from headwater.core._state_codec import StateValueError, encode_state
from headwater.core._state_files import write_chunks_to_bytes, write_chunks_to_file
from headwater.core._watermarks import MIN_WATERMARK
from headwater.core._windows import (
    ContinuousEventTimeTrigger,
    ContinuousProcessingTimeTrigger,
    CountTrigger,
    EventTimeTrigger,
    ProcessWindowFunction,
    TimeWindow,
    TumblingEventTimeWindows,
    WindowResult,
    WindowSpec,
)

__all__ = ["KeyedProcessOperator", "ReduceOperator", "WindowOperator"]

_MISSING = object()


def _now_ms() -> int:
    return int(time.time() * 1000)


class _KeyedOperator(Operator):
    """State backend, watermark and processing-time timers shared by keyed operators."""

    async def open(self, context: OperatorContext) -> None:
        await super().open(context)
        store = None
        config = context.state_backend
        if config.kind == "rocksdb":
            from headwater.core._rocksdb_state import RocksDBStore

            assert config.path is not None
            store = RocksDBStore(
                config.path, f"{context.job_name}-{self.uid}-{context.subtask_index}"
            )
        self.backend = KeyedStateBackend(
            context.max_parallelism,
            operator=self.name,
            store=store,
            track_changes=context.incremental_dir is not None,
        )
        self.backend.restore(context.restored.get("keyed", {}))
        sources = context.restored.get("keyed_sources")
        if sources:
            groups = key_group_range(
                context.subtask_index, context.max_parallelism, context.parallelism
            )
            await context.run_blocking(self.backend.restore_files, sources, groups)
        self.chain: list[str] = []
        """The incremental files of the last checkpoint (empty: the next one is full)."""
        self.key_of: Callable[[Any], Any] = self.transformation.key_selector  # type: ignore[assignment]
        self.watermark = MIN_WATERMARK
        self._side: dict[str, tuple[list[Any], list[int | None]]] = {}
        self._scheduled: float | None = None
        self.late_dropped = context.metric_group.counter("numLateRecordsDropped")

    def side_output(self, tag: str, value: Any, timestamp: int | None) -> None:
        """Buffer a side-output record (sent with the next emission)."""
        values, stamps = self._side.setdefault(tag, ([], []))
        values.append(value)
        stamps.append(timestamp)

    async def flush_side_outputs(self) -> None:
        """Send buffered side-output records."""
        side, self._side = self._side, {}
        for tag, (values, stamps) in side.items():
            await self.output.process_side(tag, RecordBatch(values, stamps))

    def schedule_processing_time(self, at_ms: int) -> None:
        """Wake the task at ``at_ms`` (wall clock) to fire processing-time timers."""
        if self._scheduled is not None and self._scheduled <= at_ms:
            return
        self._scheduled = at_ms
        self.context.schedule_tick(max(0.0, at_ms / 1000 - time.time()))

    async def on_processing_time(self, now_ms: int) -> None:
        """Processing time advanced to ``now_ms``."""
        self._scheduled = None

    async def snapshot(self, checkpoint_id: int) -> dict[str, Any]:
        state = await super().snapshot(checkpoint_id)
        context = self.context
        # Windows and timers are in memory: they go into the metadata. The state tables go to a
        # file, written on the pool a chunk at a time (a full RocksDB snapshot is read lazily).
        state["keyed"] = encode_entries(self.keyed_extras(), context.max_parallelism)
        shared = context.incremental_dir
        name = f"{self.uid}-{context.subtask_index}-{checkpoint_id}-{uuid.uuid4().hex[:8]}"
        if shared is None or context.is_savepoint(checkpoint_id):
            # Self-contained: the file is in the checkpoint's (or savepoint's) own directory.
            chunks = self.backend.snapshot(full=True)
            self.chain = []  # the next incremental checkpoint starts over
            directory = context.checkpoint_dir(checkpoint_id)
            if directory is None:  # checkpoints kept in memory
                state["keyed_blob"] = await context.run_blocking(write_chunks_to_bytes, chunks)
            else:
                await context.run_blocking(write_chunks_to_file, directory / name, chunks)
                state["keyed_file"] = name
        else:
            full = len(self.chain) % context.incremental_full_every == 0
            chunks = self.backend.snapshot(full)
            await context.run_blocking(write_chunks_to_file, shared / name, chunks)
            self.chain = [name] if full else [*self.chain, name]
            state["keyed_files"] = list(self.chain)
        return state

    def keyed_extras(self) -> dict[str, list[tuple[Any, Any]]]:
        """Operator-owned keyed entries to checkpoint besides the state handles'."""
        return {}

    async def close(self) -> None:
        self.backend.close()
        await super().close()

    def fail_on(self, exc: BaseException, record: Any) -> TaskFailedError:
        """A task failure naming this operator and the record."""
        return self._fail(exc, [record], 0)


class ReduceOperator(_KeyedOperator):
    """Keyed running reduce: emits the new running value for every record.

    A batch's keys are read in one go (one multi-get on RocksDB) and its new values written back
    in one go (checked by the state codec then).
    """

    async def open(self, context: OperatorContext) -> None:
        await super().open(context)
        self.table = self.backend.table("reduce")

    async def process(self, batch: RecordBatch) -> None:
        values = batch.values
        self.records_in += len(values)
        key_of = self.key_of
        fn = self.transformation.payload
        keys: list[Any] = []
        try:
            keys = [key_of(value) for value in values]
        except Exception:
            for value in values:  # find the record whose key failed
                try:
                    key_of(value)
                except Exception as exc:
                    raise self.fail_on(exc, value) from exc
        state = self.table.batch(keys)
        out: list[Any] = []
        append = out.append
        try:
            for key, value in zip(keys, values, strict=True):
                current = state.get(key, _MISSING)
                new = value if current is _MISSING else fn(current, value)
                state[key] = new
                append(new)
        except Exception as exc:
            raise self._fail(exc, values, len(values) - len(out) - 1) from exc
        self.table.commit(state, keys)
        await self._emit(out, batch.timestamps)


class _TimerService:
    """Timers of a KeyedProcessOperator, per (key, time), deduplicated."""

    def __init__(self, operator: KeyedProcessOperator) -> None:
        self._op = operator
        self.event: list[tuple[int, Any]] = []
        self.processing: list[tuple[int, Any]] = []
        self.event_set: set[tuple[int, Any]] = set()
        self.processing_set: set[tuple[int, Any]] = set()

    def current_watermark(self) -> int:
        return self._op.watermark

    def current_processing_time(self) -> int:
        return _now_ms()

    def register_event_time_timer(self, timestamp: int) -> None:
        entry = (timestamp, self._op.backend.current_key)
        if entry not in self.event_set:
            self.event_set.add(entry)
            heapq.heappush(self.event, entry)

    def register_processing_time_timer(self, timestamp: int) -> None:
        entry = (timestamp, self._op.backend.current_key)
        if entry not in self.processing_set:
            self.processing_set.add(entry)
            heapq.heappush(self.processing, entry)
            self._op.schedule_processing_time(timestamp)

    def delete_event_time_timer(self, timestamp: int) -> None:
        self.event_set.discard((timestamp, self._op.backend.current_key))

    def delete_processing_time_timer(self, timestamp: int) -> None:
        self.processing_set.discard((timestamp, self._op.backend.current_key))


class _Context:
    """The KeyedContext handed to KeyedProcessFunction calls (one reused object)."""

    __slots__ = ("_op", "timestamp")

    def __init__(self, op: KeyedProcessOperator) -> None:
        self._op = op
        self.timestamp: int | None = None

    @property
    def current_key(self) -> Any:
        return self._op.backend.current_key

    @property
    def timer_service(self) -> _TimerService:
        return self._op.timers

    def output(self, tag: OutputTag[Any], value: Any) -> None:
        self._op.side_output(tag.name, value, self.timestamp)


class KeyedProcessOperator(_KeyedOperator):
    """Runs a KeyedProcessFunction with keyed state and event/processing-time timers."""

    async def open(self, context: OperatorContext) -> None:
        await super().open(context)
        self.timers = _TimerService(self)
        for key, stamps in self.backend.restored_entries("__event_timers"):
            for ts in stamps:
                self.backend.current_key = key
                self.timers.register_event_time_timer(ts)
        for key, stamps in self.backend.restored_entries("__processing_timers"):
            for ts in stamps:
                self.backend.current_key = key
                self.timers.register_processing_time_timer(ts)
        self.ctx = _Context(self)
        self.function: KeyedProcessFunction[Any, Any] = copy.deepcopy(self.transformation.payload)
        context.get_state = self.backend.get_state  # type: ignore[attr-defined]
        self.function.open(context)  # type: ignore[arg-type]

    async def process(self, batch: RecordBatch) -> None:
        values = batch.values
        self.records_in += len(values)
        stamps: Iterable[int | None] = batch.timestamps or [None] * len(values)
        out: list[Any] = []
        out_ts: list[int | None] = []
        backend, ctx, key_of = self.backend, self.ctx, self.key_of
        process = self.function.process_element
        for value, ts in zip(values, stamps, strict=True):
            try:
                backend.current_key = key_of(value)
                ctx.timestamp = ts
                produced = list(process(value, ctx))
            except Exception as exc:
                raise self.fail_on(exc, value) from exc
            out.extend(produced)
            out_ts.extend([ts] * len(produced))
        await self._emit(out, out_ts if batch.timestamps is not None else None)
        await self.flush_side_outputs()

    async def _fire(
        self, heap: list[tuple[int, Any]], live: set[tuple[int, Any]], until: int
    ) -> None:
        out: list[Any] = []
        out_ts: list[int | None] = []
        while heap and heap[0][0] <= until:
            entry = heapq.heappop(heap)
            if entry not in live:
                continue  # deleted
            live.discard(entry)
            timestamp, key = entry
            self.backend.current_key = key
            self.ctx.timestamp = timestamp
            try:
                produced = list(self.function.on_timer(timestamp, self.ctx))
            except Exception as exc:
                raise self.fail_on(exc, f"timer {timestamp} of key {key!r}") from exc
            out.extend(produced)
            out_ts.extend([timestamp] * len(produced))
        await self._emit(out, out_ts)
        await self.flush_side_outputs()

    async def process_watermark(self, timestamp: int) -> None:
        self.watermark = timestamp
        await self._fire(self.timers.event, self.timers.event_set, timestamp)
        await self.output.process_watermark(timestamp)

    async def on_processing_time(self, now_ms: int) -> None:
        await super().on_processing_time(now_ms)
        await self._fire(self.timers.processing, self.timers.processing_set, now_ms)
        if self.timers.processing:
            self.schedule_processing_time(self.timers.processing[0][0])

    def keyed_extras(self) -> dict[str, list[tuple[Any, Any]]]:
        return {
            "__event_timers": _group_timers(self.timers.event_set),
            "__processing_timers": _group_timers(self.timers.processing_set),
        }

    async def end_input(self) -> None:
        self.function.close()


def _group_timers(timers: set[tuple[int, Any]]) -> list[tuple[Any, Any]]:
    by_key: dict[Any, list[int]] = {}
    for ts, key in timers:
        by_key.setdefault(key, []).append(ts)
    return list(by_key.items())


class _Aggregation:
    """How a window folds its records: reduce, AggregateFunction, or keep all (process)."""

    def __init__(self, spec: WindowSpec) -> None:
        self.kind = spec.kind
        self.function = spec.function

    def first(self, value: Any) -> Any:
        if self.kind == "reduce":
            return value
        if self.kind == "aggregate":
            agg: AggregateFunction[Any, Any, Any] = self.function
            return agg.add(value, agg.create_accumulator())
        return [value]

    def add(self, value: Any, acc: Any) -> Any:
        if self.kind == "reduce":
            return self.function(acc, value)
        if self.kind == "aggregate":
            return self.function.add(value, acc)
        acc.append(value)
        return acc

    def merge(self, a: Any, b: Any) -> Any:
        if self.kind == "reduce":
            return self.function(a, b)
        if self.kind == "aggregate":
            return self.function.merge(a, b)
        return a + b

    def results(self, key: Any, window: TimeWindow | None, acc: Any) -> list[Any]:
        if self.kind == "reduce":
            return [acc]
        if self.kind == "aggregate":
            return [self.function.get_result(acc)]
        pwf: ProcessWindowFunction[Any, Any, Any] = self.function
        assert window is not None
        return list(pwf.process(key, window, list(acc)))


_FIRE, _EARLY, _CLEANUP = 0, 1, 2


class WindowOperator(_KeyedOperator):
    """Windows per key: assign, aggregate incrementally, fire on time, handle lateness.

    Window state is ``{(key, start, end): [acc, count, fired]}``; timers are a heap of
    ``(time, kind, key, start, end)`` on event time or on processing time.
    """

    async def open(self, context: OperatorContext) -> None:
        await super().open(context)
        spec: WindowSpec = self.transformation.payload
        self.spec = spec
        self.assigner = spec.assigner
        self.event_time = spec.assigner.is_event_time
        self.session = spec.assigner.is_session
        self.lateness = spec.allowed_lateness_ms
        self.agg = _Aggregation(spec)
        trigger = spec.trigger
        self.count_every = trigger.count if isinstance(trigger, CountTrigger) else None
        self.early_interval = (
            trigger.interval_ms
            if isinstance(trigger, ContinuousEventTimeTrigger | ContinuousProcessingTimeTrigger)
            else None
        )
        # Tumbling event-time windows with reduce/aggregate and the default trigger take a hot loop.
        self.fast_path = (
            isinstance(spec.assigner, TumblingEventTimeWindows)
            and self.event_time
            and spec.kind != "process"
            and (trigger is None or isinstance(trigger, EventTimeTrigger))
        )
        self.windows: dict[tuple[Any, int, int], list[Any]] = {}
        self.sessions: dict[Any, list[tuple[int, int]]] = {}
        # Timers: a heap of distinct times, and per time the windows due then (in insertion order).
        # Many windows share an end; a heap of distinct ints keeps comparisons cheap.
        self.timer_times: list[int] = []
        self.timer_buckets: dict[int, list[tuple[int, Any, int, int]]] = {}
        for key, entries in self.backend.restored_entries("__windows"):
            for start, end, acc, count, fired in entries:
                self.windows[(key, start, end)] = [acc, count, fired]
                if self.session:
                    self.sessions.setdefault(key, []).append((start, end))
                if fired:
                    self._push(end - 1 + self.lateness, _CLEANUP, key, start, end)
                else:
                    self._push(end - 1, _FIRE, key, start, end)

    def keyed_extras(self) -> dict[str, list[tuple[Any, Any]]]:
        by_key: dict[Any, list[list[Any]]] = {}
        for (key, start, end), (acc, count, fired) in self.windows.items():
            by_key.setdefault(key, []).append([start, end, acc, count, fired])
        return {"__windows": list(by_key.items())}

    def checked(self, accumulator: Any) -> Any:
        """A new window's first accumulator, if the state codec can write it (else fail now).

        Checked once per window, not per record: records of other types added later to the
        same window fail at the next checkpoint instead.
        """
        try:
            encode_state(accumulator)
        except StateValueError as exc:
            raise StateValueError(
                f"operator '{self.name}': window contents cannot hold the value: {exc}"
            ) from exc
        return accumulator

    def _push(self, at: int, kind: int, key: Any, start: int, end: int) -> None:
        bucket = self.timer_buckets.get(at)
        if bucket is None:
            self.timer_buckets[at] = [(kind, key, start, end)]
            heapq.heappush(self.timer_times, at)
        else:
            bucket.append((kind, key, start, end))
        if not self.event_time:
            self.schedule_processing_time(at)

    # -- records ---------------------------------------------------------------------------
    async def process(self, batch: RecordBatch) -> None:
        values = batch.values
        self.records_in += len(values)
        if self.event_time:
            stamps = batch.timestamps
            if stamps is None:
                raise TaskFailedError(
                    f"window operator '{self.name}': records have no event timestamps; give the "
                    f"source a WatermarkStrategy with a timestamp assigner, or use "
                    f"processing-time windows",
                    task=self.name,
                    operator=self.name,
                )
        else:
            stamps = [_now_ms()] * len(values)
        out: list[Any] = []
        out_ts: list[int | None] = []
        watermark = self.watermark if self.event_time else MIN_WATERMARK
        if self.fast_path:
            late = self._tumbling(values, stamps, watermark)
            if not late:
                return
            values = [v for v, _ in late]  # records of fired windows take the general path below
            stamps = [t for _, t in late]
        lateness = self.lateness
        assign = self.assigner.assign
        key_of = self.key_of
        windows = self.windows
        agg = self.agg
        for value, ts in zip(values, stamps, strict=True):
            if ts is None:
                raise self.fail_on(ValueError("record without an event timestamp"), value)
            try:
                key = key_of(value)
                if self.session:
                    self._add_to_session(key, value, ts, watermark, out, out_ts)
                    continue
                for start, end in assign(ts):
                    if end - 1 + lateness <= watermark:
                        self._late(value, ts)
                        continue
                    wk = (key, start, end)
                    entry = windows.get(wk)
                    if entry is None:
                        entry = windows[wk] = [self.checked(agg.first(value)), 1, False]
                        self._new_window(key, start, end, ts)
                    else:
                        entry[0] = agg.add(value, entry[0])
                        entry[1] += 1
                    self._maybe_fire_on_element(key, start, end, entry, watermark, out, out_ts)
            except TaskFailedError:
                raise
            except Exception as exc:
                raise self.fail_on(exc, value) from exc
        await self._emit(out, out_ts)
        await self.flush_side_outputs()

    def _tumbling(
        self, values: list[Any], stamps: list[int | None], watermark: int
    ) -> list[tuple[Any, int | None]]:
        """The hot loop for tumbling event-time windows with reduce or aggregate.

        Returns the records whose window already fired (late, or within the allowed lateness);
        they go through the general path.
        """
        assigner = self.assigner
        assert isinstance(assigner, TumblingEventTimeWindows)
        size, offset = assigner.size, assigner.offset
        windows, key_of, push, checked = self.windows, self.key_of, self._push, self.checked
        function = self.spec.function
        aggregate = self.spec.kind == "aggregate"
        add = function.add if aggregate else function
        create = function.create_accumulator if aggregate else None
        slow: list[tuple[Any, int | None]] = []
        it = iter(values)
        try:
            for value, ts in zip(it, stamps, strict=True):
                start = ts - (ts - offset) % size  # type: ignore[operator]
                end = start + size
                if end - 1 <= watermark:
                    slow.append((value, ts))
                    continue
                key = key_of(value)
                wk = (key, start, end)
                entry = windows.get(wk)
                if entry is None:
                    first = add(value, create()) if create else value
                    windows[wk] = [checked(first), 1, False]
                    push(end - 1, _FIRE, key, start, end)
                else:
                    entry[0] = add(value, entry[0]) if aggregate else add(entry[0], value)
                    entry[1] += 1
        except Exception as exc:
            raise self._fail(exc, values, length_hint(it)) from exc
        return slow

    def _add_to_session(
        self,
        key: Any,
        value: Any,
        ts: int,
        watermark: int,
        out: list[Any],
        out_ts: list[int | None],
    ) -> None:
        start, end = ts, ts + self.assigner.assign(ts)[0][1] - ts
        if end - 1 + self.lateness <= watermark:
            self._late(value, ts)
            return
        start, end = self._merge_session(key, start, end, value)
        entry = self.windows[(key, start, end)]
        if end - 1 > watermark:
            entry[2] = False  # the merged session ends later: it fires again at its new end
        self._new_window(key, start, end, ts)
        self._maybe_fire_on_element(key, start, end, entry, watermark, out, out_ts)

    def _new_window(self, key: Any, start: int, end: int, ts: int) -> None:
        self._push(end - 1, _FIRE, key, start, end)
        if self.early_interval is not None:
            self._schedule_early(key, start, end, ts)

    def _maybe_fire_on_element(
        self,
        key: Any,
        start: int,
        end: int,
        entry: list[Any],
        watermark: int,
        out: list[Any],
        out_ts: list[int | None],
    ) -> None:
        """Late records within the allowed lateness, and count triggers, fire at once."""
        if end - 1 <= watermark or (
            self.count_every is not None and entry[1] % self.count_every == 0
        ):
            self._emit_window(key, start, end, entry, out, out_ts)

    def _late(self, value: Any, ts: int) -> None:
        if self.spec.late_tag is not None:
            self.side_output(self.spec.late_tag, value, ts)
        else:
            self.late_dropped.inc()

    def _merge_session(self, key: Any, start: int, end: int, value: Any) -> tuple[int, int]:
        sessions = self.sessions.setdefault(key, [])
        overlapping = [s for s in sessions if s[0] < end and start < s[1]]
        acc = self.checked(self.agg.first(value))
        count = 1
        fired = False
        for s in overlapping:
            sessions.remove(s)
            entry = self.windows.pop((key, s[0], s[1]))
            acc = self.agg.merge(entry[0], acc)
            count += entry[1]
            fired = fired or entry[2]
            start, end = min(start, s[0]), max(end, s[1])
        sessions.append((start, end))
        self.windows[(key, start, end)] = [acc, count, fired]
        return start, end

    def _schedule_early(self, key: Any, start: int, end: int, now: int) -> None:
        assert self.early_interval is not None
        step = self.early_interval
        at = start + ((max(now, start) - start) // step + 1) * step - 1
        if at < end - 1:
            self._push(at, _EARLY, key, start, end)

    def _emit_window(
        self,
        key: Any,
        start: int,
        end: int,
        entry: list[Any],
        out: list[Any],
        out_ts: list[int | None],
    ) -> None:
        if self.spec.kind != "process":  # one result; no window object needed
            result = self.agg.results(key, None, entry[0])[0]
            out.append(
                WindowResult.of(key, start, end, result) if self.spec.with_window else result
            )
            out_ts.append(end - 1)
            return
        produced = self.agg.results(key, TimeWindow(start, end), entry[0])
        out.extend(produced)
        out_ts.extend([end - 1] * len(produced))

    # -- time ------------------------------------------------------------------------------
    async def _advance(self, now: int) -> None:
        out: list[Any] = []
        out_ts: list[int | None] = []
        times, buckets = self.timer_times, self.timer_buckets
        windows = self.windows
        while times and times[0] <= now:
            for kind, key, start, end in buckets.pop(heapq.heappop(times)):
                entry = windows.get((key, start, end))
                if entry is None:
                    continue  # merged into another session, or already purged
                if kind == _CLEANUP:
                    self._purge(key, start, end)
                elif kind == _EARLY:
                    self._emit_window(key, start, end, entry, out, out_ts)
                    self._schedule_early(key, start, end, now + 1)
                elif not entry[2]:
                    entry[2] = True
                    self._emit_window(key, start, end, entry, out, out_ts)
                    if self.lateness > 0:
                        self._push(end - 1 + self.lateness, _CLEANUP, key, start, end)
                    else:
                        self._purge(key, start, end)
        await self._emit(out, out_ts)

    def _purge(self, key: Any, start: int, end: int) -> None:
        del self.windows[(key, start, end)]
        if self.session:
            sessions = self.sessions[key]
            sessions.remove((start, end))
            if not sessions:
                del self.sessions[key]

    async def process_watermark(self, timestamp: int) -> None:
        self.watermark = timestamp
        if self.event_time:
            await self._advance(timestamp)
        await self.output.process_watermark(timestamp)

    async def on_processing_time(self, now_ms: int) -> None:
        await super().on_processing_time(now_ms)
        if not self.event_time:
            await self._advance(now_ms)
            if self.timer_times:
                self.schedule_processing_time(self.timer_times[0])

    async def end_input(self) -> None:
        # Processing-time windows still open at the end of bounded input fire now.
        if not self.event_time:
            await self._advance(2**62)
