"""The registration of the OpenSearch connector (entry point ``opensearch``)."""

from __future__ import annotations

from headwater.connectors.opensearch._options import (
    OpenSearchLookupOptions,
    OpenSearchSinkOptions,
    OpenSearchSourceOptions,
)
from headwater.connectors.opensearch._pipeline import pipeline_sink, pipeline_source
from headwater.connectors.opensearch._sink import OpenSearchSink
from headwater.connectors.opensearch._source import OpenSearchSource
from headwater.core import ConnectorSpec

__all__ = ["CONNECTOR"]

CONNECTOR = ConnectorSpec(
    identifier="opensearch",
    summary="OpenSearch and Elasticsearch: bulk sink, sliced point-in-time source, lookups.",
    source=OpenSearchSource,
    sink=OpenSearchSink,
    options={
        "source": OpenSearchSourceOptions,
        "sink": OpenSearchSinkOptions,
        "lookup": OpenSearchLookupOptions,
    },
    distribution="headwater-connector-opensearch",
    pipeline_source=pipeline_source,
    pipeline_sink=pipeline_sink,
)
