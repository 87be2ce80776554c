"""The ``rabbitmq`` connector in pipeline files (``headwater run pipeline.toml``).

Source settings: ``format`` (a connector-base format name or table; without it bodies are emitted
as ``bytes``). Sink settings: ``format`` (how records become bodies; default ``raw``: the records
are ``bytes``) and ``message_id`` (a ``module:function`` returning a record's message id). The
``options`` tables are :class:`RabbitMQSourceOptions` and :class:`RabbitMQSinkOptions` (the
connection as ``options.connection``).
"""

from __future__ import annotations

from typing import Any

from headwater.connectors.base import pipeline_format
from headwater.connectors.rabbitmq._options import RabbitMQSinkOptions, RabbitMQSourceOptions
from headwater.connectors.rabbitmq._sink import RabbitMQSink
from headwater.connectors.rabbitmq._source import RabbitMQSource
from headwater.core import PipelineEndpoint

__all__ = ["pipeline_sink", "pipeline_source"]


def pipeline_source(endpoint: PipelineEndpoint) -> RabbitMQSource[Any]:
    """A :class:`RabbitMQSource` from a pipeline's ``[source]`` table."""
    endpoint.check_settings({"format"})
    return RabbitMQSource(
        RabbitMQSourceOptions(**endpoint.options), value_format=pipeline_format(endpoint)
    )


def pipeline_sink(endpoint: PipelineEndpoint) -> RabbitMQSink[Any]:
    """A :class:`RabbitMQSink` from a pipeline's ``[sink]`` table."""
    endpoint.check_settings({"format", "message_id"})
    return RabbitMQSink(
        RabbitMQSinkOptions(**endpoint.options),
        value_format=pipeline_format(endpoint, default="raw"),
        message_id=endpoint.function("message_id"),
    )
