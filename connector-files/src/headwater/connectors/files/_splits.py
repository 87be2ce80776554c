"""File splits: a whole file, a line-aligned byte range of a large line file, or a Parquet row group.

A split's ``offset`` is where the next record to emit is: a byte offset for uncompressed line files
(``unit="byte"``), a record index otherwise (``unit="record"``: compressed line files, Avro files,
the rows of a Parquet row group). A restored split resumes there, inside its file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq
from headwater.connectors.files._file_formats import (
    Compression,
    FileFormat,
    ParquetFormat,
    RowFormat,
)
from headwater.connectors.files._filesystem import FileInfo, FileSystem

__all__ = ["FileSplit", "plan_splits", "split_from_json", "split_to_json"]

_SPLIT_VERSION = 1
_BOUNDARY_PROBE = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class FileSplit:
    """A part of one file to read.

    Attributes:
        path: the file.
        start: the first byte (``unit="byte"``) or the Parquet row group (``unit="row_group"``).
        end: the byte after the range (byte splits), else ``None``.
        offset: the next record to emit: a byte offset or a record index within the split.
        unit: ``"byte"``, ``"record"`` (whole file) or ``"row_group"``.
        modified_ms: the file's modification time when discovered.
    """

    path: str
    start: int
    end: int | None
    offset: int
    unit: str
    modified_ms: int

    @property
    def split_id(self) -> str:
        """``path#start``."""
        return f"{self.path}#{self.start}"


def split_to_json(split: FileSplit) -> dict[str, Any]:
    """The split as JSON values (for checkpoints)."""
    return {
        "path": split.path,
        "start": split.start,
        "end": split.end,
        "offset": split.offset,
        "unit": split.unit,
        "modified_ms": split.modified_ms,
    }


def split_from_json(_version: int, data: dict[str, Any]) -> FileSplit:
    """A split from :func:`split_to_json`'s values."""
    return FileSplit(**data)


def _next_line_start(filesystem: FileSystem, path: str, position: int, size: int) -> int:
    """The offset of the first line starting at or after ``position`` (``size`` if none)."""
    with filesystem.open_read(path, position - 1) as stream:
        scanned = position - 1
        while scanned < size:
            block = stream.read(_BOUNDARY_PROBE)
            if not block:
                return size
            newline = block.find(b"\n")
            if newline >= 0:
                return scanned + newline + 1
            scanned += len(block)
    return size


def plan_splits(
    filesystem: FileSystem, info: FileInfo, format: FileFormat, split_size: int
) -> list[FileSplit]:
    """The splits of one file. Blocking (reads split boundaries and Parquet footers)."""
    if isinstance(format, ParquetFormat):
        with filesystem.open_read(info.path) as stream:
            source: Any = stream if stream.seekable() else io.BytesIO(stream.read())
            groups = pq.ParquetFile(source).metadata.num_row_groups
        return [
            FileSplit(
                path=info.path,
                start=g,
                end=None,
                offset=0,
                unit="row_group",
                modified_ms=info.modified_ms,
            )
            for g in range(groups)
        ]
    splittable = (
        isinstance(format, RowFormat) and Compression.of_path(info.path) is Compression.NONE
    )
    if not splittable:
        return [
            FileSplit(
                path=info.path,
                start=0,
                end=None,
                offset=0,
                unit="record",
                modified_ms=info.modified_ms,
            )
        ]
    starts = [0]
    position = split_size
    while position < info.size:
        boundary = _next_line_start(filesystem, info.path, position, info.size)
        if boundary >= info.size:
            break
        if boundary > starts[-1]:
            starts.append(boundary)
        position = max(boundary, starts[-1]) + split_size
    ends = [*starts[1:], info.size]
    return [
        FileSplit(
            path=info.path, start=s, end=e, offset=s, unit="byte", modified_ms=info.modified_ms
        )
        for s, e in zip(starts, ends, strict=True)
    ]
