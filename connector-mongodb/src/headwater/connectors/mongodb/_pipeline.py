"""The ``mongodb`` connector in pipeline files (``headwater run pipeline.toml``).

Source settings: ``format`` (a connector-base format name or table decoding BSON documents, for
``output = "document"``; default: documents as ``dict``). Sink settings: ``to_document`` (a
``module:function`` turning a record into its document; default: records are documents). The
``options`` tables are :class:`MongoSourceOptions` and :class:`MongoSinkOptions`.
"""

from __future__ import annotations

from headwater.connectors.base import format_setting
from headwater.connectors.mongodb._options import MongoSinkOptions, MongoSourceOptions
from headwater.connectors.mongodb._sink import MongoSink
from headwater.connectors.mongodb._source import MongoSource
from headwater.core import PipelineBinding, function_setting

__all__ = ["pipeline_sink", "pipeline_source"]

pipeline_source = PipelineBinding(
    build=MongoSource, options=MongoSourceOptions, settings={"format": format_setting("format")}
)
"""A :class:`MongoSource` from a pipeline's ``[source]`` table."""
pipeline_sink = PipelineBinding(
    build=MongoSink,
    options=MongoSinkOptions,
    settings={"to_document": function_setting("to_document")},
)
"""A :class:`MongoSink` from a pipeline's ``[sink]`` table."""
