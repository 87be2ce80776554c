"""The manifest: committed part files with their record counts, written by the committer.

Each commit writes one small JSON document under ``<path>/_manifest/`` (atomically: a renamed
temporary file locally, one PutObject on S3) after the files it lists are published. A document
is named after the files it lists, so a commit repeated after a restore rewrites the same
document; a commit retried with other companions may list a file twice, and readers keep one
entry per path. A reader that trusts the manifest never sees in-progress or abandoned files and
needs no listing of the data directories.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from headwater.connectors.files._filesystem import FileSystem, PendingFile

__all__ = ["MANIFEST_DIRECTORY", "ManifestEntry", "read_manifest", "write_manifest"]

MANIFEST_DIRECTORY = "_manifest"


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One committed part file."""

    path: str
    """Relative to the sink's path, with ``/`` separators."""
    bucket: str
    records: int
    size: int


def _relative(root: str, path: str) -> str:
    return path[len(root) :].replace("\\", "/").lstrip("/")


def write_manifest(filesystem: FileSystem, root: str, files: Sequence[PendingFile]) -> None:
    """Record ``files`` (published under ``root``) in one manifest document. Blocking."""
    entries = sorted(
        (
            {
                "path": _relative(root, f.final_path),
                "bucket": f.bucket,
                "records": f.records,
                "size": f.size,
            }
            for f in files
        ),
        key=lambda e: str(e["path"]),
    )
    if not entries:
        return
    name = hashlib.sha256("\n".join(str(e["path"]) for e in entries).encode()).hexdigest()[:32]
    document = json.dumps({"version": 1, "files": entries}, separators=(",", ":")).encode()
    filesystem.write_atomically(filesystem.join(root, MANIFEST_DIRECTORY, f"{name}.json"), document)


def read_manifest(filesystem: FileSystem, root: str) -> list[ManifestEntry]:
    """Every committed file the manifest of ``root`` lists, once each, sorted by path. Blocking."""
    entries: dict[str, ManifestEntry] = {}
    directory = filesystem.join(root, MANIFEST_DIRECTORY)
    try:
        documents = list(filesystem.list_files(directory))
    except FileNotFoundError:
        return []
    for info in documents:
        with filesystem.open_read(info.path) as stream:
            document = json.loads(stream.read())
        for item in document["files"]:
            entries[item["path"]] = ManifestEntry(
                item["path"], item["bucket"], int(item["records"]), int(item["size"])
            )
    return [entries[path] for path in sorted(entries)]
