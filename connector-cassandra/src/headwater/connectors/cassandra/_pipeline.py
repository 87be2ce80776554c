"""The ``cassandra`` connector in pipeline files (``headwater run pipeline.toml``).

The ``options`` tables are :class:`CassandraSourceOptions` and :class:`CassandraSinkOptions`
(``connection`` a sub-table); there are no other settings. The source emits rows as dicts; the
sink's records are mappings whose keys name the statement's bind markers (a ``map`` step builds
them).
"""

from __future__ import annotations

from headwater.connectors.cassandra._options import CassandraSinkOptions, CassandraSourceOptions
from headwater.connectors.cassandra._sink import CassandraSink
from headwater.connectors.cassandra._source import CassandraSource
from headwater.core import PipelineBinding

__all__ = ["pipeline_sink", "pipeline_source"]

pipeline_source = PipelineBinding(build=CassandraSource, options=CassandraSourceOptions)
"""A :class:`CassandraSource` from a pipeline's ``[source]`` table."""
pipeline_sink = PipelineBinding(build=CassandraSink, options=CassandraSinkOptions)
"""A :class:`CassandraSink` from a pipeline's ``[sink]`` table."""
