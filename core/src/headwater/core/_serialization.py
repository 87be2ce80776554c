"""Versioned serializers for checkpointed state (splits, enumerator state, committables, operator state).

State is never pickled: every piece of checkpointed state goes through a serializer that writes an
explicit format version, so a job can be restored by a newer release of the connector that wrote it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from headwater.core._errors import SerializationError

__all__ = ["JsonSerializer", "VersionedSerializer"]

T = TypeVar("T")
"""The type of the object being serialized."""


class VersionedSerializer(Protocol[T]):
    """Turns one kind of object into bytes and back, with a format version.

    ``deserialize`` must accept every version this serializer (or an earlier release of it) ever wrote.
    """

    @property
    def version(self) -> int:
        """The format version that :meth:`serialize` writes."""
        ...

    def serialize(self, obj: T, /) -> bytes:
        """Encode ``obj`` in the current format version."""
        ...

    def deserialize(self, version: int, data: bytes, /) -> T:
        """Decode ``data`` written in format ``version``."""
        ...


class JsonSerializer(Generic[T]):
    """A :class:`VersionedSerializer` that maps objects to JSON-compatible values and back.

    Args:
        version: the format version written.
        to_json: turns an object into JSON-compatible values (dicts, lists, str, int, float, bool, None).
        from_json: turns ``(version, value)`` back into an object; it must accept every earlier version.
    """

    def __init__(
        self,
        *,
        version: int,
        to_json: Callable[[T], Any],
        from_json: Callable[[int, Any], T],
    ) -> None:
        self._version = version
        self._to_json = to_json
        self._from_json = from_json

    @property
    def version(self) -> int:
        """The format version that :meth:`serialize` writes."""
        return self._version

    def serialize(self, obj: T, /) -> bytes:
        """Encode ``obj`` as compact UTF-8 JSON."""
        try:
            return json.dumps(self._to_json(obj), separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"cannot serialize {type(obj).__name__}: {exc}") from exc

    def deserialize(self, version: int, data: bytes, /) -> T:
        """Decode ``data`` written in format ``version``."""
        if version > self._version:
            raise SerializationError(
                f"state was written in format version {version}, newer than this release "
                f"understands ({self._version}); upgrade the connector"
            )
        try:
            return self._from_json(version, json.loads(data))
        except (TypeError, ValueError, KeyError) as exc:
            raise SerializationError(f"cannot deserialize format version {version}: {exc}") from exc
