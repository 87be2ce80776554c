"""The ``kafka`` connector in pipeline files (``headwater run pipeline.toml``).

Source settings: ``format`` (a connector-base format name or table; without it values are
emitted as ``bytes``). Sink settings: ``topic`` (required), ``format`` (how records become values;
default ``raw``: the records are ``bytes``) and ``key`` (a ``module:function`` returning the
key's bytes or ``None``). The ``options`` tables are :class:`KafkaSourceOptions` and
:class:`KafkaSinkOptions`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from headwater.connectors.base import Format, format_setting
from headwater.connectors.kafka._options import KafkaSinkOptions, KafkaSourceOptions
from headwater.connectors.kafka._records import KafkaRecordSerializer
from headwater.connectors.kafka._sink import KafkaSink
from headwater.connectors.kafka._source import KafkaSource
from headwater.core import PipelineBinding, function_setting, value_setting

__all__ = ["pipeline_sink", "pipeline_source"]


def _sink(
    options: KafkaSinkOptions,
    *,
    topic: str,
    value_format: Format[Any],
    key: Callable[[Any], bytes | None] | None,
) -> KafkaSink[Any]:
    serializer: KafkaRecordSerializer[Any] = KafkaRecordSerializer(
        topic=topic, value=value_format.encode, key=key
    )
    return KafkaSink(options, serializer)


pipeline_source = PipelineBinding(
    build=KafkaSource,
    options=KafkaSourceOptions,
    settings={"format": format_setting("value_format")},
)
"""A :class:`KafkaSource` from a pipeline's ``[source]`` table."""
pipeline_sink = PipelineBinding(
    build=_sink,
    options=KafkaSinkOptions,
    settings={
        "topic": value_setting("topic", required=True, kind=str),
        "format": format_setting("value_format", default="raw"),
        "key": function_setting("key"),
    },
)
"""A :class:`KafkaSink` (records serialized to ``topic``) from a pipeline's ``[sink]`` table."""
