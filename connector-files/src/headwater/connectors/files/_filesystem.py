"""Where part files live: the storage contract of the file sink and source, and its state types.

A :class:`FileSystem` opens part files as :class:`InProgressFile` objects (the recoverable
writer): bytes written to one are never visible under its final path until the committer calls
:meth:`FileSystem.commit`. At a checkpoint an in-progress file is either *persisted* (durable up
to here, and described by a :class:`ResumeState` that goes into the checkpoint) or *closed for
commit* (a :class:`PendingFile`, the committable). Every method blocks: callers run them on the
job's thread pool.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

__all__ = ["FileInfo", "FileSystem", "InProgressFile", "PendingFile", "ResumeState", "hidden"]


def hidden(name: str) -> bool:
    """Whether a file or directory name is invisible to readers (in-progress files, manifests)."""
    return name.startswith((".", "_"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeState:
    """A persisted in-progress file, as kept in the writer state of a checkpoint.

    Attributes:
        final_path: where the file becomes visible when committed.
        bucket: the bucket id it belongs to.
        records: records written into it up to the persisted point.
        created_ms: when it was opened (wall clock, ms): for the rolling policy.
        storage: what the file system needs to recover it (local: the hidden path and the length;
            S3: the multipart upload id, the uploaded parts and the buffered tail).
    """

    final_path: str
    bucket: str
    records: int
    created_ms: int
    storage: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingFile:
    """A closed part file waiting for its checkpoint to complete: the sink's committable.

    Attributes:
        final_path: where the file becomes visible.
        bucket: the bucket id (for the manifest).
        records: how many records it holds.
        size: its length in bytes.
        storage: what the file system needs to publish it (local: the hidden path; S3: the
            multipart upload id and its parts).
    """

    final_path: str
    bucket: str
    records: int
    size: int
    storage: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A visible file found by :meth:`FileSystem.list_files`."""

    path: str
    size: int
    modified_ms: int


class InProgressFile(ABC):
    """A part file being written; invisible under its final path until committed.

    Also a minimal binary file object (``write``, ``tell``, ``flush``, ``closed``), so columnar
    writers (pyarrow, fastavro) can write into it directly.
    """

    def __init__(self, final_path: str) -> None:
        self.final_path = final_path
        self.closed = False

    @abstractmethod
    def write(self, data: bytes) -> int:
        """Append ``data`` (it may be buffered until :meth:`persist` or :meth:`close_for_commit`)."""

    @abstractmethod
    def tell(self) -> int:
        """Bytes written so far."""

    def flush(self) -> None:  # noqa: B027 - a no-op on purpose
        """Nothing to do: durability is :meth:`persist`'s job."""

    def writable(self) -> bool:
        """Always true (file-object protocol)."""
        return True

    def seekable(self) -> bool:
        """Never: part files are written front to back (file-object protocol)."""
        return False

    def readable(self) -> bool:
        """Never (file-object protocol)."""
        return False

    @abstractmethod
    def persist(self) -> dict[str, Any]:
        """Make everything written durable; return the storage part of its :class:`ResumeState`."""

    @abstractmethod
    def close_for_commit(self) -> dict[str, Any]:
        """Close the file; return the storage part of its :class:`PendingFile`."""


class FileSystem(ABC):
    """A place to write part files to and read files from (the local disk, S3).

    A file system object is a cheap, picklable description; clients are built lazily.
    """

    @abstractmethod
    def open_in_progress(self, final_path: str) -> InProgressFile:
        """Start a new part file that will become ``final_path`` once committed."""

    @abstractmethod
    def recover_for_commit(self, state: ResumeState) -> PendingFile | None:
        """Cut an in-progress file back to its checkpointed content and close it for commit.

        Returns ``None`` when it was already committed (restored twice from one checkpoint).
        """

    @abstractmethod
    def commit(self, pending: PendingFile) -> bool:
        """Publish ``pending`` under its final path, atomically and idempotently.

        Returns ``False`` if it had already been published. Raises ``FileNotFoundError`` when it
        is neither pending nor published (the data is lost).
        """

    @abstractmethod
    def write_atomically(self, path: str, data: bytes) -> None:
        """Write a small file that appears whole or not at all (the manifest)."""

    @abstractmethod
    def list_files(self, root: str) -> Iterator[FileInfo]:
        """Every visible file under ``root``, recursively.

        Names starting with ``.`` or ``_`` (files and directories) are hidden: in-progress
        files, manifests.
        """

    @abstractmethod
    def open_read(self, path: str, start: int = 0) -> BinaryIO:
        """A binary stream of ``path`` from byte ``start``."""

    @abstractmethod
    def join(self, *parts: str) -> str:
        """Join path segments (empty ones are skipped)."""

    @abstractmethod
    def check_writable(self, root: str) -> None:
        """Fail now, naming ``root``, if part files cannot be written there."""
