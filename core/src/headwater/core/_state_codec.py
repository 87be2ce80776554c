"""The state codec: Python values to bytes and back, keeping their types (msgpack with extension types).

Every piece of checkpointed state goes through it: keyed and operator state, window contents,
timers and the buffers operators keep in checkpoints. msgpack carries ``None``, ``bool``, ``int``,
``float``, ``str``, ``bytes``, lists and dicts (with keys of any supported type); extension types
carry the rest, so a value comes back with the type it had:

- tuples, sets, frozensets, integers beyond 64 bits;
- ``datetime``, ``date`` and ``time`` (with fixed-offset or ``zoneinfo`` time zones), ``timedelta``;
- ``Decimal``, ``UUID``;
- enums, dataclasses, NamedTuples and pydantic models, by importable class name (``module:Qualname``);
- classes with a serializer registered by :func:`register_state_serializer`.

Dataclasses, NamedTuples and pydantic models are written field by field, so a class may evolve
between a checkpoint and its restore: fields added with a default take it, fields removed are
dropped; a field added without a default fails the restore naming the class and the field.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import importlib
import struct
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import msgpack
from headwater.core._errors import SerializationError
from headwater.core._serialization import VersionedSerializer

__all__ = [
    "CODEC_VERSION",
    "SchemaEvolutionError",
    "StateCodecSerializer",
    "StateValueError",
    "decode_state",
    "encode_state",
    "register_state_serializer",
]

CODEC_VERSION = 1
"""The codec's format version (written into checkpoint metadata)."""

T = TypeVar("T")

_TUPLE, _SET, _FROZENSET, _BIGINT = 1, 2, 3, 4
_DATETIME, _DATE, _TIME, _TIMEDELTA = 5, 6, 7, 8
_DECIMAL, _UUID, _ENUM, _DATACLASS = 9, 10, 11, 12
_NAMEDTUPLE, _PYDANTIC, _REGISTERED = 13, 14, 15

_registered: dict[type, VersionedSerializer[Any]] = {}
_classes: dict[str, type] = {}


class StateValueError(SerializationError, TypeError):
    """A value cannot be written to state: its type is not supported and has no serializer."""


class SchemaEvolutionError(SerializationError):
    """A restored value does not fit its class any more (a field was added without a default)."""


def register_state_serializer(cls: type[T], serializer: VersionedSerializer[T]) -> None:
    """Use ``serializer`` for values of exactly ``cls`` in state (checked before built-in handling).

    The class is recorded by its importable name, so it must be defined at module level.
    """
    encoder = _registered_encoder(cls, serializer)  # fails for classes not importable
    _registered[cls] = serializer
    _ENCODERS[cls] = encoder


class StateCodecSerializer:
    """A :class:`VersionedSerializer` of any value the state codec writes (format version 1).

    For checkpointed objects that need no format of their own: e.g. the request entries an async
    sink buffers in its checkpoints.
    """

    @property
    def version(self) -> int:
        """The format version written (the codec's)."""
        return CODEC_VERSION

    def serialize(self, obj: Any, /) -> bytes:
        """``obj`` as the codec's bytes."""
        return encode_state(obj)

    def deserialize(self, version: int, data: bytes, /) -> Any:
        """The object :meth:`serialize` wrote."""
        if version > CODEC_VERSION:
            raise SerializationError(
                f"state was written by state codec version {version}, newer than this release "
                f"understands ({CODEC_VERSION}); upgrade headwater-core"
            )
        return decode_state(data)


def encode_state(value: Any) -> bytes:
    """``value`` as bytes; raises :class:`StateValueError` for an unsupported type."""
    try:
        return _pack(value)
    except StateValueError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise StateValueError(str(exc)) from exc


def decode_state(data: bytes) -> Any:
    """The value :func:`encode_state` wrote."""
    return _unpackb(data, ext_hook=_ext_hook, strict_map_key=False)


# -- encoding --------------------------------------------------------------------------------


_free_packers: list[msgpack.Packer] = []
"""Idle packers. Packing an extension type's payload happens while the outer value is being
packed, so one packer per nesting level is taken; list pop and append are atomic, so threads
share the list safely (a packer is only ever used by the thread that took it)."""


def _pack(value: Any) -> bytes:
    try:
        packer = _free_packers.pop()
    except IndexError:
        packer = msgpack.Packer(default=_default, strict_types=True, use_bin_type=True)
    try:
        data: bytes = packer.pack(value)
    except BaseException:
        packer.reset()
        raise
    finally:
        _free_packers.append(packer)
    return data


def _ext(code: int, data: bytes) -> msgpack.ExtType:
    """An ExtType without its Python-level argument checks (code and data are ours)."""
    ext: msgpack.ExtType = tuple.__new__(msgpack.ExtType, (code, data))
    return ext


def _class_name(cls: type) -> str:
    qualname = cls.__qualname__
    if "<locals>" in qualname:
        raise StateValueError(
            f"{qualname} is defined inside a function; state values of a class are restored by "
            f"importing the class, so define {cls.__name__} at module level"
        )
    return f"{cls.__module__}:{qualname}"


_DATETIME_FIELDS = struct.Struct(">HBBBBBIB")  # year .. microsecond, fold
_TIME_FIELDS = struct.Struct(">BBBIB")  # hour, minute, second, microsecond, fold
_DATE_FIELDS = struct.Struct(">I")  # proleptic Gregorian ordinal
_TIMEDELTA_FIELDS = struct.Struct(">iiI")  # days, seconds, microseconds
_OFFSET = struct.Struct(">iI")  # seconds, microseconds of a fixed UTC offset


_tz_suffixes: dict[dt.tzinfo, bytes] = {}
_tz_objects: dict[bytes, dt.tzinfo] = {}
_TZ_CACHE_SIZE = 1024


def _cached(cache: dict[Any, Any], key: Any, make: Callable[[Any], Any]) -> Any:
    """``make(key)``, remembered in ``cache`` (emptied when full)."""
    value = cache.get(key)
    if value is None:
        if len(cache) >= _TZ_CACHE_SIZE:
            cache.clear()
        value = cache[key] = make(key)
    return value


def _tz(tz: dt.tzinfo | None) -> bytes:
    """A time zone as the suffix of a datetime's or time's fields (cached per time zone)."""
    if tz is None:
        return b""
    suffix: bytes = _cached(_tz_suffixes, tz, _tz_suffix)
    return suffix


def _tz_suffix(tz: dt.tzinfo) -> bytes:
    if isinstance(tz, ZoneInfo):
        return b"Z" + tz.key.encode()
    if isinstance(tz, dt.timezone):
        offset = tz.utcoffset(None)
        fields = _OFFSET.pack(offset.days * 86400 + offset.seconds, offset.microseconds)
        name = tz.tzname(None)
        if name == dt.timezone(offset).tzname(None):
            return b"O" + fields
        return b"N" + fields + name.encode()
    raise StateValueError(
        f"time zone {tz!r} ({type(tz).__name__}) is not supported in state: use "
        f"datetime.timezone or zoneinfo.ZoneInfo"
    )


def _fields(obj: Any, names: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in names}


_pack_datetime = _DATETIME_FIELDS.pack


def _datetime(obj: dt.datetime) -> msgpack.ExtType:
    fields = _pack_datetime(
        obj.year, obj.month, obj.day, obj.hour, obj.minute, obj.second, obj.microsecond, obj.fold
    )
    tz = obj.tzinfo
    return _ext(_DATETIME, fields if tz is None else fields + _tz(tz))


def _time(obj: dt.time) -> msgpack.ExtType:
    fields = _TIME_FIELDS.pack(obj.hour, obj.minute, obj.second, obj.microsecond, obj.fold)
    return _ext(_TIME, fields + _tz(obj.tzinfo))


_ENCODERS: dict[type, Callable[[Any], msgpack.ExtType]] = {
    tuple: lambda obj: _ext(_TUPLE, _pack(list(obj))),
    set: lambda obj: _ext(_SET, _pack(list(obj))),
    frozenset: lambda obj: _ext(_FROZENSET, _pack(list(obj))),
    # msgpack packs ints of up to 64 bits natively; bigger ones come here.
    int: lambda obj: _ext(_BIGINT, str(obj).encode()),
    dt.datetime: _datetime,
    dt.date: lambda obj: _ext(_DATE, _DATE_FIELDS.pack(obj.toordinal())),
    dt.time: _time,
    dt.timedelta: lambda obj: _ext(
        _TIMEDELTA, _TIMEDELTA_FIELDS.pack(obj.days, obj.seconds, obj.microseconds)
    ),
    Decimal: lambda obj: _ext(_DECIMAL, str(obj).encode()),
    uuid.UUID: lambda obj: _ext(_UUID, obj.bytes),
}
"""Encoders by exact type: built-in types and classes with a registered serializer (others go
through :func:`_by_kind`)."""


def _default(obj: Any) -> msgpack.ExtType:
    encoder = _ENCODERS.get(type(obj))
    if encoder is not None:
        return encoder(obj)
    return _by_kind(obj, type(obj))


def _registered_encoder(
    cls: type, serializer: VersionedSerializer[Any]
) -> Callable[[Any], msgpack.ExtType]:
    name = _class_name(cls)

    def encode(obj: Any) -> msgpack.ExtType:
        return _ext(_REGISTERED, _pack([name, serializer.version, serializer.serialize(obj)]))

    return encode


def _by_kind(obj: Any, cls: type) -> msgpack.ExtType:
    """Enums, dataclasses, NamedTuples and pydantic models, by importable class name."""
    if isinstance(obj, enum.Enum):
        return _ext(_ENUM, _pack([_class_name(cls), obj.value]))
    if dataclasses.is_dataclass(obj):
        names = [f.name for f in dataclasses.fields(obj)]
        return _ext(_DATACLASS, _pack([_class_name(cls), _fields(obj, names)]))
    if isinstance(obj, tuple) and hasattr(cls, "_fields"):
        return _ext(_NAMEDTUPLE, _pack([_class_name(cls), _fields(obj, cls._fields)]))
    model_fields = getattr(cls, "model_fields", None)
    if isinstance(model_fields, dict) and hasattr(cls, "model_validate"):
        return _ext(_PYDANTIC, _pack([_class_name(cls), _fields(obj, model_fields)]))
    raise StateValueError(
        f"values of type {cls.__module__}.{cls.__qualname__} are not supported in state; "
        f"register a serializer with headwater.core.register_state_serializer("
        f"{cls.__qualname__}, serializer), or name one in the state descriptor (serializer=...)"
    )


# -- decoding --------------------------------------------------------------------------------


_unpackb = msgpack.unpackb


def _unpack(data: bytes) -> Any:
    return _unpackb(data, ext_hook=_ext_hook, strict_map_key=False)


def _load_class(name: str) -> type:
    cls = _classes.get(name)
    if cls is None:
        module_name, _, qualname = name.partition(":")
        try:
            found: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError) as exc:
            raise SchemaEvolutionError(
                f"state holds values of class {name}, which cannot be imported any more: {exc}"
            ) from exc
        cls = _classes[name] = found
    return cls


def _from_tz(data: bytes, offset: int) -> dt.tzinfo | None:
    """The time zone :func:`_tz` wrote at ``offset`` of ``data`` (cached per suffix)."""
    if len(data) == offset:
        return None
    tz: dt.tzinfo = _cached(_tz_objects, data[offset:], _tz_from_suffix)
    return tz


def _tz_from_suffix(suffix: bytes) -> dt.tzinfo:
    kind = suffix[:1]
    if kind == b"Z":
        return ZoneInfo(suffix[1:].decode())
    seconds, micros = _OFFSET.unpack_from(suffix, 1)
    delta = dt.timedelta(seconds=seconds, microseconds=micros)
    if kind == b"N":
        return dt.timezone(delta, suffix[1 + _OFFSET.size :].decode())
    return dt.timezone(delta)


_unpack_datetime = _DATETIME_FIELDS.unpack_from
_DATETIME_SIZE = _DATETIME_FIELDS.size


def _from_datetime(data: bytes) -> dt.datetime:
    y, mo, d, h, mi, s, us, fold = _unpack_datetime(data)
    tz = None if len(data) == _DATETIME_SIZE else _from_tz(data, _DATETIME_SIZE)
    return dt.datetime(y, mo, d, h, mi, s, us, tzinfo=tz, fold=fold)


def _from_time(data: bytes) -> dt.time:
    h, mi, s, us, fold = _TIME_FIELDS.unpack_from(data)
    return dt.time(h, mi, s, us, tzinfo=_from_tz(data, _TIME_FIELDS.size), fold=fold)


def _from_timedelta(data: bytes) -> dt.timedelta:
    days, seconds, micros = _TIMEDELTA_FIELDS.unpack(data)
    return dt.timedelta(days=days, seconds=seconds, microseconds=micros)


def _construct(
    name: str, values: dict[str, Any], known: dict[str, bool], build: Callable[..., Any]
) -> Any:
    """An instance from stored fields: removed fields dropped, added ones need a default.

    ``known`` maps the class's current fields to whether they have a default.
    """
    kept = {k: v for k, v in values.items() if k in known}
    for field, has_default in known.items():
        if field not in kept and not has_default:
            raise SchemaEvolutionError(
                f"class {name}: field '{field}' was added without a default, so state written "
                f"before it cannot be restored; give '{field}' a default"
            )
    return build(**kept)


def _dataclass(name: str, values: dict[str, Any]) -> Any:
    cls = _load_class(name)
    if not dataclasses.is_dataclass(cls):
        raise SchemaEvolutionError(f"class {name} is no longer a dataclass")
    missing = dataclasses.MISSING
    init = {
        f.name: f.default is not missing or f.default_factory is not missing
        for f in dataclasses.fields(cls)
        if f.init
    }
    obj = _construct(name, values, init, cls)
    for f in dataclasses.fields(cls):
        if not f.init and f.name in values:
            object.__setattr__(obj, f.name, values[f.name])
    return obj


def _namedtuple(name: str, values: dict[str, Any]) -> Any:
    cls: Any = _load_class(name)
    defaults = cls._field_defaults
    return _construct(name, values, {f: f in defaults for f in cls._fields}, cls)


def _pydantic(name: str, values: dict[str, Any]) -> Any:
    cls: Any = _load_class(name)
    known = {field: not info.is_required() for field, info in cls.model_fields.items()}
    return _construct(name, values, known, lambda **kw: cls.model_validate(kw))


def _registered_value(name: str, version: int, data: bytes) -> Any:
    cls = _load_class(name)
    serializer = _registered.get(cls)
    if serializer is None:
        raise SerializationError(
            f"state holds values of class {name} written by a registered serializer; register "
            f"it again with register_state_serializer({cls.__qualname__}, serializer) before "
            f"the job restores"
        )
    return serializer.deserialize(version, data)


_DECODERS: dict[int, Callable[[bytes], Any]] = {
    _TUPLE: lambda data: tuple(_unpackb(data, ext_hook=_ext_hook, strict_map_key=False)),
    _SET: lambda data: set(_unpack(data)),
    _FROZENSET: lambda data: frozenset(_unpack(data)),
    _BIGINT: int,
    _DATETIME: _from_datetime,
    _DATE: lambda data: dt.date.fromordinal(_DATE_FIELDS.unpack(data)[0]),
    _TIME: _from_time,
    _TIMEDELTA: _from_timedelta,
    _DECIMAL: lambda data: Decimal(data.decode()),
    _UUID: lambda data: uuid.UUID(bytes=data),
    _ENUM: lambda data: _enum(*_unpack(data)),
    _DATACLASS: lambda data: _dataclass(*_unpack(data)),
    _NAMEDTUPLE: lambda data: _namedtuple(*_unpack(data)),
    _PYDANTIC: lambda data: _pydantic(*_unpack(data)),
    _REGISTERED: lambda data: _registered_value(*_unpack(data)),
}


def _enum(name: str, value: Any) -> Any:
    return _load_class(name)(value)


def _ext_hook(code: int, data: bytes) -> Any:
    decoder = _DECODERS.get(code)
    if decoder is None:
        raise SerializationError(f"state holds an unknown extension type {code}; upgrade headwater")
    return decoder(data)
