"""The file connector in pipeline files (``headwater run pipeline.toml``).

- source: ``format``: a connector-base row format (``"json"``, the default; ``"csv"``, ``"text"``,
  or a table such as ``{name = "csv", fieldnames = ["a", "b"]}``), ``"parquet"`` (a table may give
  ``columns``) or ``"avro"``; ``options``: :class:`FileSourceOptions`.
- sink: ``format`` as above (``"parquet"``: ``row_group_size``, ``compression``; ``"avro"``: a
  ``schema`` table), ``compression`` (``"gzip"`` or ``"zstd"``, row formats), ``bucket_fields``
  (Hive-style buckets by these fields) or ``bucket_function`` (``module:function``);
  ``options``: :class:`FileSinkOptions`.
"""

from __future__ import annotations

from typing import Any

from headwater.connectors.base import pipeline_format
from headwater.connectors.files._buckets import (
    BucketAssigner,
    FieldBucketAssigner,
    FunctionBucketAssigner,
)
from headwater.connectors.files._file_formats import (
    AvroFileFormat,
    Compression,
    FileFormat,
    ParquetFormat,
    RowFormat,
)
from headwater.connectors.files._options import FileSinkOptions, FileSourceOptions
from headwater.connectors.files._sink import FileSink
from headwater.connectors.files._source import FileSource
from headwater.core import ConfigurationError, PipelineEndpoint

__all__ = ["files_sink", "files_source"]

_BULK: dict[str, type[FileFormat]] = {"parquet": ParquetFormat, "avro": AvroFileFormat}


def _format(endpoint: PipelineEndpoint) -> FileFormat:
    setting = endpoint.settings.get("format", "json")
    name = (
        setting
        if isinstance(setting, str)
        else setting.get("name")
        if isinstance(setting, dict)
        else None
    )
    bulk = _BULK.get(name) if isinstance(name, str) else None
    if bulk is not None:
        kwargs = (
            {k: v for k, v in setting.items() if k != "name"} if isinstance(setting, dict) else {}
        )
        try:
            return bulk(**kwargs)
        except TypeError as exc:
            raise ConfigurationError(f"{endpoint.where('format')}: {name} format: {exc}") from exc
    row = pipeline_format(endpoint, default="json")
    assert row is not None
    compression = endpoint.settings.get("compression", "none")
    try:
        return RowFormat(row, Compression(compression))
    except ValueError:
        raise ConfigurationError(
            f"{endpoint.where('compression')}: expected none, gzip or zstd, got {compression!r}"
        ) from None


def files_source(endpoint: PipelineEndpoint) -> FileSource[Any]:
    """A :class:`FileSource` from a pipeline's ``[source]`` table."""
    endpoint.check_settings({"format"})
    return FileSource(FileSourceOptions(**endpoint.options), _format(endpoint))


def files_sink(endpoint: PipelineEndpoint) -> FileSink[Any]:
    """A :class:`FileSink` from a pipeline's ``[sink]`` table."""
    endpoint.check_settings({"format", "compression", "bucket_fields", "bucket_function"})
    assigner: BucketAssigner[Any] | None = None
    fields = endpoint.settings.get("bucket_fields")
    function = endpoint.function("bucket_function")
    if fields is not None and function is not None:
        raise ConfigurationError(
            f"{endpoint.where()}: give bucket_fields or bucket_function, not both"
        )
    if fields is not None:
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise ConfigurationError(f"{endpoint.where('bucket_fields')}: expected a list of names")
        assigner = FieldBucketAssigner(*fields)
    elif function is not None:
        assigner = FunctionBucketAssigner(function)
    return FileSink(
        FileSinkOptions(**endpoint.options), _format(endpoint), bucket_assigner=assigner
    )
