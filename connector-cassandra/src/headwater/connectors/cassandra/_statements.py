"""The sink's statement: generated or the user's CQL, prepared once, bound per record.

A record (a mapping, a dataclass, a pydantic model or a named tuple) is bound to the prepared
statement by bind-marker name; the driver serializes the values with the column types. The
serialized values are the sink's request entry (:class:`Entry`): they go into checkpoints as they
are (no Python-side codec), and a key for error messages is decoded from them only when needed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from headwater.connectors.cassandra._errors import CassandraRecordError
from headwater.connectors.cassandra._options import CassandraSinkOptions, WriteKind
from headwater.core import JsonSerializer, VersionedSerializer

from cassandra.cqltypes import CounterColumnType
from cassandra.query import BoundStatement, PreparedStatement

__all__ = [
    "ENTRY_SERIALIZER",
    "TIMESTAMP_MARKER",
    "Entry",
    "StatementBinder",
    "entry_from_json",
    "entry_to_json",
    "record_fields",
    "sink_cql",
]

TIMESTAMP_MARKER = "headwater_timestamp"
"""The bind marker of ``USING TIMESTAMP`` in generated statements (from ``timestamp_field``)."""
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class Entry:
    """One record bound to the statement: its values as the driver serialized them."""

    values: tuple[bytes | None, ...]


def entry_to_json(entry: Entry) -> list[str | None]:
    """An entry as JSON: its values in hex."""
    return [None if v is None else v.hex() for v in entry.values]


def entry_from_json(_version: int, data: Any) -> Entry:
    """The entry :func:`entry_to_json` wrote."""
    return Entry(tuple(None if v is None else bytes.fromhex(v) for v in data))


ENTRY_SERIALIZER: VersionedSerializer[Entry] = JsonSerializer(
    version=1, to_json=entry_to_json, from_json=entry_from_json
)


def record_fields(record: Any) -> Mapping[str, Any]:
    """A record's fields by name: mappings, dataclasses, pydantic models and named tuples."""
    if isinstance(record, Mapping):
        return record
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    dump = getattr(record, "model_dump", None)
    if callable(dump):
        fields: Mapping[str, Any] = dump()
        return fields
    as_dict = getattr(record, "_asdict", None)
    if callable(as_dict):
        named: Mapping[str, Any] = as_dict()
        return named
    raise TypeError(
        f"a record must be a mapping, a dataclass, a pydantic model or a named tuple, "
        f"not {type(record).__name__}"
    )


def sink_cql(options: CassandraSinkOptions, columns: Sequence[str]) -> str:
    """The statement the sink prepares: ``options.cql``, or one generated for ``columns``."""
    if options.cql is not None:
        return options.cql
    target = f"{options.keyspace}.{options.table}"
    timestamp = [] if options.timestamp_field is None else [f"TIMESTAMP :{TIMESTAMP_MARKER}"]
    ttl = [] if options.ttl is None else [f"TTL {int(options.ttl.total_seconds())}"]
    keys = options.key_columns
    where = " AND ".join(f"{k} = :{k}" for k in keys)
    if options.kind is WriteKind.DELETE:
        return f"DELETE FROM {target}{_using(timestamp)} WHERE {where}"
    if options.kind is WriteKind.UPDATE:
        assignments = ", ".join(f"{c} = :{c}" for c in columns if c not in keys)
        if not assignments:
            raise ValueError("an UPDATE needs columns besides key_columns")
        return f"UPDATE {target}{_using(ttl + timestamp)} SET {assignments} WHERE {where}"
    names = ", ".join(columns)
    markers = ", ".join(f":{c}" for c in columns)
    return f"INSERT INTO {target} ({names}) VALUES ({markers}){_using(ttl + timestamp)}"


def _using(clauses: list[str]) -> str:
    return f" USING {' AND '.join(clauses)}" if clauses else ""


def _micros(value: Any) -> int:
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return (moment - _EPOCH) // dt.timedelta(microseconds=1)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(
        f"a timestamp must be microseconds (int) or a datetime, not {type(value).__name__}"
    )


class StatementBinder:
    """Binds records to one prepared statement; describes entries for error messages.

    Args:
        prepared: the prepared statement (its bind markers name record fields).
        timestamp_field: the record field bound to :data:`TIMESTAMP_MARKER`, if any.
        key_columns: the columns named in errors (default: the partition-key markers).
        who: the component, for messages.
        counter: the statement writes a counter table (also found from counter bind markers).
    """

    def __init__(
        self,
        prepared: PreparedStatement,
        timestamp_field: str | None,
        key_columns: Sequence[str],
        who: str,
        *,
        counter: bool = False,
    ) -> None:
        self.prepared = prepared
        self._who = who
        self._names = [c.name for c in prepared.column_metadata]
        self._types = [c.type for c in prepared.column_metadata]
        self._timestamp_field = timestamp_field
        routing = prepared.routing_key_indexes or []
        self._routing = list(routing)
        named = [self._names.index(k) for k in key_columns if k in self._names]
        self._key_indexes = named or list(routing)
        self.counter = counter or any(t is CounterColumnType for t in self._types)
        """Whether the statement updates counters (not idempotent; counter batches only)."""

    def bind(self, record: Any, position: int) -> Entry:
        """The serialized values of ``record`` (``position``: its index in the writer's input).

        Raises:
            CassandraRecordError: the record lacks a field or has a value of the wrong type.
        """
        fields: Mapping[str, Any] = {}
        try:
            fields = record_fields(record)
            values = [
                _micros(fields[self._timestamp_field])
                if name == TIMESTAMP_MARKER and self._timestamp_field is not None
                else fields[name]
                for name in self._names
            ]
            bound = self.prepared.bind(values)
        except KeyError as exc:
            raise CassandraRecordError(
                f"{self._who}: record #{position}{self._key_of(fields)} has no field "
                f"{exc.args[0]!r} for the statement's bind marker"
            ) from None
        except (TypeError, ValueError, OverflowError, AttributeError) as exc:
            raise CassandraRecordError(
                f"{self._who}: record #{position}{self._key_of(fields)} does not fit the "
                f"statement's column types: {exc}"
            ) from None
        return Entry(tuple(bound.values))

    def _key_of(self, fields: Mapping[str, Any]) -> str:
        names = [self._names[i] for i in self._key_indexes if self._names[i] in fields]
        return f" (key {', '.join(f'{n}={fields[n]!r}' for n in names)})" if names else ""

    def partition(self, entry: Entry) -> tuple[bytes | None, ...]:
        """The entry's partition-key values (serialized): statements with equal ones share a lane."""
        values = entry.values
        return tuple(values[i] for i in self._routing)

    def statement(self, entry: Entry) -> BoundStatement:
        """A bound statement carrying ``entry``'s values (routed by its partition key)."""
        bound = BoundStatement(self.prepared)
        bound.values = list(entry.values)
        return bound

    def describe(self, entry: Entry, protocol_version: int) -> str:
        """``k=v, ...`` of the entry's key columns (for error messages)."""
        parts = []
        for index in self._key_indexes:
            raw = entry.values[index]
            value = None if raw is None else self._types[index].from_binary(raw, protocol_version)
            parts.append(f"{self._names[index]}={value!r}")
        return ", ".join(parts) or "(no key columns)"
