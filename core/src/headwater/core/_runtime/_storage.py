"""Checkpoint storage: one directory per checkpoint, metadata written atomically.

Incremental checkpoints keep keyed state in files under ``shared/``: each checkpoint's metadata
lists the files it needs (``shared_files``), earlier checkpoints' files included. A file is
deleted when the last retained checkpoint that lists it is pruned.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from headwater.core._errors import CheckpointError

__all__ = [
    "FORMAT_VERSION",
    "METADATA_FILE",
    "SHARED_DIR",
    "CheckpointStorage",
    "list_checkpoints",
    "read_metadata",
    "write_atomically",
]

METADATA_FILE = "_metadata"
SHARED_DIR = "shared"
FORMAT_VERSION = 2
"""Version 2: operator state encoded by the state codec; version 1 (release 0.1): JSON state."""
READABLE_VERSIONS = (1, 2)
_CHECKPOINT_DIR = re.compile(r"^chk-(\d+)$")


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees either nothing or all of it (even after a crash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_metadata(path: Path) -> dict[str, Any]:
    """The metadata of the checkpoint or savepoint directory ``path``."""
    file = path / METADATA_FILE if path.is_dir() else path
    try:
        metadata: dict[str, Any] = json.loads(file.read_bytes())
    except FileNotFoundError as exc:
        raise CheckpointError(f"no checkpoint metadata at {file}") from exc
    except ValueError as exc:
        raise CheckpointError(f"corrupt checkpoint metadata at {file}: {exc}") from exc
    version = metadata.get("format_version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"checkpoint {file} has format version {version}; this release reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    return metadata


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """Completed checkpoints (those with metadata) in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for child in directory.iterdir():
        match = _CHECKPOINT_DIR.match(child.name)
        if match and (child / METADATA_FILE).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


class CheckpointStorage:
    """Checkpoints in ``directory/chk-<id>/_metadata``; savepoints wherever they are asked for."""

    def __init__(self, directory: Path | None, retained: int) -> None:
        self.directory = directory
        self.retained = retained

    def check_writable(self) -> None:
        """Create the directory if it is missing and prove it writable; name it if not."""
        if self.directory is None:
            return
        where = f"checkpoint storage {self.directory}"
        if self.directory.exists() and not self.directory.is_dir():
            raise CheckpointError(f"{where}: exists but is not a directory")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"{where}: cannot be created: {exc.strerror or exc}") from exc
        probe = self.directory / f".write-check-{os.getpid()}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise CheckpointError(f"{where}: is not writable: {exc.strerror or exc}") from exc

    def shared_dir(self) -> Path | None:
        """Where incremental checkpoints keep their state files."""
        return None if self.directory is None else self.directory / SHARED_DIR

    def checkpoint_dir(self, checkpoint_id: int) -> Path | None:
        """The directory of checkpoint ``checkpoint_id`` (``None`` without storage)."""
        return None if self.directory is None else self.directory / f"chk-{checkpoint_id}"

    def highest_id(self) -> int:
        """The highest checkpoint id used in the directory, complete or not (0 if none)."""
        if self.directory is None or not self.directory.is_dir():
            return 0
        ids = [
            int(m.group(1))
            for child in self.directory.iterdir()
            if (m := _CHECKPOINT_DIR.match(child.name))
        ]
        return max(ids, default=0)

    def latest(self) -> Path | None:
        """The newest completed checkpoint, if any."""
        if self.directory is None:
            return None
        found = list_checkpoints(self.directory)
        return found[-1][1] if found else None

    def write(self, checkpoint_id: int, data: bytes, savepoint: Path | None = None) -> Path | None:
        """Write a completed checkpoint's metadata (blocking; run it on the thread pool).

        Returns the checkpoint's directory (``None`` without storage).
        """
        if savepoint is not None:
            write_atomically(savepoint / METADATA_FILE, data)
            return savepoint
        if self.directory is None:
            return None
        target = self.directory / f"chk-{checkpoint_id}"
        write_atomically(target / METADATA_FILE, data)
        self._prune()
        return target

    def remove_orphans(self) -> None:
        """Delete the files of checkpoints that never completed (run before a job starts).

        They were written for checkpoints that never completed (a crash, an expired checkpoint):
        checkpoint directories without metadata, and shared state files no completed checkpoint
        lists.
        """
        if self.directory is None or not self.directory.is_dir():
            return
        for child in self.directory.iterdir():
            if _CHECKPOINT_DIR.match(child.name) and not (child / METADATA_FILE).is_file():
                shutil.rmtree(child, ignore_errors=True)
        shared = self.shared_dir()
        if shared is None or not shared.is_dir():
            return
        referenced = {
            name for _, path in list_checkpoints(shared.parent) for name in _shared_files(path)
        }
        for file in shared.iterdir():
            if file.name not in referenced:
                file.unlink(missing_ok=True)

    def _prune(self) -> None:
        assert self.directory is not None
        completed = list_checkpoints(self.directory)
        pruned, retained = completed[: -self.retained], completed[-self.retained :]
        unreferenced: set[str] = set()
        for _, path in pruned:
            unreferenced.update(_shared_files(path))
        for _, path in retained:
            unreferenced.difference_update(_shared_files(path))
        for _, path in pruned:
            shutil.rmtree(path, ignore_errors=True)
        for name in unreferenced:
            (self.directory / SHARED_DIR / name).unlink(missing_ok=True)


def _shared_files(path: Path) -> list[str]:
    """The shared state files checkpoint ``path`` needs."""
    try:
        files: list[str] = read_metadata(path).get("shared_files", [])
    except CheckpointError:
        return []
    return files
