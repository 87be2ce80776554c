"""The {{title}} connector for headwater.

Registered as ``{{name}}`` in the ``headwater.connectors`` entry-point group (see ``CONNECTOR``).
"""

from headwater.connectors.{{name}}._connector import CONNECTOR
from headwater.connectors.{{name}}._options import (
    {{class_prefix}}SinkOptions,
    {{class_prefix}}SourceOptions,
)
from headwater.connectors.{{name}}._sink import {{class_prefix}}Sink
from headwater.connectors.{{name}}._source import {{class_prefix}}Source
from headwater.connectors.{{name}}.version import __version__

__all__ = [
    "CONNECTOR",
    "{{class_prefix}}Sink",
    "{{class_prefix}}SinkOptions",
    "{{class_prefix}}Source",
    "{{class_prefix}}SourceOptions",
    "__version__",
]
