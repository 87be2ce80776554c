"""The splits of the MongoDB source and the checkpointed state of its enumerator (BSON-encoded).

BSON keeps every ``_id`` type (ObjectId, strings, numbers, ``MinKey``/``MaxKey`` bounds) and
cluster times (``Timestamp``) exactly, so a split resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import bson
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.timestamp import Timestamp
from headwater.connectors.mongodb._records import CODEC_OPTIONS
from headwater.core import SerializationError, VersionedSerializer

__all__ = [
    "ENUMERATOR_STATE_SERIALIZER",
    "SPLIT_SERIALIZER",
    "EnumeratorState",
    "MongoSplit",
    "after",
]

T = TypeVar("T")


def after(ts: Timestamp) -> Timestamp:
    """The first cluster time after ``ts`` (a change stream from it excludes ``ts`` itself)."""
    return Timestamp(ts.time, ts.inc + 1)


@dataclass(frozen=True, slots=True)
class MongoSplit:
    """A snapshot range ``lower <= _id < upper`` of one collection, or the change stream.

    Snapshot splits: ``last_id`` is the ``_id`` of the last document emitted (``has_last`` says
    whether there is one), so a restored split reads ``_id > last_id`` and neither repeats nor
    skips; ``snapshot_time`` (``startup_mode='initial'``) is the cluster time every snapshot
    split reads at. The stream split: ``resume_token`` of the last event emitted, else
    ``start_at`` (the first cluster time to read).
    """

    split_id: str
    stream: bool = False
    lower: Any = field(default_factory=MinKey)
    upper: Any = field(default_factory=MaxKey)
    last_id: Any = None
    has_last: bool = False
    snapshot_time: Timestamp | None = None
    resume_token: dict[str, Any] | None = None
    start_at: Timestamp | None = None

    def to_document(self) -> dict[str, Any]:
        """The split as a BSON-encodable document."""
        return {
            "id": self.split_id,
            "stream": self.stream,
            "lower": self.lower,
            "upper": self.upper,
            "last": self.last_id,
            "has_last": self.has_last,
            "snapshot_time": self.snapshot_time,
            "token": self.resume_token,
            "start_at": self.start_at,
        }

    @classmethod
    def from_document(cls, d: dict[str, Any]) -> MongoSplit:
        """The split of :meth:`to_document`."""
        return cls(
            split_id=d["id"],
            stream=d["stream"],
            lower=d["lower"],
            upper=d["upper"],
            last_id=d["last"],
            has_last=d["has_last"],
            snapshot_time=d["snapshot_time"],
            resume_token=d["token"],
            start_at=d["start_at"],
        )


@dataclass(frozen=True, slots=True)
class EnumeratorState:
    """What the enumerator checkpoints.

    Attributes:
        planned: whether the snapshot was split (it is planned once).
        pending: snapshot splits not yet handed out.
        stream: the change-stream split while it is not yet handed out (it goes out once the
            snapshot is done), else ``None``.
    """

    planned: bool
    pending: tuple[MongoSplit, ...] = ()
    stream: MongoSplit | None = None


class BsonSerializer(Generic[T]):
    """A :class:`VersionedSerializer` through BSON documents."""

    def __init__(
        self,
        version: int,
        to_document: Callable[[T], dict[str, Any]],
        from_document: Callable[[int, dict[str, Any]], T],
    ) -> None:
        self._version = version
        self._to = to_document
        self._from = from_document

    @property
    def version(self) -> int:
        """The format version written."""
        return self._version

    def serialize(self, obj: T, /) -> bytes:
        """``obj`` as one BSON document."""
        try:
            return bson.encode(self._to(obj))
        except Exception as exc:
            raise SerializationError(
                f"mongodb: cannot serialize {type(obj).__name__}: {exc}"
            ) from exc

    def deserialize(self, version: int, data: bytes, /) -> T:
        """The object of ``data`` (format ``version``)."""
        return self._from(version, bson.decode(data, CODEC_OPTIONS))


SPLIT_SERIALIZER: VersionedSerializer[MongoSplit] = BsonSerializer(
    1, MongoSplit.to_document, lambda _v, d: MongoSplit.from_document(d)
)
"""Splits in checkpoints, format 1: :meth:`MongoSplit.to_document` as BSON."""

ENUMERATOR_STATE_SERIALIZER: VersionedSerializer[EnumeratorState] = BsonSerializer(
    1,
    lambda s: {
        "planned": s.planned,
        "pending": [p.to_document() for p in s.pending],
        "stream": s.stream.to_document() if s.stream is not None else None,
    },
    lambda _v, d: EnumeratorState(
        planned=d["planned"],
        pending=tuple(MongoSplit.from_document(p) for p in d["pending"]),
        stream=MongoSplit.from_document(d["stream"]) if d["stream"] is not None else None,
    ),
)
"""Enumerator state in checkpoints, format 1."""
