"""The local file system: hidden in-progress files, fsync, and an atomic rename on commit."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from headwater.connectors.files._filesystem import (
    FileInfo,
    FileSystem,
    InProgressFile,
    PendingFile,
    ResumeState,
    hidden,
)
from headwater.core import ConfigurationError

__all__ = ["LocalFileSystem"]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _LocalInProgressFile(InProgressFile):
    """A hidden ``.<final name>.inprogress.<token>`` beside the final path."""

    def __init__(self, final_path: str) -> None:
        super().__init__(final_path)
        final = Path(final_path)
        final.parent.mkdir(parents=True, exist_ok=True)
        self.path = final.parent / f".{final.name}.inprogress.{secrets.token_hex(4)}"
        self._file = open(self.path, "wb")  # noqa: SIM115 - owned until close_for_commit

    def write(self, data: bytes) -> int:
        """Append ``data`` to the hidden file."""
        return self._file.write(data)

    def tell(self) -> int:
        """Bytes written so far."""
        return self._file.tell()

    def persist(self) -> dict[str, Any]:
        """fsync; the state is the hidden path and its length."""
        self._file.flush()
        os.fsync(self._file.fileno())
        return {"path": str(self.path), "length": self._file.tell()}

    def close_for_commit(self) -> dict[str, Any]:
        """Fsync and close."""
        self.persist()
        self._file.close()
        self.closed = True
        return {"path": str(self.path)}


class LocalFileSystem(FileSystem):
    """Files on a local (or mounted) file system; paths are ordinary paths."""

    def open_in_progress(self, final_path: str) -> InProgressFile:
        """A new hidden in-progress file next to ``final_path``."""
        return _LocalInProgressFile(final_path)

    def recover_for_commit(self, state: ResumeState) -> PendingFile | None:
        """Truncate the hidden file to its checkpointed length; ``None`` if already published."""
        path = Path(state.storage["path"])
        length = int(state.storage["length"])
        if not path.exists():
            if Path(state.final_path).exists():
                return None
            raise FileNotFoundError(
                f"files: the in-progress file {path} of {state.final_path} is gone: its "
                f"{state.records} checkpointed record(s) are lost"
            )
        with open(path, "r+b") as f:
            f.truncate(length)
            f.flush()
            os.fsync(f.fileno())
        return PendingFile(
            final_path=state.final_path,
            bucket=state.bucket,
            records=state.records,
            size=length,
            storage={"path": str(path)},
        )

    def commit(self, pending: PendingFile) -> bool:
        """Rename the hidden file into place and fsync the directory."""
        staged = Path(pending.storage["path"])
        final = Path(pending.final_path)
        if staged.exists():
            os.replace(staged, final)
            _fsync_directory(final.parent)
            return True
        if final.exists():
            return False
        raise FileNotFoundError(f"files: neither {staged} nor {final} exists")

    def write_atomically(self, path: str, data: bytes) -> None:
        """A hidden temporary file, fsync, rename, fsync of the directory."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)
        _fsync_directory(target.parent)

    def list_files(self, root: str) -> Iterator[FileInfo]:
        """Visible regular files under ``root`` (or ``root`` itself if it is a file), sorted."""
        base = Path(root)
        if base.is_file():
            stat = base.stat()
            yield FileInfo(str(base), stat.st_size, stat.st_mtime_ns // 1_000_000)
            return
        for directory, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not hidden(d))
            for name in sorted(filenames):
                if hidden(name):
                    continue
                path = Path(directory) / name
                stat = path.stat()
                yield FileInfo(str(path), stat.st_size, stat.st_mtime_ns // 1_000_000)

    def open_read(self, path: str, start: int = 0) -> BinaryIO:
        """The file opened for reading at ``start``."""
        f = open(path, "rb")  # noqa: SIM115 - the caller closes it
        if start:
            f.seek(start)
        return f

    def join(self, *parts: str) -> str:
        """``os.path.join`` of the non-empty parts."""
        return os.path.join(*[p for p in parts if p])

    def check_writable(self, root: str) -> None:
        """Create ``root`` if needed and check that files can be created in it."""
        directory = Path(root)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"files: cannot create the directory {root}: {exc}") from exc
        if not os.access(directory, os.W_OK | os.X_OK):
            raise ConfigurationError(f"files: the directory {root} is not writable")
