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
from headwater.core import ConfigurationError, PipelineBinding, PipelineEndpoint, PipelineSetting

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


def _bucket_assigner(endpoint: PipelineEndpoint, _key: str) -> BucketAssigner[Any] | None:
    fields = endpoint.settings.get("bucket_fields")
    function = endpoint.function("bucket_function")
    if fields is not None and function is not None:
        raise ConfigurationError(
            f"{endpoint.where()}: give bucket_fields or bucket_function, not both"
        )
    if fields is not None:
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise ConfigurationError(f"{endpoint.where('bucket_fields')}: expected a list of names")
        return FieldBucketAssigner(*fields)
    return None if function is None else FunctionBucketAssigner(function)


def _consumed(_endpoint: PipelineEndpoint, _key: str) -> None:
    """A key read by another setting (compression by format, bucket_function by bucket_fields)."""


_FORMAT = PipelineSetting(keyword="format", read=lambda endpoint, _key: _format(endpoint))

files_source = PipelineBinding(
    build=FileSource, options=FileSourceOptions, settings={"format": _FORMAT}
)
"""A :class:`FileSource` from a pipeline's ``[source]`` table."""
files_sink = PipelineBinding(
    build=FileSink,
    options=FileSinkOptions,
    settings={
        "format": _FORMAT,
        "compression": PipelineSetting(keyword=None, read=_consumed),
        "bucket_fields": PipelineSetting(keyword="bucket_assigner", read=_bucket_assigner),
        "bucket_function": PipelineSetting(keyword=None, read=_consumed),
    },
)
"""A :class:`FileSink` from a pipeline's ``[sink]`` table."""
