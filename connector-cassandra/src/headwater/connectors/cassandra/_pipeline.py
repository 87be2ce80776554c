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
from headwater.core import PipelineEndpoint

__all__ = ["pipeline_sink", "pipeline_source"]


def pipeline_source(endpoint: PipelineEndpoint) -> CassandraSource:
    """A :class:`CassandraSource` from a pipeline's ``[source]`` table."""
    endpoint.check_settings(set())
    return CassandraSource(CassandraSourceOptions(**endpoint.options))


def pipeline_sink(endpoint: PipelineEndpoint) -> CassandraSink:
    """A :class:`CassandraSink` from a pipeline's ``[sink]`` table."""
    endpoint.check_settings(set())
    return CassandraSink(CassandraSinkOptions(**endpoint.options))
