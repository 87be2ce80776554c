"""connector-testing's conformance suites against both test servers (OpenSearch and Elasticsearch)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from headwater.connectors.opensearch import (
    OpenSearchSink,
    OpenSearchSinkOptions,
    OpenSearchSource,
    OpenSearchSourceOptions,
)
from headwater.connectors.testing import (
    SinkExternalContext,
    SinkTestSuiteBase,
    SourceExternalContext,
    SourceTestSuiteBase,
)
from headwater.core import DeliveryGuarantee, Sink, Source
from os_helpers import Server


def _document(n: int) -> dict[str, int]:
    return {"n": n}


def _number(document: dict[str, Any]) -> int:
    return int(document["n"])


class OpenSearchSinkContext(SinkExternalContext):
    """A fresh index; record ``n`` becomes document ``{"n": n}`` with an id the server generates.

    Server-generated ids make every write a new document, so :meth:`read_back` shows a record
    delivered twice twice and the suite checks the sink's own guarantee, at-least-once. The
    exactly-once results that deterministic ids and external versions give are proven by
    ``test_kill.py`` and ``test_sink.py``, which also show a replay without them duplicates.
    """

    guarantee = DeliveryGuarantee.AT_LEAST_ONCE
    job_target = "os_jobs:opensearch_job"

    def __init__(self, server: Server, index: str) -> None:
        self.server = server
        self.index = index
        server.create_index(index, {"n": {"type": "long"}})

    def create_sink(self) -> Sink[Any]:
        options = OpenSearchSinkOptions(client=self.server.options(), index=self.index)
        return OpenSearchSink(options, to_document=_document)

    def read_back(self) -> list[Any]:
        return [hit["_source"]["n"] for hit in self.server.documents(self.index)]

    def job_params(self) -> dict[str, str]:
        return {"url": self.server.url, "flavor": self.server.flavor.value, "index": self.index}


class TestOpenSearchSinkConformance(SinkTestSuiteBase):
    count = 1000

    @pytest.fixture
    def external(
        self, server: Server, unique_name: str, jobs_on_path: None
    ) -> OpenSearchSinkContext:
        return OpenSearchSinkContext(server, unique_name)


class OpenSearchSourceContext(SourceExternalContext):
    """A fresh index of documents ``{"n": n}``, read back as the integers ``n``.

    The suite's unbounded tests skip (the source is a bounded scan, said in :meth:`create_source`)
    and so do its bad-record tests: the source has no format to fail on, it hands out the JSON the
    server parsed (a ``deserializer=`` that raises fails the job; there is no error policy).

    ``reverse_slices``: :meth:`write_test_data_in_splits` puts the first split into the last
    slice, the last into slice 0 (the slice a reader's queue starts with).
    """

    def __init__(
        self, server: Server, index: str, slices: int, *, reverse_slices: bool = False
    ) -> None:
        self.server = server
        self.index = index
        self.slices = slices
        self.reverse_slices = reverse_slices
        server.create_index(index, {"n": {"type": "long"}})

    def write_test_data(self, records: Sequence[Any]) -> None:
        self.server.write(self.index, [{"n": n} for n in records])

    def write_test_data_in_splits(self, splits: Sequence[Sequence[Any]]) -> None:
        """``splits[i]`` into slice ``i`` of ``len(splits)``: ids the server puts in that slice."""
        self.slices = len(splits)
        candidates = 4 * self.slices * max(len(split) for split in splits)
        ids = self.server.ids_by_slice(self.index, self.slices, candidates)
        if self.reverse_slices:
            ids.reverse()
        for split, free in zip(splits, ids, strict=True):
            assert len(free) >= len(split), f"only {len(free)} probe ids in a slice"
            self.server.write_with_ids(
                self.index, [(id_, {"n": n}) for id_, n in zip(free, split, strict=False)]
            )

    def create_source(self, *, bounded: bool) -> Source[Any, Any, Any]:
        if not bounded:
            pytest.skip("the OpenSearch source is a bounded scan; it has no unbounded mode")
        options = OpenSearchSourceOptions(
            client=self.server.options(), index=self.index, slices=self.slices, fetch_size=100
        )
        return OpenSearchSource(options, deserializer=_number)


class TestOpenSearchSourceConformance(SourceTestSuiteBase):
    @pytest.fixture
    def external(self, server: Server, unique_name: str) -> OpenSearchSourceContext:
        return OpenSearchSourceContext(server, unique_name, slices=3)


def test_a_slice_ahead_in_event_time_read_first_makes_no_record_late(
    server: Server, unique_name: str
) -> None:
    """The suite's two-split event-time test with the split ahead in slice 0.

    A reader that read slice 0 to its end before slice 1 (as this source did) dropped every
    record of the split behind as late; one that reads its slices in turn holds event time at
    the slowest.
    """
    context = OpenSearchSourceContext(server, unique_name, slices=2, reverse_slices=True)
    TestOpenSearchSourceConformance().test_splits_at_different_event_time_progress(context)
