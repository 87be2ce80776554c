"""Jobs of the file connector's kill tests (run by ``headwater.connectors.testing.jobrunner``).

Records are ``expected_record(i)``: a test computes the same records directly and compares them
with what the job published, record by record.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from headwater.connectors.base.aws import AwsClientOptions
from headwater.connectors.files import (
    FieldBucketAssigner,
    FileSink,
    FileSinkOptions,
    FileSource,
    FileSourceOptions,
    LocalFileSystem,
    ParquetFormat,
    PendingFile,
    ResumeState,
)
from headwater.core import (
    CheckpointConfig,
    DataGenSource,
    ExponentialBackoffRestart,
    StreamEnvironment,
)
from headwater.core.testing import FileTwoPhaseSink


def expected_record(index: int) -> dict[str, Any]:
    """The record number ``index`` of every kill-test job."""
    # About 250 bytes: between two checkpoints more than a write buffer reaches each file, so a
    # killed run leaves records past the checkpoint on disk for the restore to cut off.
    return {
        "id": index,
        "group": index % 3,
        "name": f"record-{index}-" + "x" * 200,
        "value": index * 0.5,
    }


def _record(index: int, _rng: Any) -> dict[str, Any]:
    return expected_record(index)


class NoTruncateFileSystem(LocalFileSystem):
    """A broken local file system that publishes in-progress files without cutting them back.

    Records written after the restored checkpoint stay in the file: the kill test must see them
    as duplicates, which proves it can.
    """

    def recover_for_commit(self, state: ResumeState) -> PendingFile | None:
        """Publish the file as it is on disk."""
        path = Path(state.storage["path"])
        if not path.exists():
            return None
        return PendingFile(
            final_path=state.final_path,
            bucket=state.bucket,
            records=state.records,
            size=path.stat().st_size,
            storage={"path": str(path)},
        )


def moto_client(endpoint: str) -> AwsClientOptions | None:
    """Client options of the moto server at ``endpoint`` (``None`` for local paths)."""
    if not endpoint:
        return None
    return AwsClientOptions(
        endpoint_url=endpoint, region="us-east-1", access_key_id="test", secret_access_key="test"
    )


def _environment(checkpoint_dir: Path, parallelism: int) -> StreamEnvironment:
    return StreamEnvironment(
        parallelism=parallelism,
        checkpointing=CheckpointConfig(
            interval=timedelta(milliseconds=200), storage=checkpoint_dir, restore_from="latest"
        ),
        restart_strategy=ExponentialBackoffRestart(initial=timedelta(milliseconds=100), attempts=3),
    )


def file_sink_job(
    *,
    checkpoint_dir: Path,
    parallelism: int,
    count: str,
    rate: str,
    out: str,
    format: str = "json",
    endpoint: str = "",
    broken: str = "",
) -> StreamEnvironment:
    """``[0, count)`` records at ``rate``/s into a FileSink at ``out`` (a directory or s3:// URL).

    JSON lines files span checkpoints (they roll by size, 200 ms checkpoints), so restores cut
    in-progress files back; Parquet files roll at every checkpoint. ``broken=1`` uses
    :class:`NoTruncateFileSystem`.
    """
    env = _environment(checkpoint_dir, parallelism)
    options = FileSinkOptions(
        path=out,
        manifest=True,
        max_part_size=256 * 1024,
        rollover_interval=timedelta(minutes=10),
        inactivity_interval=timedelta(minutes=10),
        client=moto_client(endpoint),
    )
    sink: FileSink[dict[str, Any]] = FileSink(
        options,
        ParquetFormat() if format == "parquet" else None,
        bucket_assigner=FieldBucketAssigner("group"),
    )
    if broken:
        sink.filesystem = NoTruncateFileSystem()
    source = DataGenSource(_record, count=int(count), rows_per_second=float(rate))
    env.from_source(source).uid("records").sink_to(sink).uid("files")
    return env


def conformance_sink_job(
    *, checkpoint_dir: Path, parallelism: int, count: str, rate: str, out: str, endpoint: str = ""
) -> StreamEnvironment:
    """The sink suite's job: the integers ``[0, count)`` as JSON lines under ``out``."""
    env = _environment(checkpoint_dir, parallelism)
    env.from_source(
        DataGenSource(lambda i, _rng: i, count=int(count), rows_per_second=float(rate))
    ).sink_to(FileSink(sink_options(out, endpoint)))
    return env


def sink_options(out: str, endpoint: str = "") -> FileSinkOptions:
    """Options of a conformance sink: small files that span checkpoints, a manifest."""
    return FileSinkOptions(
        path=out, manifest=True, max_part_size=4096, client=moto_client(endpoint)
    )


class ForgetfulFileSource(FileSource[Any]):
    """A broken source that forgets, on restore, which files it has read: the source kill test
    must see the files read again, which proves it can."""

    def restore_enumerator(self, context: Any, state: Any) -> Any:
        """A fresh enumerator, as if nothing had been read."""
        return self.create_enumerator(context)


def file_source_job(
    *, checkpoint_dir: Path, parallelism: int, inp: str, out: str, broken: str = ""
) -> StreamEnvironment:
    """A continuous FileSource over ``inp`` (JSON lines) into core's exactly-once test sink."""
    env = _environment(checkpoint_dir, parallelism)
    options = FileSourceOptions(
        paths=(inp,), monitor_interval=timedelta(milliseconds=100), max_records_per_fetch=100
    )
    source = ForgetfulFileSource(options) if broken else FileSource(options)
    env.from_source(source).uid("files").sink_to(FileTwoPhaseSink(out)).uid("out")
    return env
