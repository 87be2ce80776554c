"""Helpers of the MongoDB tests: a throttled source (so an unbounded test can stop mid-read)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from headwater.connectors.mongodb import MongoSource, MongoSplit
from headwater.core import InputStatus, ReaderOutput, SourceReader, SourceReaderContext


class _Counting:
    def __init__(self, output: ReaderOutput[Any]) -> None:
        self.output = output
        self.count = 0

    def collect(self, record: Any, timestamp: int | None = None, /) -> None:
        self.count += 1
        self.output.collect(record, timestamp)

    def collect_batch(self, records: Sequence[Any], timestamps: Any = None, /) -> None:
        self.count += len(records)
        self.output.collect_batch(records, timestamps)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.output, name)


class ThrottledReader(SourceReader[Any, MongoSplit]):
    """Delegates to a MongoDB reader, but emits at most ``rate`` records per second."""

    def __init__(self, reader: SourceReader[Any, MongoSplit], rate: float) -> None:
        self.reader = reader
        self.rate = rate
        self.started = time.monotonic()
        self.emitted = 0

    async def start(self) -> None:
        self.started = time.monotonic()
        await self.reader.start()

    def _wait(self) -> float:
        return (self.emitted / self.rate) - (time.monotonic() - self.started)

    def poll_next(self, output: ReaderOutput[Any]) -> InputStatus:
        if self._wait() > 0:
            return InputStatus.NOTHING_AVAILABLE
        counting = _Counting(output)
        status = self.reader.poll_next(counting)  # type: ignore[arg-type]
        self.emitted += counting.count
        return status

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
