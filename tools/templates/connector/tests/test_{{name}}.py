"""Tests of the {{title}} connector: registration, options, pipelines, and connector-testing's suites.

The conformance suites are the same for every connector: the connector supplies a context that
writes to and reads from {{title}}, and inherits the tests. As generated, the contexts use the
example system (``_client.ExampleClient``, a log in a temporary directory); when the connector
uses {{title}}'s client, give them a real server instead (a fixture of connector-testing's
pytest plugin, such as ``kafka_service``, next to ``unique_name``) and write and read with that
client.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from headwater.connectors.base import ErrorPolicy, JsonFormat
from headwater.connectors.testing import (
    SinkExternalContext,
    SinkTestSuiteBase,
    SourceExternalContext,
    SourceTestSuiteBase,
)
from headwater.connectors.{{name}} import (
    CONNECTOR,
    {{class_prefix}}Sink,
    {{class_prefix}}SinkOptions,
    {{class_prefix}}Source,
    {{class_prefix}}SourceOptions,
)
from headwater.connectors.{{name}}._client import ExampleClient
from headwater.core import ConfigurationError, Sink, Source, installed_connectors, load_pipeline

PARTITIONS = 3
"""Partitions of each test log: fewer than some tests' parallelism, so some readers idle."""


def _new_log(address: Path, log: str, partitions: int = PARTITIONS) -> ExampleClient:
    client = ExampleClient(str(address))
    asyncio.run(client.create_log(log, partitions))
    return client


def _read_all(client: ExampleClient, log: str) -> list[Any]:
    async def read() -> list[Any]:
        values = []
        for partition in range(await client.partitions(log)):
            records = await client.read(log, partition, 0, 1_000_000, None)
            values += [json.loads(r.payload) for r in records]
        return values

    return asyncio.run(read())


def test_registered_for_the_installed_core() -> None:
    connector = next(c for c in installed_connectors() if c.identifier == "{{name}}")
    assert connector.spec is CONNECTOR
    assert connector.compatible, connector.requirement


def test_options_name_the_option_at_fault() -> None:
    with pytest.raises(ConfigurationError, match="fetch_size"):
        {{class_prefix}}SourceOptions(address="/tmp", log="orders", fetch_size=0)


def test_a_pipeline_copies_a_log(tmp_path: Path) -> None:
    """A pipeline file reads one log (bounded) and writes another: the same records arrive."""
    client = _new_log(tmp_path, "in")
    _new_log(tmp_path, "out")
    records = [{"n": n, "word": f"w{n}"} for n in range(100)]
    asyncio.run(client.append("in", 0, [json.dumps(r).encode() for r in records]))
    pipeline = tmp_path / "copy.toml"
    pipeline.write_text(
        f'[source]\nconnector = "{{name}}"\nformat = "json"\nbounded = true\n'
        f'[source.options]\naddress = "{tmp_path}"\nlog = "in"\n'
        f'[sink]\nconnector = "{{name}}"\n[sink.options]\naddress = "{tmp_path}"\nlog = "out"\n'
    )
    load_pipeline(pipeline).run()
    assert sorted(_read_all(client, "out"), key=lambda r: r["n"]) == records


# -- conformance ----------------------------------------------------------------------------------


class {{class_prefix}}SourceContext(SourceExternalContext):
    """A fresh log (named ``log``) for the source suite."""

    def __init__(self, address: Path, log: str) -> None:
        self.address = address
        self.log = log
        self.client = ExampleClient(str(address))

    def _write(self, partition: int, payloads: Sequence[bytes]) -> None:
        asyncio.run(self.client.append(self.log, partition, payloads))

    def write_test_data(self, records: Sequence[Any]) -> None:
        asyncio.run(self.client.create_log(self.log, PARTITIONS))
        for partition in range(PARTITIONS):
            self._write(partition, [json.dumps(r).encode() for r in records[partition::PARTITIONS]])

    def write_test_data_in_splits(self, splits: Sequence[Sequence[Any]]) -> None:
        asyncio.run(self.client.create_log(self.log, len(splits)))
        for partition, records in enumerate(splits):
            self._write(partition, [json.dumps(r).encode() for r in records])

    def write_bad_records(self, count: int) -> None:
        self._write(0, [b"{not json" for _ in range(count)])

    def _options(self) -> {{class_prefix}}SourceOptions:
        return {{class_prefix}}SourceOptions(address=str(self.address), log=self.log)

    def create_source(self, *, bounded: bool) -> Source[Any, Any, Any]:
        if bounded:
            return {{class_prefix}}Source(self._options(), format=JsonFormat(), bounded=True)
        # Unbounded runs are stopped after 0.6 s and must be mid-log then: 20 ms per read of 25
        # records (about 1 s for the suite's 1,000). A real server needs its own throttle.
        slow = {{class_prefix}}SourceOptions(
            address=f"{self.address}#latency=0.02", log=self.log, fetch_size=25
        )
        return {{class_prefix}}Source(slow, format=JsonFormat())

    def create_source_with_error_policy(self, policy: ErrorPolicy) -> Source[Any, Any, Any]:
        return {{class_prefix}}Source(
            self._options(), format=JsonFormat(on_error=policy), bounded=True
        )


class {{class_prefix}}SinkContext(SinkExternalContext):
    """A fresh log (named ``log``) for the sink suite; read back in full, duplicates included."""

    # `module:function` of a job writing DataGen integers into this sink, for the process-kill
    # tests: tests/{{name}}_jobs.py (the `jobs_on_path` fixture puts tests/ on the job's path).
    job_target = "{{name}}_jobs:{{name}}_sink_job"

    def __init__(self, address: Path, log: str) -> None:
        self.address = address
        self.log = log
        self.client = _new_log(address, log)

    def create_sink(self) -> Sink[Any]:
        return {{class_prefix}}Sink(
            {{class_prefix}}SinkOptions(address=str(self.address), log=self.log)
        )

    def read_back(self) -> list[Any]:
        return _read_all(self.client, self.log)

    def job_params(self) -> dict[str, str]:
        return {"address": str(self.address), "log": self.log}


@pytest.fixture
def jobs_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Job processes of the kill tests import ``{{name}}_jobs`` from this directory."""
    here = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))


class Test{{class_prefix}}SourceConformance(SourceTestSuiteBase):
    @pytest.fixture
    def external(self, tmp_path: Path, unique_name: str) -> {{class_prefix}}SourceContext:
        return {{class_prefix}}SourceContext(tmp_path, unique_name)


class Test{{class_prefix}}SinkConformance(SinkTestSuiteBase):
    @pytest.fixture
    def external(
        self, tmp_path: Path, unique_name: str, jobs_on_path: None
    ) -> {{class_prefix}}SinkContext:
        return {{class_prefix}}SinkContext(tmp_path, unique_name)
