"""Versioned split and state serializers from a dataclass: one helper, one blob format.

``dataclass_serializer(cls, version, migrations)`` writes a dataclass (nested dataclasses, tuples,
frozensets, ``None``, str/int/float/bool) as compact UTF-8 JSON of its fields by name, and reads
every older version through ``migrations``: a function per old version that turns that version's
JSON value into the next version's. A connector bumps ``version`` when its split changes and adds
one migration; checkpoints written by every earlier release keep restoring.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from headwater.core import SerializationError
from pydantic import TypeAdapter, ValidationError

__all__ = ["DataclassSerializer", "dataclass_serializer"]

T = TypeVar("T")
"""The serialized dataclass."""

Migration = Callable[[Any], Any]
"""Turns the JSON value of one format version into that of the next version."""


class DataclassSerializer(Generic[T]):
    """A :class:`~headwater.core.VersionedSerializer` of a dataclass (see the module docstring).

    Built by :func:`dataclass_serializer`.
    """

    def __init__(self, cls: type[T], version: int, migrations: Mapping[int, Migration]) -> None:
        oldest = min(migrations, default=version)
        missing = [v for v in range(oldest, version) if v not in migrations]
        if missing:
            raise ValueError(f"{cls.__name__}: no migration from format version {missing[0]}")
        self.cls = cls
        self._version = version
        self._migrations = dict(migrations)
        self._adapter: TypeAdapter[T] = TypeAdapter(cls)

    @property
    def version(self) -> int:
        """The format version that :meth:`serialize` writes."""
        return self._version

    def to_json(self, obj: T) -> Any:
        """``obj`` as JSON-compatible values (for a serializer that nests this one)."""
        return self._adapter.dump_python(obj, mode="json")

    def upgrade(self, version: int, value: Any) -> Any:
        """The JSON value of format ``version`` migrated to the current version."""
        if version > self._version:
            raise SerializationError(
                f"{self.cls.__name__} was written in format version {version}, newer than this "
                f"release understands ({self._version}); upgrade the connector"
            )
        for old in range(version, self._version):
            migrate = self._migrations.get(old)
            if migrate is None:
                raise SerializationError(
                    f"{self.cls.__name__}: format version {old} can no longer be read"
                )
            value = migrate(value)
        return value

    def from_json(self, version: int, value: Any) -> T:
        """The object from the JSON value of format ``version``."""
        try:
            return self._adapter.validate_python(self.upgrade(version, value))
        except (ValidationError, TypeError, ValueError, KeyError, IndexError) as exc:
            raise SerializationError(
                f"cannot deserialize {self.cls.__name__} format version {version}: {exc}"
            ) from exc

    def serialize(self, obj: T, /) -> bytes:
        """Encode ``obj`` as compact UTF-8 JSON of its fields."""
        try:
            return json.dumps(self.to_json(obj), separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"cannot serialize {type(obj).__name__}: {exc}") from exc

    def deserialize(self, version: int, data: bytes, /) -> T:
        """Decode ``data`` written in format ``version`` (older versions are migrated)."""
        try:
            value = json.loads(data)
        except ValueError as exc:
            raise SerializationError(
                f"cannot deserialize {self.cls.__name__} format version {version}: {exc}"
            ) from exc
        return self.from_json(version, value)


def dataclass_serializer(
    cls: type[T], version: int = 1, migrations: Mapping[int, Migration] | None = None
) -> DataclassSerializer[T]:
    """A versioned serializer of dataclass ``cls`` writing format ``version``.

    Args:
        cls: the dataclass (fields: nested dataclasses, tuples, frozensets, ``None`` and scalars).
        version: the format version written.
        migrations: ``{old version: function}``, each turning that version's JSON value into the
            next version's; every version from the oldest given up to ``version - 1`` needs one.
    """
    return DataclassSerializer(cls, version, migrations or {})
