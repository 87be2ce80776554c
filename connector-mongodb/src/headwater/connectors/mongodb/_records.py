"""What the MongoDB source emits and the sink accepts: change events, changelog records, BSON formats."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import bson
from bson import json_util
from bson.codec_options import CodecOptions
from bson.timestamp import Timestamp
from headwater.connectors.base import ErrorPolicy, Format
from headwater.core import Counter, RowKind

__all__ = [
    "CODEC_OPTIONS",
    "BsonFormat",
    "ExtendedJsonFormat",
    "MongoChangeEvent",
    "MongoChangelogRecord",
    "cluster_time_millis",
]

CODEC_OPTIONS: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)
"""How documents are decoded: ``dict`` with timezone-aware (UTC) datetimes."""


def cluster_time_millis(ts: Timestamp) -> int:
    """A cluster time as epoch milliseconds (its seconds; the increment orders within one)."""
    return int(ts.time) * 1000


@dataclass(frozen=True, slots=True)
class MongoChangeEvent:
    """One change event, or one document of the snapshot of ``startup_mode='initial'``.

    Attributes:
        operation: ``insert``, ``update``, ``replace``, ``delete`` or ``snapshot`` (a document
            read by the snapshot); other operations (``drop``, ``rename``...) keep the server's
            name.
        key: the document key (``{"_id": ...}``, plus the shard key where there is one).
        full_document: the document after the change (inserts, replaces, snapshot reads, and
            updates as ``full_document`` asks), else ``None``.
        full_document_before_change: the pre-image where the server has one, else ``None``.
        update_description: ``updatedFields`` / ``removedFields`` / ``truncatedArrays`` of an
            update, else ``None``.
        cluster_time: the operation's cluster time (for snapshot reads: the snapshot's in
            ``startup_mode='initial'``, ``None`` in a bounded snapshot).
        namespace: ``(database, collection)``.
    """

    operation: str
    key: Mapping[str, Any]
    full_document: Mapping[str, Any] | None
    full_document_before_change: Mapping[str, Any] | None
    update_description: Mapping[str, Any] | None
    cluster_time: Timestamp | None
    namespace: tuple[str, str]

    @classmethod
    def from_server(cls, event: Mapping[str, Any]) -> MongoChangeEvent:
        """The event of a change-stream document."""
        ns = event.get("ns") or {}
        return cls(
            operation=event["operationType"],
            key=event.get("documentKey") or {},
            full_document=event.get("fullDocument"),
            full_document_before_change=event.get("fullDocumentBeforeChange"),
            update_description=event.get("updateDescription"),
            cluster_time=event["clusterTime"],
            namespace=(ns.get("db", ""), ns.get("coll", "")),
        )

    def to_changelog(self) -> MongoChangelogRecord | None:
        """The changelog record of this event (``None`` for operations that change no document).

        Inserts and snapshot reads are ``INSERT``; updates and replaces ``UPDATE_AFTER`` (with
        the full document, or ``None`` if the server had none: an update of a document deleted
        since); deletes ``DELETE``.
        """
        if self.operation in ("insert", "snapshot"):
            return MongoChangelogRecord(RowKind.INSERT, self.key, self.full_document)
        if self.operation in ("update", "replace"):
            return MongoChangelogRecord(RowKind.UPDATE_AFTER, self.key, self.full_document)
        if self.operation == "delete":
            return MongoChangelogRecord(RowKind.DELETE, self.key, None)
        return None


@dataclass(frozen=True, slots=True)
class MongoChangelogRecord:
    """A changelog record: ``kind`` of change to the document identified by ``key``.

    The sink applies it: ``INSERT`` and ``UPDATE_AFTER`` replace (upsert) the document with
    ``document``, ``DELETE`` removes it, ``UPDATE_BEFORE`` is ignored. An ``UPDATE_AFTER``
    without a document (an update whose document was deleted before the lookup) is skipped:
    the delete follows it in the changelog.
    """

    kind: RowKind
    key: Mapping[str, Any]
    document: Mapping[str, Any] | None


class BsonFormat(Format[dict[str, Any]]):
    """BSON documents as ``dict`` (timezone-aware datetimes, ``Decimal128``, ``ObjectId``...)."""

    name = "bson"

    def __init__(self, *, on_error: ErrorPolicy | None = None) -> None:
        super().__init__(on_error=on_error)

    def decode(self, payload: bytes) -> dict[str, Any]:
        """One BSON document."""
        return bson.decode(payload, CODEC_OPTIONS)

    def encode(self, record: dict[str, Any]) -> bytes:
        """One BSON document."""
        return bson.encode(record)

    def deserialize_timestamped(
        self,
        payloads: Sequence[bytes],
        timestamps: list[int | None],
        *,
        position: Callable[[int], Any],
        errors: Counter | None = None,
    ) -> tuple[list[dict[str, Any]], list[int | None]]:
        """The whole batch in one ``bson.decode_all`` call (unless a subclass decodes its own way).

        A batch that does not decode goes document by document, so the error policy sees each
        bad one (see :meth:`Format.deserialize_timestamped`).
        """
        if type(self).decode is BsonFormat.decode:
            try:
                return bson.decode_all(b"".join(payloads), CODEC_OPTIONS), timestamps
            except Exception:
                pass
        return super().deserialize_timestamped(
            payloads, timestamps, position=position, errors=errors
        )


class ExtendedJsonFormat(Format[str]):
    """BSON documents as MongoDB Extended JSON text, ``relaxed`` (default) or ``canonical``."""

    name = "extended-json"

    def __init__(
        self,
        *,
        mode: Literal["relaxed", "canonical"] = "relaxed",
        on_error: ErrorPolicy | None = None,
    ) -> None:
        super().__init__(on_error=on_error)
        self.mode = mode
        self._options = (
            json_util.RELAXED_JSON_OPTIONS
            if mode == "relaxed"
            else json_util.CANONICAL_JSON_OPTIONS
        )

    def decode(self, payload: bytes) -> str:
        """One BSON document as Extended JSON."""
        return json_util.dumps(bson.decode(payload, CODEC_OPTIONS), json_options=self._options)

    def encode(self, record: str) -> bytes:
        """Extended JSON text as one BSON document."""
        return bson.encode(json_util.loads(record, json_options=self._options))
