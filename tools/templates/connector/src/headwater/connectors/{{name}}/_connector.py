"""The registration of the {{title}} connector (entry point ``{{name}}``)."""

from __future__ import annotations

from headwater.connectors.{{name}}._options import (
    {{class_prefix}}SinkOptions,
    {{class_prefix}}SourceOptions,
)
from headwater.connectors.{{name}}._pipeline import pipeline_sink, pipeline_source
from headwater.connectors.{{name}}._sink import {{class_prefix}}Sink
from headwater.connectors.{{name}}._source import {{class_prefix}}Source
from headwater.core import ConnectorSpec

__all__ = ["CONNECTOR"]

CONNECTOR = ConnectorSpec(
    identifier="{{name}}",
    summary="{{title}}: a source with one split per partition, and an at-least-once sink.",
    source={{class_prefix}}Source,
    sink={{class_prefix}}Sink,
    # One options model per role ("source", "sink", "lookup"...): each gets a table in the docs.
    options={"source": {{class_prefix}}SourceOptions, "sink": {{class_prefix}}SinkOptions},
    distribution="{{distribution}}",
    pipeline_source=pipeline_source,
    pipeline_sink=pipeline_sink,
)
