"""connector-testing's source and sink conformance suites against the real mongod."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from headwater.connectors.base import ErrorPolicy
from headwater.connectors.mongodb import (
    BsonFormat,
    MongoSink,
    MongoSinkOptions,
    MongoSource,
    MongoSourceOptions,
    MongoSplit,
)
from headwater.connectors.mongodb._enumerator import MongoSourceEnumerator
from headwater.connectors.mongodb._split import EnumeratorState
from headwater.connectors.testing import (
    SinkExternalContext,
    SinkTestSuiteBase,
    SourceExternalContext,
    SourceTestSuiteBase,
)
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import (
    DeliveryGuarantee,
    Sink,
    Source,
    SplitEnumerator,
    SplitEnumeratorContext,
)
from pymongo import MongoClient

from .mongo_helpers import ThrottledMongoSource


class IntegerFormat(BsonFormat):
    """Documents ``{_id, value}`` as their integer value; a non-integer value is a bad record."""

    name = "integer-documents"

    def decode(self, payload: bytes) -> Any:  # type: ignore[override]
        value = super().decode(payload)["value"]
        if not isinstance(value, int):
            raise ValueError(f"value {value!r} is not an integer")
        return value


class AllSplitsAtOnceEnumerator(MongoSourceEnumerator):
    """Hands every pending snapshot split to the first reader that asks.

    The real enumerator gives one split per request, so a reader holds several splits only after
    a restore onto fewer readers; this makes one reader read several splits at once (each on its
    own fetcher) without a restore.
    """

    def _answer(self, reader: int) -> None:
        super()._answer(reader)
        while self._pending:
            super()._answer(reader)


class AllSplitsAtOnceMongoSource(MongoSource[Any]):
    """A bounded MongoSource whose one reader gets all snapshot splits together (test only)."""

    def create_enumerator(
        self, context: SplitEnumeratorContext[MongoSplit]
    ) -> SplitEnumerator[MongoSplit, EnumeratorState]:
        return AllSplitsAtOnceEnumerator(context, self.options)


class MongoSourceContext(SourceExternalContext):
    """Integers as documents ``{_id: n, value: n}`` in a fresh collection (3 pagination splits).

    :meth:`write_test_data_in_splits` writes split ``k``'s records with ``_id`` s in a range of
    their own, sized so that pagination cuts exactly at the ranges' bounds.
    """

    def __init__(self, uri: str, database: str) -> None:
        self.uri = uri
        self.database = database
        self.client: MongoClient = MongoClient(uri)
        self.collection = self.client[database]["numbers"]
        self.partition_records = 400
        self.all_splits_at_once = False

    def write_test_data(self, records: Sequence[Any]) -> None:
        self.collection.insert_many([{"_id": r, "value": r} for r in records])

    def write_test_data_in_splits(self, splits: Sequence[Sequence[Any]]) -> None:
        sizes = {len(split) for split in splits}
        assert len(sizes) == 1, "pagination splits are of one size"
        self.partition_records = sizes.pop()
        self.all_splits_at_once = True
        self.collection.insert_many(
            [
                {"_id": k * self.partition_records + i, "value": value}
                for k, split in enumerate(splits)
                for i, value in enumerate(split)
            ]
        )

    def write_bad_records(self, count: int) -> None:
        self.collection.insert_many([{"_id": f"bad-{i}", "value": f"x{i}"} for i in range(count)])

    def _options(self, **kwargs: Any) -> MongoSourceOptions:
        return MongoSourceOptions(
            uri=self.uri, database=self.database, collection="numbers",
            partition_strategy="pagination", partition_records=self.partition_records,
            fetch_size=50, **kwargs,
        )  # fmt: skip

    def create_source(self, *, bounded: bool) -> Source[Any, Any, Any]:
        if bounded and self.all_splits_at_once:
            return AllSplitsAtOnceMongoSource(self._options(), format=IntegerFormat())
        if bounded:
            return MongoSource(self._options(), format=IntegerFormat())
        return ThrottledMongoSource(
            self._options(startup_mode="initial"), format=IntegerFormat(), rate=300
        )

    def create_source_with_error_policy(self, policy: ErrorPolicy) -> Source[Any, Any, Any]:
        return MongoSource(self._options(), format=IntegerFormat(on_error=policy))


class TestMongoSource(SourceTestSuiteBase):
    @pytest.fixture
    def external(
        self, mongodb_service: RunningService, mongo: MongoClient, unique_name: str
    ) -> MongoSourceContext:
        return MongoSourceContext(mongodb_service.address, unique_name)


class MongoSinkContext(SinkExternalContext):
    """Integers as documents ``{n: n}`` inserted with server-made ``_id`` s into a fresh collection.

    Append-only, so a record written twice is read back twice.
    """

    job_target = "mongo_jobs:mongo_sink_job"

    def __init__(self, uri: str, database: str, guarantee: DeliveryGuarantee) -> None:
        self.uri = uri
        self.database = database
        self.guarantee = guarantee
        self.client: MongoClient = MongoClient(uri)

    def create_sink(self) -> Sink[Any]:
        options = MongoSinkOptions(
            uri=self.uri,
            database=self.database,
            collection="out",
            delivery_guarantee=self.guarantee,
            write_mode="insert",
        )
        return MongoSink(options, to_document=lambda n: {"n": n})

    def read_back(self) -> list[Any]:
        return [d["n"] for d in self.client[self.database]["out"].find()]

    def job_params(self) -> dict[str, str]:
        return {
            "uri": self.uri, "database": self.database, "collection": "out",
            "guarantee": self.guarantee.value, "mode": "insert",
        }  # fmt: skip


class TestMongoSinkExactlyOnce(SinkTestSuiteBase):
    count = 1000

    @pytest.fixture
    def external(
        self,
        mongodb_service: RunningService,
        mongo: MongoClient,
        unique_name: str,
        jobs_on_path: None,
    ) -> MongoSinkContext:
        return MongoSinkContext(
            mongodb_service.address, unique_name, DeliveryGuarantee.EXACTLY_ONCE
        )


class TestMongoSinkAtLeastOnce(SinkTestSuiteBase):
    count = 1000

    @pytest.fixture
    def external(
        self,
        mongodb_service: RunningService,
        mongo: MongoClient,
        unique_name: str,
        jobs_on_path: None,
    ) -> MongoSinkContext:
        return MongoSinkContext(
            mongodb_service.address, unique_name, DeliveryGuarantee.AT_LEAST_ONCE
        )
