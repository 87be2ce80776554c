"""Bulk actions: what one record becomes, built once per record and sent as ready NDJSON.

A :class:`BulkAction` holds the encoded lines of one action (the metadata line and, but for a
delete, the source line), so a bulk request is one ``b"".join`` and the byte limits are exact.
:class:`DocumentEmitter` builds them from records according to the sink options: the target index
per record (fixed, a field, a date pattern), the document id from record fields, routing and an
external version.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any, Generic, Literal, TypeVar

from headwater.connectors.opensearch._options import OpenSearchSinkOptions, index_fields
from headwater.core import JsonSerializer, SerializationError, VersionedSerializer

__all__ = [
    "ACTION_SERIALIZER",
    "ActionType",
    "BulkAction",
    "DocumentEmitter",
    "to_json_value",
]

IN = TypeVar("IN")
"""The type of the records the sink consumes."""

ActionType = Literal["index", "create", "update", "delete"]


def to_json_value(value: Any) -> Any:
    """The JSON form of Python values a record may hold (``json.dumps``' ``default``).

    datetimes, dates and times become ISO 8601 strings (what the date type parses), ``Decimal`` a
    string (exact; numeric fields coerce it), tuples, sets and frozensets lists, ``bytes`` base64
    (the binary type), enums their value, UUIDs their string, dataclasses dicts.
    """
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_encode = json.JSONEncoder(default=to_json_value, separators=(",", ":"), ensure_ascii=False).encode


@dataclass(frozen=True, slots=True)
class BulkAction:
    """One bulk action, encoded: ``lines`` is its NDJSON, each line ending with a newline.

    Build one with :meth:`of`; ``index`` and ``id`` are kept for error messages.
    """

    action: ActionType
    index: str
    id: str | None
    lines: bytes

    @classmethod
    def of(
        cls,
        action: ActionType,
        index: str,
        document: Any = None,
        *,
        id: str | None = None,
        routing: str | None = None,
        version: int | None = None,
        doc_as_upsert: bool = True,
    ) -> BulkAction:
        """An action on ``index`` with ``document`` as its body.

        ``document`` is the source (``index``, ``create``), the partial document (``update``) or
        unused (``delete``).

        Raises:
            SerializationError: the document cannot be encoded as JSON.
        """
        meta: dict[str, Any] = {"_index": index}
        if id is not None:
            meta["_id"] = id
        if routing is not None:
            meta["routing"] = routing
        if version is not None:
            meta["version"] = version
            meta["version_type"] = "external"
        head = _encode({action: meta})
        if action == "delete":
            return cls(action, index, id, f"{head}\n".encode())
        body = {"doc": document, "doc_as_upsert": doc_as_upsert} if action == "update" else document
        try:
            source = _encode(body)
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"opensearch sink: cannot encode the document for index {index!r} id {id!r} "
                f"as JSON: {exc}"
            ) from exc
        return cls(action, index, id, f"{head}\n{source}\n".encode())


def _as_mapping(record: Any) -> Mapping[str, Any]:
    if isinstance(record, Mapping):
        return record
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return dataclasses.asdict(record)
    raise SerializationError(
        f"opensearch sink: expected a dict or a dataclass instance, got {type(record).__name__}; "
        "pass to_document= to convert the records"
    )


class DocumentEmitter(Generic[IN]):
    """Turns records into :class:`BulkAction` values as the sink options say.

    Args:
        options: the action, index pattern, id fields, routing and version fields.
        to_document: turns a record into the document (a mapping); default: dicts pass,
            dataclass instances become dicts. The fields the options name are read from it.
    """

    def __init__(
        self,
        options: OpenSearchSinkOptions,
        to_document: Callable[[IN], Mapping[str, Any]] | None = None,
    ) -> None:
        self._options = options
        self._to_document = to_document or _as_mapping
        self._pattern = bool(index_fields(options.index))

    def _field(self, document: Mapping[str, Any], name: str, option: str) -> Any:
        try:
            return document[name]
        except KeyError:
            raise SerializationError(
                f"opensearch sink: option '{option}' names field {name!r}, which a record lacks "
                f"(its fields: {sorted(document)[:20]})"
            ) from None

    def _index(self, document: Mapping[str, Any]) -> str:
        pattern = self._options.index
        if not self._pattern:
            return pattern
        try:
            return pattern.format_map(document)
        except KeyError as exc:
            raise SerializationError(
                f"opensearch sink: option 'index' ({pattern!r}) names field {exc.args[0]!r}, "
                f"which a record lacks (its fields: {sorted(document)[:20]})"
            ) from None
        except (ValueError, TypeError) as exc:
            raise SerializationError(
                f"opensearch sink: option 'index' ({pattern!r}) cannot format a record: {exc}"
            ) from None

    def __call__(self, record: IN) -> BulkAction:
        """The bulk action of one record."""
        options = self._options
        document = self._to_document(record)
        doc_id = None
        if options.id_fields is not None:
            doc_id = options.id_separator.join(
                str(self._field(document, name, "id_fields")) for name in options.id_fields
            )
        routing = None
        if options.routing_field is not None:
            routing = str(self._field(document, options.routing_field, "routing_field"))
        version = None
        if options.version_field is not None:
            raw = self._field(document, options.version_field, "version_field")
            if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
                raise SerializationError(
                    f"opensearch sink: option 'version_field' ({options.version_field!r}) must "
                    f"hold a non-negative int, got {raw!r} (document id {doc_id!r})"
                )
            version = raw
        return BulkAction.of(
            options.action,
            self._index(document),
            document,
            id=doc_id,
            routing=routing,
            version=version,
            doc_as_upsert=options.doc_as_upsert,
        )


ACTION_SERIALIZER: VersionedSerializer[BulkAction] = JsonSerializer(
    version=1,
    to_json=lambda a: [a.action, a.index, a.id, a.lines.decode()],
    from_json=lambda _v, d: BulkAction(d[0], d[1], d[2], d[3].encode()),
)
"""Buffered actions in checkpoints, format 1: ``[action, index, id, NDJSON text]``."""
