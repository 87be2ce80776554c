"""The registration of the MongoDB connector (entry point ``mongodb``)."""

from __future__ import annotations

from headwater.connectors.mongodb._options import (
    MongoLookupOptions,
    MongoSinkOptions,
    MongoSourceOptions,
)
from headwater.connectors.mongodb._pipeline import pipeline_sink, pipeline_source
from headwater.connectors.mongodb._sink import MongoSink
from headwater.connectors.mongodb._source import MongoSource
from headwater.core import ConnectorSpec

__all__ = ["CONNECTOR"]

CONNECTOR = ConnectorSpec(
    identifier="mongodb",
    summary="MongoDB: snapshot and change-stream source, bulk sink (exactly-once), lookups.",
    source=MongoSource,
    sink=MongoSink,
    options={"source": MongoSourceOptions, "sink": MongoSinkOptions, "lookup": MongoLookupOptions},
    distribution="headwater-connector-mongodb",
    pipeline_source=pipeline_source,
    pipeline_sink=pipeline_sink,
)
