"""Tests of the MongoDB connector: registration, options, and connector-testing's conformance suites.

The conformance suites are the same for every connector: the connector supplies a context that
writes to and reads from MongoDB, and inherits the tests. Until the source and the sink exist,
their suites are marked as expected to fail (strictly: once they pass, remove the mark). Delete
the suite of a direction the connector does not support.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from headwater.connectors.mongodb import CONNECTOR, MongoDBOptions
from headwater.connectors.testing import (
    SinkExternalContext,
    SinkTestSuiteBase,
    SourceExternalContext,
    SourceTestSuiteBase,
)
from headwater.core import ConfigurationError, Sink, Source, installed_connectors


def test_registered_for_the_installed_core() -> None:
    connector = next(c for c in installed_connectors() if c.identifier == "mongodb")
    assert connector.spec is CONNECTOR
    assert connector.compatible, connector.requirement


def test_options_name_the_option_at_fault() -> None:
    with pytest.raises(ConfigurationError, match="request_timeout"):
        MongoDBOptions(address="127.0.0.1:1", request_timeout=timedelta(0))


# -- conformance ----------------------------------------------------------------------------------
# Give each context the server it needs: add its fixture (kafka_service, mongodb_service, ... from
# connector-testing's pytest plugin) to the `external` fixtures below, next to `unique_name`.


class MongoDBSourceContext(SourceExternalContext):
    """A fresh MongoDB resource (named ``name``) for the source suite."""

    def __init__(self, name: str) -> None:
        self.name = name

    def write_test_data(self, records: Sequence[Any]) -> None:
        raise NotImplementedError("write the records into the resource with the MongoDB client")

    def create_source(self, *, bounded: bool) -> Source[Any, Any, Any]:
        raise NotImplementedError("return the MongoDB source reading the resource")


class MongoDBSinkContext(SinkExternalContext):
    """A fresh MongoDB resource (named ``name``) for the sink suite."""

    # `module:function` of a job writing DataGen integers into this sink, for the process-kill test
    # (see headwater.connectors.testing.builtin_jobs); set `guarantee` to what the sink declares.
    job_target = ""

    def __init__(self, name: str) -> None:
        self.name = name

    def create_sink(self) -> Sink[Any]:
        raise NotImplementedError("return the MongoDB sink writing into the resource")

    def read_back(self) -> list[Any]:
        raise NotImplementedError("read every record in the resource with the MongoDB client")

    def job_params(self) -> dict[str, str]:
        return {"name": self.name}


@pytest.mark.xfail(strict=True, reason="the MongoDB source is not written yet")
class TestMongoDBSourceConformance(SourceTestSuiteBase):
    @pytest.fixture
    def external(self, unique_name: str) -> MongoDBSourceContext:
        return MongoDBSourceContext(unique_name)


@pytest.mark.xfail(strict=True, reason="the MongoDB sink is not written yet")
class TestMongoDBSinkConformance(SinkTestSuiteBase):
    @pytest.fixture
    def external(self, unique_name: str) -> MongoDBSinkContext:
        return MongoDBSinkContext(unique_name)
