"""Record formats shared by connectors: raw bytes, UTF-8 text, JSON, CSV and Avro.

A format turns records into payloads (``serialize_batch``) and payloads into records
(``deserialize_batch``), a batch at a time: the fast path decodes the whole batch in one loop and
only falls back to record-by-record handling when a payload is bad. What happens to a bad payload
is the format's :class:`ErrorPolicy`:

- :class:`FailOnError` (the default): raise :class:`SerializationError` naming the format and the
  record's position.
- :class:`SkipOnError`: drop the record and count it (``numRecordsInErrors``).
- :class:`DeadLetterOnError`: drop the record, count it, and hand a :class:`DeadLetter` (the raw
  payload, the error and the position) to the source's ``dead_letters()`` stream (sink it to any
  connector; exactly once with checkpoints like any other output), or to a collector you supply
  (a plain callable: append to a list, write to a file).

A reader binds a format to its metric group once, with :meth:`Format.deserializer`; the
:class:`Deserializer` it gets counts bad payloads in that group's ``numRecordsInErrors`` (the
counter :class:`SourceReaderBase` reports too), so an emitter passes no counter around.
"""

from __future__ import annotations

import csv
import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from headwater.core import (
    ConfigurationError,
    Counter,
    MetricGroup,
    PipelineEndpoint,
    PipelineSetting,
    SerializationError,
    emit_dead_letter,
)

__all__ = [
    "AvroFormat",
    "CsvFormat",
    "DeadLetter",
    "DeadLetterOnError",
    "Deserializer",
    "ErrorPolicy",
    "FailOnError",
    "Format",
    "JsonFormat",
    "RawFormat",
    "SkipOnError",
    "TextFormat",
    "refuse_record",
]

T = TypeVar("T")
"""The record type of a format."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """A payload that could not be deserialized (or a sink could not write), with why and where.

    Attributes:
        payload: the raw bytes as read (or as the sink would have sent them).
        error: ``"<ExceptionType>: <message>"``.
        format: the name of the format that refused it (``"json"``, ``"avro"``, ...), or of the
            sink (``"kafka sink"``).
        position: where it was read (an offset, a line number; the index in the batch by
            default), or where a sink's record was going (``"topic-partition"``, a stream).
    """

    payload: bytes
    error: str
    format: str
    position: Any


class ErrorPolicy(ABC):
    """What a connector does with a record it cannot read or write.

    Reading: a payload the format cannot decode (``Format(on_error=...)``). Writing: a record the
    external system refuses for good (a mapping error, a constraint) or one over a size limit
    (``on_record_too_large``); a sink applies it with :func:`refuse_record`.
    """

    @abstractmethod
    def handle(self, letter: DeadLetter, cause: Exception) -> None:
        """Handle one record that cannot be read or written: raise to fail, return to drop it."""


class FailOnError(ErrorPolicy):
    """Fail the task (the default).

    Reading: with :class:`SerializationError` naming the format and the record's position.
    Writing: with the sink's error, naming the record, where it was going and why it was refused.
    """

    def handle(self, letter: DeadLetter, cause: Exception) -> None:
        """Raise (a sink's :func:`refuse_record` raises its own error before this is called)."""
        raise SerializationError(
            f"{letter.format}: cannot deserialize the record at position {letter.position}: "
            f"{letter.error}"
        ) from cause


class SkipOnError(ErrorPolicy):
    """Drop the record and go on.

    A source counts records it could not read in ``numRecordsInErrors``; a sink counts records it
    could not write in ``numRecordsOutErrors`` (or a metric its docs name).
    """

    def handle(self, letter: DeadLetter, cause: Exception) -> None:
        """Drop the record."""


class DeadLetterOnError(ErrorPolicy):
    """Drop the record, count it (as :class:`SkipOnError`) and pass it on as a :class:`DeadLetter`.

    Reading, the letter carries the payload as read and its position; writing, the payload the
    sink would have sent and where it was going. Without a collector, a source's letters go to its
    ``dead_letters()`` stream (``env.from_source(...).dead_letters().sink_to(...)``; core's
    ``emit_dead_letter``): the job fails with a clear error if it does not read them. A collector
    runs on the event loop (inside ``deserialize_batch``, or while a sink sorts a request's
    answer): it must be quick and must not block (append to a list or a queue that a sink drains).
    """

    def __init__(self, collector: Callable[[DeadLetter], None] | None = None) -> None:
        self.collector: Callable[[DeadLetter], None] = collector or emit_dead_letter

    def handle(self, letter: DeadLetter, cause: Exception) -> None:
        """Hand ``letter`` to the collector."""
        self.collector(letter)


def refuse_record(policy: ErrorPolicy | None, letter: DeadLetter, error: Exception) -> None:
    """Apply a sink's error policy to a record it cannot write (refused for good, too large).

    ``None`` (the default) and :class:`FailOnError` raise ``error``, which the sink words for
    writing (the record, where it was going, why; for a size limit the size, the limit and the
    option to raise); :class:`SkipOnError` drops the
    record; :class:`DeadLetterOnError` hands ``letter`` to its collector (``letter.format`` is the
    sink's name, ``letter.position`` where the record was going).
    """
    if policy is None or isinstance(policy, FailOnError):
        raise error
    policy.handle(letter, error)


class Format(ABC, Generic[T]):
    """A record format: a cheap, picklable description with an error policy for deserialization.

    Subclasses implement :meth:`decode` and :meth:`encode` for one record; the batch methods are
    the ones connectors call.
    """

    name: str = "format"
    """The name used in error messages and dead letters."""

    def __init__(self, *, on_error: ErrorPolicy | None = None) -> None:
        self.on_error: ErrorPolicy = on_error or FailOnError()

    @abstractmethod
    def decode(self, payload: bytes) -> T:
        """Decode one payload; raise any exception if it is bad."""

    @abstractmethod
    def encode(self, record: T) -> bytes:
        """Encode one record."""

    def deserialize_batch(
        self,
        payloads: Sequence[bytes],
        *,
        positions: Sequence[Any] | None = None,
        errors: Counter | None = None,
    ) -> list[T]:
        """Decode a batch; bad payloads go to the error policy.

        Args:
            payloads: the raw records.
            positions: where each payload was read (same length), for errors and dead letters;
                the index in the batch when omitted.
            errors: incremented once per bad payload (pass the ``numRecordsInErrors`` counter).
        """
        decode = self.decode
        try:
            return [decode(p) for p in payloads]
        except Exception:
            pass
        out: list[T] = []
        bad = 0
        for index, payload in enumerate(payloads):
            try:
                out.append(decode(payload))
            except Exception as exc:
                bad += 1
                if errors is not None:
                    errors.inc()
                position = positions[index] if positions is not None else index
                letter = DeadLetter(
                    payload=bytes(payload),
                    error=f"{type(exc).__name__}: {exc}",
                    format=self.name,
                    position=position,
                )
                self.on_error.handle(letter, exc)
        return out

    def deserialize_timestamped(
        self,
        payloads: Sequence[bytes],
        timestamps: list[int | None],
        *,
        position: Callable[[int], Any],
        errors: Counter | None = None,
    ) -> tuple[list[T], list[int | None]]:
        """Decode a batch of records with timestamps; returns the values and their timestamps.

        One loop over the batch when every payload is good; otherwise payload by payload, so the
        error policy sees each bad one once (its timestamp is dropped with it).

        Args:
            payloads: the raw records.
            timestamps: each record's timestamp (same length; returned as is when all are good).
            position: where the payload at an index was read, for errors and dead letters (only
                called for bad payloads).
            errors: incremented once per bad payload.
        """
        decode = self.decode
        try:
            return [decode(p) for p in payloads], timestamps
        except Exception:
            pass
        values: list[T] = []
        kept: list[int | None] = []
        for index, (payload, timestamp) in enumerate(zip(payloads, timestamps, strict=True)):
            decoded = self.deserialize_batch([payload], positions=[position(index)], errors=errors)
            if decoded:
                values.append(decoded[0])
                kept.append(timestamp)
        return values, kept

    def deserializer(self, metric_group: MetricGroup) -> Deserializer[T]:
        """A :class:`Deserializer` of this format bound to one reader's metrics (one per reader)."""
        return Deserializer(self, metric_group)

    def serialize_batch(self, records: Sequence[T]) -> list[bytes]:
        """Encode a batch; raises :class:`SerializationError` naming the format and the index."""
        encode = self.encode
        try:
            return [encode(r) for r in records]
        except Exception:
            pass
        out: list[bytes] = []
        for index, record in enumerate(records):
            try:
                out.append(encode(record))
            except Exception as exc:
                raise SerializationError(
                    f"{self.name}: cannot serialize the record at index {index} of the batch: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        return out


class Deserializer(Generic[T]):
    """A :class:`Format` bound to a reader's metric group: bad payloads count in ``numRecordsInErrors``.

    Built by :meth:`Format.deserializer`; one per reader (the format itself is shared by every
    subtask, so it holds no metric).
    """

    __slots__ = ("_errors", "format")

    def __init__(self, format: Format[T], metric_group: MetricGroup) -> None:
        self.format = format
        self._errors = metric_group.counter("numRecordsInErrors")

    def deserialize_batch(
        self, payloads: Sequence[bytes], *, positions: Sequence[Any] | None = None
    ) -> list[T]:
        """Decode a batch (see :meth:`Format.deserialize_batch`), counting bad payloads."""
        return self.format.deserialize_batch(payloads, positions=positions, errors=self._errors)

    def deserialize_timestamped(
        self,
        payloads: Sequence[bytes],
        timestamps: list[int | None],
        *,
        position: Callable[[int], Any],
    ) -> tuple[list[T], list[int | None]]:
        """Decode records with timestamps (see :meth:`Format.deserialize_timestamped`), counting bad ones."""
        return self.format.deserialize_timestamped(
            payloads, timestamps, position=position, errors=self._errors
        )


class RawFormat(Format[bytes]):
    """Payloads are the records (bytes in, bytes out)."""

    name = "raw"

    def decode(self, payload: bytes) -> bytes:
        """Return the payload as ``bytes``."""
        return bytes(payload)

    def encode(self, record: bytes) -> bytes:
        """Return the record as ``bytes``."""
        return bytes(record)

    def deserialize_batch(
        self,
        payloads: Sequence[bytes],
        *,
        positions: Sequence[Any] | None = None,
        errors: Counter | None = None,
    ) -> list[bytes]:
        """Return the payloads (raw payloads cannot be bad)."""
        return [bytes(p) for p in payloads]


class TextFormat(Format[str]):
    """Text records, UTF-8 (or ``encoding``) encoded; invalid bytes are errors."""

    name = "text"

    def __init__(self, *, encoding: str = "utf-8", on_error: ErrorPolicy | None = None) -> None:
        super().__init__(on_error=on_error)
        self.encoding = encoding

    def decode(self, payload: bytes) -> str:
        """Decode strictly."""
        return bytes(payload).decode(self.encoding)

    def encode(self, record: str) -> bytes:
        """Encode strictly."""
        return record.encode(self.encoding)


class JsonFormat(Format[Any]):
    """JSON documents (orjson): one document per payload."""

    name = "json"

    def decode(self, payload: bytes) -> Any:
        """Parse one document."""
        return orjson.loads(payload)

    def encode(self, record: Any) -> bytes:
        """Dump one document (compact, UTF-8)."""
        return orjson.dumps(record)


class CsvFormat(Format[Any]):
    """One CSV row per payload (stdlib :mod:`csv`).

    Args:
        fieldnames: when given, rows are dicts with these keys (a row with another number of
            fields is an error); otherwise rows are lists of strings.
        delimiter: the field separator.
    """

    name = "csv"

    def __init__(
        self,
        *,
        fieldnames: Sequence[str] | None = None,
        delimiter: str = ",",
        on_error: ErrorPolicy | None = None,
    ) -> None:
        super().__init__(on_error=on_error)
        if len(delimiter) != 1:
            raise ConfigurationError(
                f"CsvFormat: delimiter must be one character, got {delimiter!r}"
            )
        self.fieldnames = tuple(fieldnames) if fieldnames is not None else None
        self.delimiter = delimiter

    def decode(self, payload: bytes) -> Any:
        """Parse one row."""
        rows = list(
            csv.reader([bytes(payload).decode("utf-8")], delimiter=self.delimiter, strict=True)
        )
        if len(rows) != 1:
            raise ValueError(f"expected one row, got {len(rows)}")
        row = rows[0]
        if self.fieldnames is None:
            return row
        if len(row) != len(self.fieldnames):
            raise ValueError(f"expected {len(self.fieldnames)} fields, got {len(row)}")
        return dict(zip(self.fieldnames, row, strict=True))

    def encode(self, record: Any) -> bytes:
        """Write one row (a dict when ``fieldnames`` is set, else a sequence)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=self.delimiter, lineterminator="")
        if self.fieldnames is not None:
            writer.writerow([record[name] for name in self.fieldnames])
        else:
            writer.writerow(record)
        return buffer.getvalue().encode("utf-8")


class AvroFormat(Format[Any]):
    """Schemaless Avro (fastavro): every payload is one datum of the given schema, no header.

    Needs the ``avro`` extra: ``pip install headwater-connector-base[avro]``.

    Args:
        schema: the Avro schema (a dict as parsed from JSON).
    """

    name = "avro"

    def __init__(self, *, schema: dict[str, Any], on_error: ErrorPolicy | None = None) -> None:
        super().__init__(on_error=on_error)
        try:
            import fastavro
        except ImportError as exc:
            raise ConfigurationError(
                "AvroFormat needs fastavro: pip install 'headwater-connector-base[avro]'"
            ) from exc
        try:
            self._schema = fastavro.parse_schema(schema)
        except Exception as exc:
            raise ConfigurationError(f"AvroFormat: invalid schema: {exc}") from exc
        self._reader = fastavro.schemaless_reader
        self._writer = fastavro.schemaless_writer

    def decode(self, payload: bytes) -> Any:
        """Read one datum; trailing bytes are an error."""
        stream = io.BytesIO(payload)
        record = self._reader(stream, self._schema, None)
        if stream.tell() != len(payload):
            raise ValueError(f"{len(payload) - stream.tell()} trailing byte(s) after the datum")
        return record

    def encode(self, record: Any) -> bytes:
        """Write one datum."""
        stream = io.BytesIO()
        self._writer(stream, self._schema, record)
        return stream.getvalue()


_FORMATS: dict[str, type[Format[Any]]] = {
    f.name: f for f in (RawFormat, TextFormat, JsonFormat, CsvFormat, AvroFormat)
}
_POLICIES: dict[str, Callable[[], ErrorPolicy]] = {
    "fail": FailOnError,
    "skip": SkipOnError,
    "dead_letter": DeadLetterOnError,
}


def format_from_setting(value: Any, where: str) -> Format[Any]:
    """The format a pipeline file names: ``"json"``, or a table ``{name = "csv", delimiter = ";"}``.

    A table holds the format's keyword arguments and ``on_error`` (``"fail"``, the default,
    ``"skip"``, or ``"dead_letter"``: to the source's dead-letter stream, which a pipeline sinks
    with a ``[dead_letters]`` table). ``where`` names the setting in errors.
    """
    settings = {"name": value} if isinstance(value, str) else value
    if not isinstance(settings, dict) or not isinstance(settings.get("name"), str):
        raise ConfigurationError(f"{where}: expected a format name or a table with 'name'")
    kwargs = {k: v for k, v in settings.items() if k not in ("name", "on_error")}
    name = settings["name"]
    factory = _FORMATS.get(name)
    if factory is None:
        raise ConfigurationError(
            f"{where}: unknown format {name!r} (known: {', '.join(sorted(_FORMATS))})"
        )
    policy = settings.get("on_error", "fail")
    if policy not in _POLICIES:
        raise ConfigurationError(
            f"{where}: on_error must be one of {', '.join(sorted(_POLICIES))}, got {policy!r}"
        )
    try:
        return factory(on_error=_POLICIES[policy](), **kwargs)
    except TypeError as exc:
        raise ConfigurationError(f"{where}: {name} format: {exc}") from exc


def pipeline_format(endpoint: PipelineEndpoint, default: str | None = None) -> Format[Any] | None:
    """The format named by a pipeline endpoint's ``format`` setting (or ``default``), if any."""
    setting = endpoint.settings.get("format", default)
    return None if setting is None else format_from_setting(setting, endpoint.where("format"))


def format_setting(keyword: str, *, default: str | None = None) -> PipelineSetting:
    """A pipeline binding's ``format`` setting: the :class:`Format` it names, as ``keyword``.

    The value is a format name or a table (see :func:`format_from_setting`); absent, ``default``
    (``None``: the argument is ``None``, the connector's raw values).
    """

    def read(endpoint: PipelineEndpoint, key: str) -> Format[Any] | None:
        setting = endpoint.settings.get(key, default)
        return None if setting is None else format_from_setting(setting, endpoint.where(key))

    return PipelineSetting(keyword=keyword, read=read)
