"""The ``jdbc`` connector in pipeline files (``headwater run pipeline.toml``).

The ``options`` tables are :class:`JdbcSourceOptions` and :class:`JdbcSinkOptions`; there are no
other settings. The sink's records are mappings of column names to values (a ``map`` step builds
them), or :class:`ChangelogRow` for changelogs.
"""

from __future__ import annotations

from headwater.connectors.jdbc._options import JdbcSinkOptions, JdbcSourceOptions
from headwater.connectors.jdbc._sink import JdbcSink
from headwater.connectors.jdbc._source import JdbcSource
from headwater.core import PipelineBinding

__all__ = ["pipeline_sink", "pipeline_source"]

pipeline_source = PipelineBinding(build=JdbcSource, options=JdbcSourceOptions)
"""A :class:`JdbcSource` from a pipeline's ``[source]`` table."""
pipeline_sink = PipelineBinding(build=JdbcSink, options=JdbcSinkOptions)
"""A :class:`JdbcSink` from a pipeline's ``[sink]`` table."""
