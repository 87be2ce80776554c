"""The file connector for headwater: an exactly-once :class:`FileSink` and a :class:`FileSource`.

Local directories and S3 (``s3://bucket/prefix``). Sinks write part files per bucket
(:class:`DateTimeBucketAssigner`, :class:`FieldBucketAssigner`, ...), rolled by a
:class:`RollingPolicy`, published atomically when the checkpoint that closed them completes, and
optionally listed in a manifest (:func:`read_manifest`). Formats: connector-base's row formats
(JSON lines, CSV, text), optionally gzip/zstd compressed (:class:`RowFormat`), and the bulk formats
:class:`ParquetFormat` and :class:`AvroFileFormat`.

Example::

    from headwater.connectors.files import FileSink, FileSinkOptions, DateTimeBucketAssigner

    sink = FileSink(
        FileSinkOptions(path="/data/events"),
        bucket_assigner=DateTimeBucketAssigner(timestamp=lambda event: event["ts"]),
    )
    env.from_source(events).sink_to(sink)

Registered as ``files`` in the ``headwater.connectors`` entry-point group.
"""

from headwater.connectors.files._buckets import (
    BasePathBucketAssigner,
    BucketAssigner,
    DateTimeBucketAssigner,
    FieldBucketAssigner,
    FunctionBucketAssigner,
)
from headwater.connectors.files._connector import CONNECTOR
from headwater.connectors.files._file_formats import (
    AvroFileFormat,
    Compression,
    FileFormat,
    ParquetFormat,
    PartWriter,
    RowFormat,
)
from headwater.connectors.files._filesystem import (
    FileInfo,
    FileSystem,
    InProgressFile,
    PendingFile,
    ResumeState,
)
from headwater.connectors.files._local import LocalFileSystem
from headwater.connectors.files._manifest import ManifestEntry, read_manifest
from headwater.connectors.files._options import FileSinkOptions, FileSourceOptions
from headwater.connectors.files._rolling import (
    DefaultRollingPolicy,
    OnCheckpointRollingPolicy,
    PartFileInfo,
    RollingPolicy,
)
from headwater.connectors.files._s3 import S3FileSystem
from headwater.connectors.files._sink import FileSink
from headwater.connectors.files._source import FileSource
from headwater.connectors.files._splits import FileSplit
from headwater.connectors.files.version import __version__

__all__ = [
    "CONNECTOR",
    "AvroFileFormat",
    "BasePathBucketAssigner",
    "BucketAssigner",
    "Compression",
    "DateTimeBucketAssigner",
    "DefaultRollingPolicy",
    "FieldBucketAssigner",
    "FileFormat",
    "FileInfo",
    "FileSink",
    "FileSinkOptions",
    "FileSource",
    "FileSourceOptions",
    "FileSplit",
    "FileSystem",
    "FunctionBucketAssigner",
    "InProgressFile",
    "LocalFileSystem",
    "ManifestEntry",
    "OnCheckpointRollingPolicy",
    "ParquetFormat",
    "PartFileInfo",
    "PartWriter",
    "PendingFile",
    "ResumeState",
    "RollingPolicy",
    "RowFormat",
    "S3FileSystem",
    "__version__",
    "read_manifest",
]

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and _obj.__module__.startswith("headwater.connectors.files._"):
        _obj.__module__ = "headwater.connectors.files"
del _name, _obj
