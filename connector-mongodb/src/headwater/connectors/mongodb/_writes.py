"""Records as MongoDB writes, and one bulk write with per-document errors sorted out.

A record becomes a :class:`MongoWrite`: the operation and its filter and document, already BSON
(``RawBSONDocument``), so its size is known, it is encoded once, and it goes into a checkpoint as
it is. Python values pymongo does not encode by itself are converted: ``Decimal`` becomes
``Decimal128`` (tuples are arrays, datetimes dates, as pymongo does).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import bson
from bson.codec_options import CodecOptions, TypeEncoder, TypeRegistry
from bson.decimal128 import Decimal128
from bson.raw_bson import RawBSONDocument
from headwater.connectors.base import DeadLetter, ErrorPolicy, FailOnError
from headwater.connectors.mongodb._client import RETRYABLE_CODES
from headwater.connectors.mongodb._options import MongoSinkOptions
from headwater.connectors.mongodb._records import MongoChangelogRecord
from headwater.core import FatalError, RowKind, SerializationError
from pymongo import DeleteOne, InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

__all__ = [
    "WRITE_SERIALIZER",
    "BulkOutcome",
    "MongoWrite",
    "WriteConverter",
    "bulk_write",
]


class _DecimalEncoder(TypeEncoder):
    @property
    def python_type(self) -> type[Decimal]:
        return Decimal

    def transform_python(self, value: Any) -> Decimal128:
        return Decimal128(value)


ENCODE_OPTIONS: CodecOptions[Any] = CodecOptions(
    tz_aware=True, type_registry=TypeRegistry([_DecimalEncoder()])
)


@dataclass(frozen=True, slots=True)
class MongoWrite:
    """One write: ``op`` is ``insert``, ``replace`` (upsert), ``update`` (upsert) or ``delete``."""

    op: str
    filter: RawBSONDocument | None
    document: RawBSONDocument | None

    @property
    def size(self) -> int:
        """Its BSON bytes."""
        return (len(self.filter.raw) if self.filter is not None else 0) + (
            len(self.document.raw) if self.document is not None else 0
        )

    def model(self) -> InsertOne[Any] | ReplaceOne[Any] | UpdateOne | DeleteOne:
        """The pymongo write model."""
        if self.op == "insert":
            assert self.document is not None
            return InsertOne(self.document)
        assert self.filter is not None
        if self.op == "replace":
            assert self.document is not None
            return ReplaceOne(self.filter, self.document, upsert=True)
        if self.op == "update":
            assert self.document is not None
            return UpdateOne(self.filter, self.document, upsert=True)
        return DeleteOne(self.filter)

    def describe(self) -> str:
        """The write's key (or ``_id``), for messages."""
        if self.filter is not None:
            return f"key {bson.decode(self.filter.raw)!r}"
        if self.document is not None and "_id" in self.document:
            return f"_id {self.document['_id']!r}"
        return "a document without _id"


def _raw(document: Mapping[str, Any]) -> RawBSONDocument:
    return RawBSONDocument(bson.encode(document, codec_options=ENCODE_OPTIONS))


class _WriteSerializer:
    """Checkpointed writes (at-least-once buffers, exactly-once committables), BSON format 1."""

    version = 1

    def serialize(self, write: MongoWrite, /) -> bytes:
        return bson.encode({"o": write.op, "f": write.filter, "d": write.document})

    def deserialize(self, version: int, data: bytes, /) -> MongoWrite:
        d = bson.decode(data, CodecOptions(document_class=RawBSONDocument))
        return MongoWrite(d["o"], d["f"], d["d"])


WRITE_SERIALIZER = _WriteSerializer()


class WriteConverter:
    """Turns records into writes: changelog records by their kind, others by ``write_mode``.

    A record that is not a :class:`MongoChangelogRecord` goes through ``to_document`` (default:
    the record must be a mapping). A document over ``max_record_size_in_bytes`` goes to the
    error policy; one missing a key field fails with an error naming the field.
    """

    def __init__(
        self,
        options: MongoSinkOptions,
        to_document: Callable[[Any], Mapping[str, Any]] | None,
        on_error: ErrorPolicy,
    ) -> None:
        self._mode = options.write_mode
        self._keys = options.key_fields
        self._limit = options.max_record_size_in_bytes
        self._to_document = to_document
        self._on_error = on_error
        self._where = options.where

    def _key(self, document: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return {f: document[f] for f in self._keys}
        except KeyError as exc:
            raise SerializationError(
                f"mongodb sink ({self._where}): the document has no key field {exc.args[0]!r} "
                f"(option key_fields={list(self._keys)}): {_preview(document)}"
            ) from None

    def _document(self, record: Any) -> Mapping[str, Any]:
        if self._to_document is not None:
            return self._to_document(record)
        if not isinstance(record, Mapping):
            raise SerializationError(
                f"mongodb sink ({self._where}): a record of type {type(record).__name__} is not "
                "a mapping: give the sink a to_document function"
            )
        return record

    def convert(self, records: Sequence[Any]) -> list[MongoWrite]:
        """The writes of ``records``, in order; records the policy drops are left out."""
        writes: list[MongoWrite] = []
        for record in records:
            write = self._write(record)
            if write is None:
                continue
            if write.size > self._limit:
                refuse(
                    self._on_error,
                    write,
                    f"the document is {write.size} bytes, over max_record_size_in_bytes "
                    f"({self._limit})",
                    None,
                    self._where,
                )
                continue
            writes.append(write)
        return writes

    def _write(self, record: Any) -> MongoWrite | None:
        if isinstance(record, MongoChangelogRecord):
            key = _raw(record.key)
            if record.kind is RowKind.DELETE:
                return MongoWrite("delete", key, None)
            if record.kind is RowKind.UPDATE_BEFORE or record.document is None:
                return None
            return MongoWrite("replace", key, _raw(record.document))
        document = self._document(record)
        if self._mode == "insert":
            return MongoWrite("insert", None, _raw(document))
        key = _raw(self._key(document))
        if self._mode == "upsert":
            return MongoWrite("replace", key, _raw(document))
        if self._mode == "update":
            fields = {k: v for k, v in document.items() if k != "_id"}
            return MongoWrite("update", key, _raw({"$set": fields}))
        return MongoWrite("delete", key, None)


def _preview(document: Mapping[str, Any]) -> str:
    text = repr(dict(document))
    return text if len(text) <= 200 else text[:200] + "..."


def refuse(
    policy: ErrorPolicy, write: MongoWrite, error: str, code: int | None, where: str
) -> None:
    """Hand a write the server (or the size limit) refused for good to the error policy."""
    reason = f"{error}{f' (server code {code})' if code is not None else ''}"
    if isinstance(policy, FailOnError):
        raise FatalError(
            f"mongodb sink ({where}): the write of {write.describe()} failed: {reason}"
        )
    payload = bytes(write.document.raw) if write.document is not None else b""
    letter = DeadLetter(payload=payload, error=reason, format="mongodb", position=write.describe())
    policy.handle(letter, FatalError(reason))


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    """What became of a bulk write: ``retry`` must be sent again; ``refused`` went to the policy.

    ``failed``: the server reported per-document errors (in a transaction: it is aborted).
    """

    retry: list[MongoWrite]
    refused: int
    failed: bool = False


def _has_repeated_keys(writes: Sequence[MongoWrite]) -> bool:
    keys = [w.filter.raw for w in writes if w.filter is not None]
    return len(set(keys)) != len(keys)


async def bulk_write(
    collection: AsyncCollection[Any],
    writes: Sequence[MongoWrite],
    policy: ErrorPolicy,
    where: str,
    session: AsyncClientSession | None = None,
) -> BulkOutcome:
    """One ``bulk_write``: unordered, unless one key repeats (then ordered, so it applies in order).

    Per-document errors that retrying cannot fix (duplicate key on insert, validation failure)
    go to ``policy``; writes that failed for a retryable reason, and an ordered write's writes
    after its first error, are returned for another attempt. In a transaction (``session``),
    a per-document error aborts everything: the caller retries the rest.
    """
    ordered = _has_repeated_keys(writes)
    try:
        await collection.bulk_write([w.model() for w in writes], ordered=ordered, session=session)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if exc.details.get("writeConcernErrors") and not errors:
            raise
        refused = 0
        failed: set[int] = set()
        for error in errors:
            index = int(error["index"])
            failed.add(index)
            if error.get("code") not in RETRYABLE_CODES:
                refuse(policy, writes[index], str(error.get("errmsg")), error.get("code"), where)
                refused += 1
        retry = [w for i, w in enumerate(writes) if i in failed and _retryable(errors, i)]
        if ordered and errors:
            first = min(failed)
            retry = [*retry, *writes[first + 1 :]]
        if session is not None:  # the transaction is aborted: every write not refused again
            refused_at = {int(e["index"]) for e in errors if e.get("code") not in RETRYABLE_CODES}
            retry = [w for i, w in enumerate(writes) if i not in refused_at]
        return BulkOutcome(retry, refused, failed=True)
    return BulkOutcome([], 0)


def _retryable(errors: list[dict[str, Any]], index: int) -> bool:
    return any(int(e["index"]) == index and e.get("code") in RETRYABLE_CODES for e in errors)
