"""The ``kafka`` connector in pipeline files (``headwater run pipeline.toml``).

Source settings: ``format`` (a connector-base format name or table; without it values are
emitted as ``bytes``). Sink settings: ``topic`` (required), ``format`` (how records become values;
default ``raw``: the records are ``bytes``) and ``key`` (a ``module:function`` returning the
key's bytes or ``None``). The ``options`` tables are :class:`KafkaSourceOptions` and
:class:`KafkaSinkOptions`.
"""

from __future__ import annotations

from typing import Any

from headwater.connectors.base import pipeline_format
from headwater.connectors.kafka._options import KafkaSinkOptions, KafkaSourceOptions
from headwater.connectors.kafka._records import KafkaRecordSerializer
from headwater.connectors.kafka._sink import KafkaSink
from headwater.connectors.kafka._source import KafkaSource
from headwater.core import ConfigurationError, PipelineEndpoint

__all__ = ["pipeline_sink", "pipeline_source"]


def pipeline_source(endpoint: PipelineEndpoint) -> KafkaSource[Any]:
    """A :class:`KafkaSource` from a pipeline's ``[source]`` table."""
    endpoint.check_settings({"format"})
    return KafkaSource(
        KafkaSourceOptions(**endpoint.options), value_format=pipeline_format(endpoint)
    )


def pipeline_sink(endpoint: PipelineEndpoint) -> KafkaSink[Any]:
    """A :class:`KafkaSink` from a pipeline's ``[sink]`` table."""
    endpoint.check_settings({"topic", "format", "key"})
    topic = endpoint.settings.get("topic")
    if not isinstance(topic, str) or not topic:
        raise ConfigurationError(f"{endpoint.where('topic')}: the kafka sink needs a topic")
    value_format = pipeline_format(endpoint, default="raw")
    assert value_format is not None
    serializer: KafkaRecordSerializer[Any] = KafkaRecordSerializer(
        topic=topic, value=value_format.encode, key=endpoint.function("key")
    )
    return KafkaSink(KafkaSinkOptions(**endpoint.options), serializer)
