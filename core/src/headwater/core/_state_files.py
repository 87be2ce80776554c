"""Keyed-state files: a checkpoint's keyed state written and read in chunks, never all at once.

A file is a header followed by frames. A frame holds entries of one state in one key group:
``key group (u16), name length (u16), payload length (u32), name, payload``, the payload being the
state codec's encoding of ``[[key, value], ...]`` (both bytes; a ``None`` value is a removal in an
incremental file). A reader skips the frames of key groups it does not own without decoding them,
so a restore at another parallelism reads only its share.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from headwater.core._errors import CheckpointError
from headwater.core._state_codec import decode_state, encode_state

__all__ = [
    "Chunk",
    "read_chunks",
    "write_chunks",
    "write_chunks_to_bytes",
    "write_chunks_to_file",
]

MAGIC = b"HWKS\x01\n"
_FRAME = struct.Struct(">HHI")
FRAME_BYTES = 1 << 20
"""About how many payload bytes a frame holds before the next one starts."""

Chunk = tuple[int, str, list[list[Any]]]
"""``(key_group, state name, [[key, value], ...])``, keys and values in the state codec's bytes."""


def write_chunks(file: BinaryIO, chunks: Iterable[Chunk]) -> int:
    """Write ``chunks`` to ``file``; the number of entries written.

    Consecutive chunks of one key group and state are merged into frames of up to about
    :data:`FRAME_BYTES`.
    """
    file.write(MAGIC)
    count = 0
    frame: list[list[Any]] = []
    size = 0
    current: tuple[int, str] | None = None

    def flush() -> None:
        if frame and current is not None:
            name = current[1].encode()
            payload = encode_state(frame)
            file.write(_FRAME.pack(current[0], len(name), len(payload)))
            file.write(name)
            file.write(payload)

    for group, name, entries in chunks:
        if (group, name) != current or size >= FRAME_BYTES:
            flush()
            frame, size, current = [], 0, (group, name)
        for entry in entries:
            frame.append(entry)
            size += len(entry[0]) + (len(entry[1]) if entry[1] is not None else 0) + 4
        count += len(entries)
    flush()
    return count


def write_chunks_to_file(path: Path, chunks: Iterable[Chunk]) -> int:
    """:func:`write_chunks` to ``path`` atomically (a reader sees all of it or nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb", buffering=FRAME_BYTES) as f:
        count = write_chunks(f, chunks)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return count


def write_chunks_to_bytes(chunks: Iterable[Chunk]) -> bytes:
    """:func:`write_chunks` into bytes (checkpoints kept in memory, without a directory)."""
    buffer = io.BytesIO()
    write_chunks(buffer, chunks)
    return buffer.getvalue()


def read_chunks(source: Path | bytes, groups: range | None = None) -> Iterator[Chunk]:
    """The chunks of a keyed-state file (or its bytes), only those of ``groups`` if given."""
    file: BinaryIO
    try:
        file = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise CheckpointError(f"cannot read keyed state file {_name(source)}: {exc}") from exc
    with file:
        if file.read(len(MAGIC)) != MAGIC:
            raise CheckpointError(f"{_name(source)} is not a keyed-state file")
        while True:
            header = file.read(_FRAME.size)
            if not header:
                return
            if len(header) < _FRAME.size:
                raise CheckpointError(f"{_name(source)} is truncated")
            group, name_len, payload_len = _FRAME.unpack(header)
            if groups is not None and group not in groups:
                file.seek(name_len + payload_len, os.SEEK_CUR)
                continue
            name = file.read(name_len).decode()
            payload = file.read(payload_len)
            if len(payload) < payload_len:
                raise CheckpointError(f"{_name(source)} is truncated")
            yield group, name, decode_state(payload)


def _name(source: Path | bytes) -> str:
    return "keyed state in the checkpoint metadata" if isinstance(source, bytes) else str(source)
