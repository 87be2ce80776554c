"""Helpers of the MongoDB tests: a throttled source (so an unbounded test can stop mid-read)."""

from __future__ import annotations

from typing import Any

from headwater.connectors.mongodb import MongoSource, MongoSplit
from headwater.core import SourceReader, SourceReaderContext
from headwater.core.testing import ThrottledReader


class ThrottledMongoSource(MongoSource[Any]):
    """A MongoSource whose readers emit at most ``rate`` records per second (test only)."""

    def __init__(self, *args: Any, rate: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rate = rate

    def create_reader(self, context: SourceReaderContext) -> SourceReader[Any, MongoSplit]:
        return ThrottledReader(super().create_reader(context), self.rate)
