"""The ``jdbc`` connector in pipeline files (``headwater run pipeline.toml``).

The ``options`` tables are :class:`JdbcSourceOptions` and :class:`JdbcSinkOptions`; there are no
other settings. The sink's records are mappings of column names to values (a ``map`` step builds
them), or :class:`ChangelogRow` for changelogs.
"""

from __future__ import annotations

from headwater.connectors.jdbc._options import JdbcSinkOptions, JdbcSourceOptions
from headwater.connectors.jdbc._sink import JdbcSink
from headwater.connectors.jdbc._source import JdbcSource
from headwater.core import PipelineEndpoint

__all__ = ["pipeline_sink", "pipeline_source"]


def pipeline_source(endpoint: PipelineEndpoint) -> JdbcSource:
    """A :class:`JdbcSource` from a pipeline's ``[source]`` table."""
    endpoint.check_settings(set())
    return JdbcSource(JdbcSourceOptions(**endpoint.options))


def pipeline_sink(endpoint: PipelineEndpoint) -> JdbcSink:
    """A :class:`JdbcSink` from a pipeline's ``[sink]`` table."""
    endpoint.check_settings(set())
    return JdbcSink(JdbcSinkOptions(**endpoint.options))
