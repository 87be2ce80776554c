"""Helpers of the MongoDB tests: a throttled source (so an unbounded test can stop mid-read)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from headwater.connectors.mongodb import MongoSource, MongoSplit
from headwater.core import InputStatus, ReaderOutput, SourceReader, SourceReaderContext


class _Counting:
    """A ReaderOutput counting what passes through it and through its split outputs (``total``).

    The reader base emits through per-split outputs it creates once per split and keeps, so
    they count into the total they were created with.
    """

    def __init__(self, output: ReaderOutput[Any], total: list[int] | None = None) -> None:
        self.output = output
        self.total = total if total is not None else [0]

    def collect(self, record: Any, timestamp: int | None = None, /) -> None:
        self.total[0] += 1
        self.output.collect(record, timestamp)

    def collect_batch(self, records: Sequence[Any], timestamps: Any = None, /) -> None:
        self.total[0] += len(records)
        self.output.collect_batch(records, timestamps)

    def split_output(self, split_id: str, /) -> _Counting:
        return _Counting(self.output.split_output(split_id), self.total)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.output, name)


class ThrottledReader(SourceReader[Any, MongoSplit]):
    """Delegates to a MongoDB reader, but emits at most ``rate`` records per second."""

    def __init__(self, reader: SourceReader[Any, MongoSplit], rate: float) -> None:
        self.reader = reader
        self.rate = rate
        self.started = time.monotonic()
        self.counting: _Counting | None = None

    async def start(self) -> None:
        self.started = time.monotonic()
        await self.reader.start()

    @property
    def emitted(self) -> int:
        return 0 if self.counting is None else self.counting.total[0]

    def _wait(self) -> float:
        return (self.emitted / self.rate) - (time.monotonic() - self.started)

    def poll_next(self, output: ReaderOutput[Any]) -> InputStatus:
        if self._wait() > 0:
            return InputStatus.NOTHING_AVAILABLE
        if self.counting is None:  # one for the reader's life: the reader keeps its split outputs
            self.counting = _Counting(output)
        return self.reader.poll_next(self.counting)  # type: ignore[arg-type]

    def is_available(self) -> asyncio.Future[None]:
        wait = self._wait()
        if wait <= 0:
            return self.reader.is_available()
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(
            wait, lambda: future.done() or future.set_result(None)
        )
        return future

    def add_splits(self, splits: Sequence[MongoSplit]) -> None:
        self.reader.add_splits(splits)

    def notify_no_more_splits(self) -> None:
        self.reader.notify_no_more_splits()

    def snapshot_state(self, checkpoint_id: int) -> list[MongoSplit]:
        return self.reader.snapshot_state(checkpoint_id)

    async def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        await self.reader.notify_checkpoint_complete(checkpoint_id)

    def handle_source_event(self, event: Any) -> None:
        self.reader.handle_source_event(event)

    async def close(self) -> None:
        await self.reader.close()


class ThrottledMongoSource(MongoSource[Any]):
    """A MongoSource whose readers emit at most ``rate`` records per second (test only)."""

    def __init__(self, *args: Any, rate: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rate = rate

    def create_reader(self, context: SourceReaderContext) -> SourceReader[Any, MongoSplit]:
        return ThrottledReader(super().create_reader(context), self.rate)
