"""The ``{{name}}`` connector in pipeline files (``headwater run pipeline.toml``).

Source settings: ``format`` (a connector-base format name or table; without it payloads are
emitted as ``bytes``) and ``bounded`` (stop at the end of the log as the job starts). Sink
settings: ``format`` (default ``json``). The ``options`` tables are
:class:`{{class_prefix}}SourceOptions` and :class:`{{class_prefix}}SinkOptions`.
"""

from __future__ import annotations

from headwater.connectors.base import format_setting
from headwater.connectors.{{name}}._options import (
    {{class_prefix}}SinkOptions,
    {{class_prefix}}SourceOptions,
)
from headwater.connectors.{{name}}._sink import {{class_prefix}}Sink
from headwater.connectors.{{name}}._source import {{class_prefix}}Source
from headwater.core import PipelineBinding, value_setting

__all__ = ["pipeline_sink", "pipeline_source"]

pipeline_source = PipelineBinding(
    build={{class_prefix}}Source,
    options={{class_prefix}}SourceOptions,
    settings={
        "format": format_setting("format"),
        "bounded": value_setting("bounded", default=False, kind=bool),
    },
)
"""A :class:`{{class_prefix}}Source` from a pipeline's ``[source]`` table."""
pipeline_sink = PipelineBinding(
    build={{class_prefix}}Sink,
    options={{class_prefix}}SinkOptions,
    settings={"format": format_setting("format", default="json")},
)
"""A :class:`{{class_prefix}}Sink` from a pipeline's ``[sink]`` table."""
