"""The ``mongodb`` connector in pipeline files (``headwater run pipeline.toml``).

Source settings: ``format`` (a connector-base format name or table decoding BSON documents, for
``output = "document"``; default: documents as ``dict``). Sink settings: ``to_document`` (a
``module:function`` turning a record into its document; default: records are documents). The
``options`` tables are :class:`MongoSourceOptions` and :class:`MongoSinkOptions`.
"""

from __future__ import annotations

from typing import Any

from headwater.connectors.base import pipeline_format
from headwater.connectors.mongodb._options import MongoSinkOptions, MongoSourceOptions
from headwater.connectors.mongodb._sink import MongoSink
from headwater.connectors.mongodb._source import MongoSource
from headwater.core import PipelineEndpoint

__all__ = ["pipeline_sink", "pipeline_source"]


def pipeline_source(endpoint: PipelineEndpoint) -> MongoSource[Any]:
    """A :class:`MongoSource` from a pipeline's ``[source]`` table."""
    endpoint.check_settings({"format"})
    return MongoSource(MongoSourceOptions(**endpoint.options), format=pipeline_format(endpoint))


def pipeline_sink(endpoint: PipelineEndpoint) -> MongoSink[Any]:
    """A :class:`MongoSink` from a pipeline's ``[sink]`` table."""
    endpoint.check_settings({"to_document"})
    return MongoSink(
        MongoSinkOptions(**endpoint.options), to_document=endpoint.function("to_document")
    )
