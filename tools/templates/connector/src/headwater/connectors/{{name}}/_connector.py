"""The registration of the {{title}} connector (entry point ``{{name}}``)."""

from __future__ import annotations

from headwater.connectors.{{name}}._options import {{class_prefix}}Options
from headwater.core import ConnectorSpec

__all__ = ["CONNECTOR"]

CONNECTOR = ConnectorSpec(
    identifier="{{name}}",
    summary="{{title}}.",
    # Set the source class (readers built on headwater.connectors.base's SourceReaderBase) and
    # the sink class (on its async sink base) as they are written.
    source=None,
    sink=None,
    # One options model per role ("source", "sink", "lookup"...): each gets a table in the docs.
    options={"connection": {{class_prefix}}Options},
    distribution="{{distribution}}",
)
