"""What the file connector tests read back: every published record, and the manifest's view."""

from __future__ import annotations

import io
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import fastavro
import pyarrow.parquet as pq
from headwater.connectors.files import Compression, FileSystem, read_manifest


def read_file(filesystem: FileSystem, path: str) -> list[Any]:
    """The records of one published file, decoded by its suffix, with standard readers."""
    with filesystem.open_read(path) as stream:
        data = stream.read()
    if path.endswith(".parquet"):
        return pq.read_table(io.BytesIO(data)).to_pylist()  # type: ignore[no-any-return]
    if path.endswith(".avro"):
        return list(fastavro.reader(io.BytesIO(data)))
    text = Compression.of_path(path).decompress(data).decode()
    return [json.loads(line) for line in text.splitlines() if line]


def published(filesystem: FileSystem, root: str) -> dict[str, list[Any]]:
    """Every visible file under ``root`` with its records."""
    return {info.path: read_file(filesystem, info.path) for info in filesystem.list_files(root)}


def check_exactly_once(
    filesystem: FileSystem, root: str, expected: Sequence[Any], key: str = "id"
) -> list[str]:
    """The problems of the output under ``root`` against ``expected``: duplicates, losses,
    changed records, in-progress files published, a manifest that disagrees. Empty when right."""
    files = published(filesystem, root)
    got = [record for records in files.values() for record in records]
    problems = []
    counts = Counter(record[key] for record in got)
    duplicates = sorted(k for k, n in counts.items() if n > 1)
    if duplicates:
        problems.append(f"{len(duplicates)} record(s) published twice, e.g. {duplicates[:5]}")
    wanted = {record[key]: record for record in expected}
    lost = sorted(set(wanted) - set(counts))
    if lost:
        problems.append(f"{len(lost)} record(s) lost, e.g. {lost[:5]}")
    changed = [r for r in got if r[key] in wanted and r != wanted[r[key]]]
    if changed:
        problems.append(f"{len(changed)} record(s) changed, e.g. {changed[:2]}")
    leaked = [p for p in files if "inprogress" in p]
    if leaked:
        problems.append(f"in-progress files visible: {leaked[:3]}")
    manifest = {entry.path: entry.records for entry in read_manifest(filesystem, root)}
    visible = {path[len(root) :].lstrip("/"): len(records) for path, records in files.items()}
    if manifest != visible:
        problems.append(
            f"the manifest disagrees with the files: only listed {sorted(set(manifest) - set(visible))[:3]}, "
            f"only on disk {sorted(set(visible) - set(manifest))[:3]}, "
            f"counts differ {[p for p in manifest if p in visible and manifest[p] != visible[p]][:3]}"
        )
    return problems


def jobrunner_command(target: str, checkpoint_dir: Path, **params: str) -> list[str]:
    """The command running ``target`` with connector-testing's job runner (parallelism 2)."""
    command = [
        sys.executable,
        "-m",
        "headwater.connectors.testing.jobrunner",
        target,
        "--checkpoint-dir",
        str(checkpoint_dir),
        "--parallelism",
        "2",
    ]
    for key, value in params.items():
        command += ["--param", f"{key}={value}"]
    return command


def checkpointed_since(checkpoint_dir: Path) -> Callable[[float], bool]:
    """For ``kill_repeatedly(started=...)``: a run has started once it completed a checkpoint."""

    def started(since: float) -> bool:
        try:
            return any(p.stat().st_mtime > since for p in checkpoint_dir.glob("chk-*"))
        except FileNotFoundError:  # a checkpoint removed while listed: look again
            return False

    return started
