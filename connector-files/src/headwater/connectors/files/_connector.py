"""The registration of the file connector (entry point ``files``)."""

from __future__ import annotations

from headwater.connectors.files._options import FileSinkOptions, FileSourceOptions
from headwater.connectors.files._pipeline import files_sink, files_source
from headwater.connectors.files._sink import FileSink
from headwater.connectors.files._source import FileSource
from headwater.core import ConnectorSpec

__all__ = ["CONNECTOR"]

CONNECTOR = ConnectorSpec(
    identifier="files",
    summary="Files on a local file system or S3: exactly-once part-file sink, continuous source.",
    source=FileSource,
    sink=FileSink,
    options={"sink": FileSinkOptions, "source": FileSourceOptions},
    distribution="headwater-connector-files",
    pipeline_source=files_source,
    pipeline_sink=files_sink,
)
