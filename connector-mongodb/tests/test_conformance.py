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
)
from headwater.connectors.testing import (
    SinkExternalContext,
    SinkTestSuiteBase,
    SourceExternalContext,
    SourceTestSuiteBase,
)
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core import DeliveryGuarantee, Sink, Source
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


class MongoSourceContext(SourceExternalContext):
    """Integers as documents ``{_id: n, value: n}`` in a fresh collection (3 pagination splits)."""

    def __init__(self, uri: str, database: str) -> None:
        self.uri = uri
        self.database = database
        self.client: MongoClient = MongoClient(uri)
        self.collection = self.client[database]["numbers"]

    def write_test_data(self, records: Sequence[Any]) -> None:
        self.collection.insert_many([{"_id": r, "value": r} for r in records])

    def write_bad_records(self, count: int) -> None:
        self.collection.insert_many([{"_id": f"bad-{i}", "value": f"x{i}"} for i in range(count)])

    def _options(self, **kwargs: Any) -> MongoSourceOptions:
        return MongoSourceOptions(
            uri=self.uri, database=self.database, collection="numbers",
            partition_strategy="pagination", partition_records=400, fetch_size=50, **kwargs,
        )  # fmt: skip

    def create_source(self, *, bounded: bool) -> Source[Any, Any, Any]:
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
    """Integers as documents ``{_id: n, n: n}`` (upserts) in a fresh collection."""

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
        )
        return MongoSink(options, to_document=lambda n: {"_id": n, "n": n})

    def read_back(self) -> list[Any]:
        return [d["n"] for d in self.client[self.database]["out"].find()]

    def job_params(self) -> dict[str, str]:
        return {
            "uri": self.uri, "database": self.database, "collection": "out",
            "guarantee": self.guarantee.value,
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
