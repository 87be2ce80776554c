"""The options of the file sink and source: frozen, keyword-only, validated at construction."""

from __future__ import annotations

from datetime import timedelta

from headwater.connectors.base import OptionsModel
from headwater.connectors.base.aws import AwsClientOptions
from headwater.connectors.files._filesystem import FileSystem
from headwater.connectors.files._local import LocalFileSystem
from headwater.connectors.files._s3 import MIN_PART_SIZE, S3FileSystem
from pydantic import Field, model_validator

__all__ = ["FileSinkOptions", "FileSourceOptions", "filesystem_for"]


def filesystem_for(path: str, client: AwsClientOptions | None, s3_part_size: int) -> FileSystem:
    """The file system of ``path``: S3 for ``s3://`` URLs, else the local one."""
    if path.startswith("s3://"):
        return S3FileSystem(client or AwsClientOptions(), s3_part_size)
    return LocalFileSystem()


class FileSinkOptions(OptionsModel):
    """Where and how the file sink writes part files."""

    path: str = Field(
        min_length=1,
        description="The base directory, or an S3 URL s3://bucket/prefix; buckets are below it.",
    )
    part_prefix: str = Field(
        default="part",
        min_length=1,
        description="Part files are named <prefix>-<run>-<subtask>-<counter><suffix>.",
    )
    part_suffix: str | None = Field(
        default=None,
        description="The part-file suffix; None uses the format's (.jsonl, .csv.gz, .parquet...).",
    )
    max_part_size: int = Field(
        default=128 * 1024 * 1024,
        gt=0,
        description="Row formats: roll a part file once it holds this many bytes.",
    )
    rollover_interval: timedelta = Field(
        default=timedelta(minutes=1),
        gt=timedelta(0),
        description="Row formats: roll a part file this long after it was opened.",
    )
    inactivity_interval: timedelta = Field(
        default=timedelta(minutes=1),
        gt=timedelta(0),
        description="Row formats: roll a part file that got no records for this long.",
    )
    roll_on_checkpoint: bool = Field(
        default=False,
        description="Roll every part file at every checkpoint (always so for Parquet and Avro).",
    )
    manifest: bool = Field(
        default=False,
        description="Record every committed file, with its record count, under <path>/_manifest/.",
    )
    s3_part_size: int = Field(
        default=MIN_PART_SIZE,
        ge=MIN_PART_SIZE,
        description="S3: the size of each multipart-upload part but the last (at least 5 MiB).",
    )
    client: AwsClientOptions | None = Field(
        default=None,
        description="S3: region, endpoint and credentials; None uses boto3's standard chain.",
    )

    @model_validator(mode="after")
    def _check(self) -> FileSinkOptions:
        if "/" in self.part_prefix or (self.part_suffix is not None and "/" in self.part_suffix):
            raise ValueError("part_prefix and part_suffix must not contain '/'")
        return self

    def filesystem(self) -> FileSystem:
        """The file system of :attr:`path`."""
        return filesystem_for(self.path, self.client, self.s3_part_size)


class FileSourceOptions(OptionsModel):
    """What the file source reads, and how it watches for new files."""

    paths: tuple[str, ...] = Field(
        min_length=1,
        description="Files, directories (read recursively) or glob patterns; s3:// URLs for S3.",
    )
    monitor_interval: timedelta | None = Field(
        default=None,
        description="Continuous mode: look for new files this often; None reads once and ends.",
    )
    split_size: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="Uncompressed line files larger than this are read as byte ranges of this size.",
    )
    max_records_per_fetch: int = Field(
        default=10_000, gt=0, description="Records read from a file per fetch."
    )
    mtime_lookback: timedelta = Field(
        default=timedelta(minutes=10),
        ge=timedelta(0),
        description=(
            "Continuous mode: files modified this long before the newest file seen are assumed "
            "read, so the set of seen files stays bounded. A file that appears with an older "
            "modification time is not read."
        ),
    )
    client: AwsClientOptions | None = Field(
        default=None,
        description="S3: region, endpoint and credentials; None uses boto3's standard chain.",
    )

    def filesystem(self) -> FileSystem:
        """The file system of the paths (all local, or all on S3)."""
        kinds = {p.startswith("s3://") for p in self.paths}
        if len(kinds) > 1:
            raise ValueError("paths mix s3:// URLs and local paths")
        return filesystem_for(self.paths[0], self.client, MIN_PART_SIZE)

    @model_validator(mode="after")
    def _check(self) -> FileSourceOptions:
        self.filesystem()
        if self.monitor_interval is not None and self.monitor_interval <= timedelta(0):
            raise ValueError("monitor_interval must be positive")
        return self
