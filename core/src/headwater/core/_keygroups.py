"""Stable key hashing and key groups.

Keys are routed by a hash that is the same in every process and run (never Python's randomized
``hash()``) into ``max_parallelism`` key groups; each subtask owns a contiguous range of key groups,
so keyed state can be redistributed when a job is restored with another parallelism.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from headwater.core._errors import ConfigurationError

__all__ = ["key_group_for", "key_group_range", "stable_hash", "subtask_for_key_group"]

_pack_double = struct.Struct("<d").pack


def stable_hash(key: Any) -> int:
    """A process-independent 32-bit hash of a key (str, bytes, int, float, bool, None or tuples)."""
    if isinstance(key, str):
        return zlib.crc32(key.encode())
    if isinstance(key, bool) or key is None:
        return 0x9E3779B1 if key else 0x85EBCA77
    if isinstance(key, int):
        # Fold the integer to 64 bits, then mix (murmur3 finalizer) so sequential keys spread.
        h = (key ^ (key >> 64)) & 0xFFFFFFFFFFFFFFFF
        h = ((h ^ (h >> 33)) * 0xFF51AFD7ED558CCD) & 0xFFFFFFFFFFFFFFFF
        h = ((h ^ (h >> 33)) * 0xC4CEB9FE1A85EC53) & 0xFFFFFFFFFFFFFFFF
        return (h ^ (h >> 33)) & 0xFFFFFFFF
    if isinstance(key, bytes | bytearray | memoryview):
        return zlib.crc32(key)
    if isinstance(key, float):
        return zlib.crc32(_pack_double(key))
    if isinstance(key, tuple):
        h = 0x345678
        for item in key:
            h = ((h * 1000003) ^ stable_hash(item)) & 0xFFFFFFFF
        return h
    raise ConfigurationError(
        f"key_by: keys must be str, bytes, int, float, bool, None or tuples of those, "
        f"got {type(key).__name__}"
    )


def key_group_for(key: Any, max_parallelism: int) -> int:
    """The key group of ``key``."""
    return stable_hash(key) % max_parallelism


def subtask_for_key_group(key_group: int, max_parallelism: int, parallelism: int) -> int:
    """The subtask that owns ``key_group``."""
    return key_group * parallelism // max_parallelism


def key_group_range(subtask: int, max_parallelism: int, parallelism: int) -> range:
    """The key groups owned by ``subtask``."""
    start = (subtask * max_parallelism + parallelism - 1) // parallelism
    end = ((subtask + 1) * max_parallelism + parallelism - 1) // parallelism
    return range(start, end)
