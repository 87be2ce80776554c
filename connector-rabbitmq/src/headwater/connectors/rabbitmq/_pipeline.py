"""The ``rabbitmq`` connector in pipeline files (``headwater run pipeline.toml``).

Source settings: ``format`` (a connector-base format name or table; without it bodies are emitted
as ``bytes``). Sink settings: ``format`` (how records become bodies; default ``raw``: the records
are ``bytes``) and ``message_id`` (a ``module:function`` returning a record's message id). The
``options`` tables are :class:`RabbitMQSourceOptions` and :class:`RabbitMQSinkOptions` (the
connection as ``options.connection``).
"""

from __future__ import annotations

from headwater.connectors.base import format_setting
from headwater.connectors.rabbitmq._options import RabbitMQSinkOptions, RabbitMQSourceOptions
from headwater.connectors.rabbitmq._sink import RabbitMQSink
from headwater.connectors.rabbitmq._source import RabbitMQSource
from headwater.core import PipelineBinding, function_setting

__all__ = ["pipeline_sink", "pipeline_source"]

pipeline_source = PipelineBinding(
    build=RabbitMQSource,
    options=RabbitMQSourceOptions,
    settings={"format": format_setting("value_format")},
)
"""A :class:`RabbitMQSource` from a pipeline's ``[source]`` table."""
pipeline_sink = PipelineBinding(
    build=RabbitMQSink,
    options=RabbitMQSinkOptions,
    settings={
        "format": format_setting("value_format", default="raw"),
        "message_id": function_setting("message_id"),
    },
)
"""A :class:`RabbitMQSink` from a pipeline's ``[sink]`` table."""
