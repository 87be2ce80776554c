"""How records become part files: row formats and bulk formats (Parquet, Avro container files).

Row formats are connector-base formats, one record a line, optionally compressed.

A :class:`FileFormat` opens a :class:`PartWriter` on an in-progress file. Row formats can be
persisted at any checkpoint and rolled by size; bulk formats hold a footer or header that is only
valid once the file is closed, so the sink rolls them at every checkpoint (:attr:`FileFormat.bulk`).
Compressed row files are a concatenation of gzip members or zstd frames, one per flushed chunk:
standard readers read them whole, and a file cut at a checkpoint is still valid.
"""

from __future__ import annotations

import enum
import gzip
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard
from headwater.connectors.base import Format
from headwater.connectors.files._filesystem import InProgressFile
from headwater.core import ConfigurationError, SerializationError

__all__ = [
    "AvroFileFormat",
    "Compression",
    "FileFormat",
    "ParquetFormat",
    "PartWriter",
    "RowFormat",
]

_ENCODE_SLICE = 256
"""Records encoded and joined at a time. Measured here (400k JSON records, a loaded 2-core VM):
slices of 256 write at 1.3x a plain loop's speed, slices of 1,000 or 8,192 at 0.1x (large
short-lived buffers cost page faults)."""
_CHUNK = 1 << 20
"""Compressed row files compress this many buffered bytes at a time (one gzip member / zstd frame)."""


class Compression(enum.Enum):
    """Compression of row-format part files."""

    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"

    @property
    def extension(self) -> str:
        """The file-name extension (``.gz``, ``.zst``, or nothing)."""
        return {"none": "", "gzip": ".gz", "zstd": ".zst"}[self.value]

    def compress(self, data: bytes) -> bytes:
        """One self-contained gzip member or zstd frame."""
        if self is Compression.GZIP:
            return gzip.compress(data, compresslevel=6, mtime=0)
        if self is Compression.ZSTD:
            return zstandard.ZstdCompressor().compress(data)
        return data

    def decompress(self, data: bytes) -> bytes:
        """Every member or frame of a whole file, decompressed and concatenated."""
        if self is Compression.GZIP:
            return gzip.decompress(data)
        if self is Compression.ZSTD:
            reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
            return reader.read()
        return data

    @classmethod
    def of_path(cls, path: str) -> Compression:
        """The compression a file name's extension says."""
        if path.endswith(".gz"):
            return cls.GZIP
        if path.endswith(".zst"):
            return cls.ZSTD
        return cls.NONE


class PartWriter(ABC):
    """Encodes the records of one part file into its in-progress file. Blocking."""

    def __init__(self, file: InProgressFile) -> None:
        self.file = file
        self.records = 0

    @abstractmethod
    def write(self, records: Sequence[Any]) -> None:
        """Encode ``records`` (possibly buffering them)."""

    @abstractmethod
    def flush(self) -> None:
        """Hand everything buffered to the file (before it is persisted)."""

    @abstractmethod
    def finish(self) -> None:
        """Write what ends the file (footers); the file is closed for commit next."""

    @property
    def size(self) -> int:
        """Bytes handed to the file so far (what the rolling policy sees)."""
        return self.file.tell()


class FileFormat(ABC):
    """What the sink writes part files in."""

    bulk: bool = False
    """Whether files must roll at every checkpoint (columnar formats)."""

    @property
    @abstractmethod
    def suffix(self) -> str:
        """The default part-file suffix (``.jsonl``, ``.parquet``...)."""

    @abstractmethod
    def open(self, file: InProgressFile) -> PartWriter:
        """A writer for a new part file."""


class _RowPartWriter(PartWriter):
    def __init__(self, file: InProgressFile, format: Format[Any], compression: Compression) -> None:
        super().__init__(file)
        self._format = format
        self._compression = compression
        self._pending: list[bytes] = []
        self._pending_size = 0

    def write(self, records: Sequence[Any]) -> None:
        serialize = self._format.serialize_batch
        compressed = self._compression is not Compression.NONE
        for start in range(0, len(records), _ENCODE_SLICE):
            data = b"\n".join(serialize(records[start : start + _ENCODE_SLICE])) + b"\n"
            if compressed:
                self._pending.append(data)
                self._pending_size += len(data)
            else:
                self.file.write(data)
        self.records += len(records)
        if compressed and self._pending_size >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending, self._pending_size = [], 0
            self.file.write(self._compression.compress(data))

    def finish(self) -> None:
        self.flush()


class RowFormat(FileFormat):
    """One encoded record per line, with a connector-base :class:`Format` (JSON, CSV, text...).

    Records must not encode to bytes containing a newline (JSON and CSV of single-line values do
    not). Args:
        format: the record encoder (``JsonFormat()``, ``CsvFormat(fieldnames=...)``, ...).
        compression: gzip or zstd, applied per flushed chunk (the files stay readable whole).
    """

    def __init__(self, format: Format[Any], compression: Compression = Compression.NONE) -> None:
        self.format = format
        self.compression = compression

    @property
    def suffix(self) -> str:
        """``.<format name>`` plus the compression's extension (``.json.gz``)."""
        name = {"json": ".jsonl", "text": ".txt", "raw": ".txt"}.get(
            self.format.name, f".{self.format.name}"
        )
        return name + self.compression.extension

    def open(self, file: InProgressFile) -> PartWriter:
        """A line writer."""
        return _RowPartWriter(file, self.format, self.compression)


class _ParquetPartWriter(PartWriter):
    def __init__(self, file: InProgressFile, format: ParquetFormat) -> None:
        super().__init__(file)
        self._format = format
        self._schema = format.schema
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[Any] = []

    def write(self, records: Sequence[Any]) -> None:
        self._pending.extend(records)
        self.records += len(records)
        if len(self._pending) >= self._format.row_group_size:
            self.flush()

    def flush(self) -> None:
        size = self._format.row_group_size
        while self._pending:
            rows, self._pending = self._pending[:size], self._pending[size:]
            try:
                table = pa.Table.from_pylist(rows, schema=self._schema)
            except (pa.ArrowException, TypeError, ValueError) as exc:
                raise SerializationError(
                    f"files: parquet: cannot convert the records to the schema "
                    f"{self._schema or 'inferred from the first rows'}: {exc}"
                ) from exc
            if self._writer is None:
                self._schema = table.schema
                self._writer = pq.ParquetWriter(
                    self.file, table.schema, compression=self._format.compression
                )
            self._writer.write_table(table, row_group_size=size)

    def finish(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.close()


class ParquetFormat(FileFormat):
    """Parquet files (pyarrow), one row group per ``row_group_size`` records.

    Args:
        schema: the Arrow schema of the records (mappings); ``None`` infers it from the first
            row group of each file.
        row_group_size: records per row group.
        compression: Parquet's column compression (``snappy``, ``zstd``, ``gzip``, ``none``).
        columns: reading: the columns to read (projection); ``None`` reads all.
    """

    bulk = True

    def __init__(
        self,
        schema: pa.Schema | None = None,
        *,
        row_group_size: int = 64 * 1024,
        compression: str = "snappy",
        columns: Sequence[str] | None = None,
    ) -> None:
        if row_group_size <= 0:
            raise ConfigurationError("ParquetFormat: row_group_size must be positive")
        self.schema = schema
        self.row_group_size = row_group_size
        self.compression = compression
        self.columns = tuple(columns) if columns is not None else None

    @property
    def suffix(self) -> str:
        """``.parquet``."""
        return ".parquet"

    def open(self, file: InProgressFile) -> PartWriter:
        """A row-group writer."""
        return _ParquetPartWriter(file, self)


class _AvroPartWriter(PartWriter):
    def __init__(self, file: InProgressFile, format: AvroFileFormat) -> None:
        super().__init__(file)
        assert format.parsed_schema is not None  # checked by AvroFileFormat.open
        # An InProgressFile is a write-only binary file object.
        stream: Any = file
        self._writer = fastavro.write.Writer(stream, format.parsed_schema, codec=format.codec)

    def write(self, records: Sequence[Any]) -> None:
        write = self._writer.write
        try:
            for record in records:
                write(record)
        except Exception as exc:
            raise SerializationError(f"files: avro: cannot write a record: {exc}") from exc
        self.records += len(records)

    def flush(self) -> None:
        self._writer.flush()

    def finish(self) -> None:
        self._writer.flush()


class AvroFileFormat(FileFormat):
    """Avro object container files (fastavro) with the given schema.

    Args:
        schema: the Avro schema (a dict as parsed from JSON); reading: the reader schema, ``None``
            reads with each file's own schema (writing needs one).
        codec: the block codec (``null``, ``deflate``, ``snappy``...).
    """

    bulk = True

    def __init__(self, schema: dict[str, Any] | None = None, *, codec: str = "null") -> None:
        try:
            self.parsed_schema = None if schema is None else fastavro.parse_schema(schema)
        except Exception as exc:
            raise ConfigurationError(f"AvroFileFormat: invalid schema: {exc}") from exc
        self.schema = schema
        self.codec = codec

    @property
    def suffix(self) -> str:
        """``.avro``."""
        return ".avro"

    def open(self, file: InProgressFile) -> PartWriter:
        """A container-file writer."""
        if self.parsed_schema is None:
            raise ConfigurationError("AvroFileFormat: writing Avro files needs a schema")
        return _AvroPartWriter(file, self)
