"""The ReaderOutput of a source task: batches records, tracks watermarks per split, idleness.

Records from the reader go into one batch buffer. Event timestamps are assigned when a record is
collected. Each output (the main one, and one per split a reader asks for with ``split_output``)
has its own watermark generator; the task's watermark is the minimum over the outputs that are
not idle. An output is idle after ``idle_timeout`` without records, or when the reader calls
``mark_idle`` (until its next record).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from headwater.core._runtime._channels import RecordBatch
from headwater.core._watermarks import WatermarkGenerator, WatermarkStrategy

__all__ = ["SourceOutput", "SplitOutput"]


class _Tracker:
    """Watermark and activity of one output."""

    __slots__ = ("explicit", "forced_idle", "generator", "last_active", "max_ts", "touched")

    def __init__(self, generator: WatermarkGenerator | None) -> None:
        self.generator = generator
        self.explicit: int | None = None
        self.max_ts: int | None = None
        self.touched = False
        self.last_active = 0.0
        self.forced_idle = False

    def saw(self, newest: int) -> None:
        if self.max_ts is None or newest > self.max_ts:
            self.max_ts = newest

    def watermark(self) -> int | None:
        generated = None
        if self.generator is not None and self.max_ts is not None:
            self.generator.on_events(self.max_ts)
            generated = self.generator.current_watermark()
        if self.explicit is None:
            return generated
        return self.explicit if generated is None else max(generated, self.explicit)

    def idle(self, now: float, timeout: float | None) -> bool:
        if self.touched:
            self.touched = False
            self.forced_idle = False
            self.last_active = now
        if self.forced_idle:
            return True
        return timeout is not None and now - self.last_active >= timeout


class SplitOutput:
    """The ReaderOutput of one split: its records join the batch, its watermark is its own."""

    __slots__ = ("_assign", "_owner", "_tracker", "split_id")

    def __init__(self, owner: SourceOutput, split_id: str, tracker: _Tracker) -> None:
        self._owner = owner
        self.split_id = split_id
        self._tracker = tracker
        self._assign = owner.assigner

    def collect(self, record: Any, timestamp: int | None = None, /) -> None:
        """Emit one record of this split."""
        if self._assign is not None:
            timestamp = self._assign(record, timestamp)
        self._owner.append(record, timestamp)
        tracker = self._tracker
        tracker.touched = True
        if timestamp is not None and (tracker.max_ts is None or timestamp > tracker.max_ts):
            tracker.max_ts = timestamp

    def collect_batch(
        self, records: Sequence[Any], timestamps: Sequence[int | None] | None = None, /
    ) -> None:
        """Emit many records of this split, with their event timestamps if given."""
        stamps = self._owner.append_batch(records, timestamps)
        self._tracker.touched = True
        if stamps:
            self._tracker.saw(max(stamps))

    def emit_watermark(self, timestamp: int, /) -> None:
        """Declare this split's watermark."""
        tracker = self._tracker
        if tracker.explicit is None or timestamp > tracker.explicit:
            tracker.explicit = timestamp
            self._owner.explicit_advanced = True

    def mark_idle(self) -> None:
        """Nothing to read in this split now: stop holding back the watermark until its next record."""
        self._tracker.forced_idle = True

    def split_output(self, split_id: str, /) -> SplitOutput:
        """The output of another split (delegates to the task's output)."""
        return self._owner.split_output(split_id)

    def release_split_output(self, split_id: str, /) -> None:
        """Release a split's output (delegates to the task's output)."""
        self._owner.release_split_output(split_id)


class SourceOutput:
    """The main ReaderOutput of a source task, and the factory of per-split outputs."""

    def __init__(self, strategy: WatermarkStrategy[Any], now: float) -> None:
        self.values: list[Any] = []
        self.timestamps: list[int | None] | None = None
        self.dead_letters: list[Any] = []
        """Letters the reader reported during polls (sent with the records, before a barrier)."""
        self.assigner: Callable[[Any, int | None], int] | None = strategy.timestamp_assigner
        self._factory = strategy.generator_factory
        self._idle_timeout = (
            strategy.idle_timeout.total_seconds() if strategy.idle_timeout is not None else None
        )
        self.main = _Tracker(self._factory() if self._factory else None)
        self.main.last_active = now
        self._main_used = False
        self.splits: dict[str, _Tracker] = {}
        self._outputs: dict[str, SplitOutput] = {}
        self._now = now
        self.explicit_advanced = False
        """A reader declared a higher watermark: the task emits it without waiting."""

    # -- ReaderOutput ----------------------------------------------------------------------
    def collect(self, record: Any, timestamp: int | None = None, /) -> None:
        """Emit one record."""
        if self.assigner is not None:
            timestamp = self.assigner(record, timestamp)
        self.append(record, timestamp)
        main = self.main
        main.touched = True
        self._main_used = True
        if timestamp is not None and (main.max_ts is None or timestamp > main.max_ts):
            main.max_ts = timestamp

    def collect_batch(
        self, records: Sequence[Any], timestamps: Sequence[int | None] | None = None, /
    ) -> None:
        """Emit many records at once, with their event timestamps if given."""
        stamps = self.append_batch(records, timestamps)
        self.main.touched = True
        self._main_used = True
        if stamps:
            self.main.saw(max(stamps))

    def emit_watermark(self, timestamp: int, /) -> None:
        """Declare the reader's watermark."""
        self._main_used = True
        main = self.main
        if main.explicit is None or timestamp > main.explicit:
            main.explicit = timestamp
            self.explicit_advanced = True

    def mark_idle(self) -> None:
        """The reader has nothing now; it stops holding back the watermark until its next record."""
        self.main.forced_idle = True

    def split_output(self, split_id: str, /) -> SplitOutput:
        """The output of one split, with a watermark of its own (for per-split watermarks)."""
        output = self._outputs.get(split_id)
        if output is None:
            tracker = _Tracker(self._factory() if self._factory else None)
            tracker.last_active = self._now
            self.splits[split_id] = tracker
            output = self._outputs[split_id] = SplitOutput(self, split_id, tracker)
        return output

    def release_split_output(self, split_id: str, /) -> None:
        """The split is finished: it no longer holds back the watermark."""
        self.splits.pop(split_id, None)
        self._outputs.pop(split_id, None)

    # -- the task's side -------------------------------------------------------------------
    def append(self, record: Any, timestamp: int | None) -> None:
        """Add a record to the batch."""
        self.values.append(record)
        if self.timestamps is not None:
            self.timestamps.append(timestamp)
        elif timestamp is not None:
            self.timestamps = [None] * (len(self.values) - 1)
            self.timestamps.append(timestamp)

    def append_batch(
        self, records: Sequence[Any], timestamps: Sequence[int | None] | None = None
    ) -> list[int] | None:
        """Add records to the batch; returns their timestamps (assigned or given), if any."""
        if timestamps is not None and len(timestamps) != len(records):
            raise ValueError(
                f"collect_batch(): {len(records)} records but {len(timestamps)} timestamps"
            )
        self.values.extend(records)
        if self.assigner is not None:
            assign = self.assigner
            given = timestamps if timestamps is not None else [None] * len(records)
            stamps: list[int] = [assign(r, t) for r, t in zip(records, given, strict=True)]
        elif timestamps is not None:
            if self.timestamps is None:
                self.timestamps = [None] * (len(self.values) - len(records))
            self.timestamps.extend(timestamps)
            present = [t for t in timestamps if t is not None]
            return present or None
        else:
            if self.timestamps is not None:
                self.timestamps.extend([None] * len(records))
            return None
        if self.timestamps is None:
            self.timestamps = [None] * (len(self.values) - len(records))
        self.timestamps.extend(stamps)
        return stamps

    def add_dead_letter(self, letter: Any) -> None:
        """Buffer a letter reported during a poll."""
        self.dead_letters.append(letter)

    def pending(self) -> int:
        """How many records and dead letters wait to be sent."""
        return len(self.values) + len(self.dead_letters)

    def take_dead_letters(self) -> RecordBatch:
        """The buffered dead letters as a batch (without timestamps); the buffer starts empty."""
        batch = RecordBatch(self.dead_letters, None)
        self.dead_letters = []
        return batch

    def take(self) -> RecordBatch:
        """The buffered records as a batch; the buffer starts empty again."""
        batch = RecordBatch(self.values, self.timestamps)
        self.values = []
        self.timestamps = None
        return batch

    def watermark(self, now: float) -> tuple[int | None, bool]:
        """The combined watermark of the outputs that are not idle, and whether all are idle."""
        self._now = now
        trackers = list(self.splits.values())
        if self._main_used or not trackers:
            trackers.append(self.main)
        active = [t for t in trackers if not t.idle(now, self._idle_timeout)]
        if not active:
            return None, True
        marks = [t.watermark() for t in active]
        if any(m is None for m in marks):
            return None, False
        return min(m for m in marks if m is not None), False

    def split_watermarks(self, now: float) -> dict[str, int | None]:
        """The current watermark of each split output that is not idle (for alignment)."""
        timeout = self._idle_timeout
        return {
            split_id: t.watermark()
            for split_id, t in self.splits.items()
            if not t.idle(now, timeout)
        }
