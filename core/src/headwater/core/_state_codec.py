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
import threading
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
    _class_name(cls)  # fail now for classes that cannot be found again
    _registered[cls] = serializer


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
    return msgpack.unpackb(data, ext_hook=_ext_hook, strict_map_key=False, raw=False)


# -- encoding --------------------------------------------------------------------------------


class _Packers(threading.local):
    """Reusable packers per thread, one per nesting level.

    Extension payloads pack their parts while the outer value is being packed.
    """

    def __init__(self) -> None:
        self.free: list[msgpack.Packer] = []


_packers = _Packers()


def _pack(value: Any) -> bytes:
    free = _packers.free
    packer = (
        free.pop()
        if free
        else msgpack.Packer(default=_default, strict_types=True, use_bin_type=True)
    )
    try:
        data: bytes = packer.pack(value)
    except BaseException:
        packer.reset()
        raise
    free.append(packer)
    return data


def _class_name(cls: type) -> str:
    qualname = cls.__qualname__
    if "<locals>" in qualname:
        raise StateValueError(
            f"{qualname} is defined inside a function; state values of a class are restored by "
            f"importing the class, so define {cls.__name__} at module level"
        )
    return f"{cls.__module__}:{qualname}"


def _tz(tz: dt.tzinfo | None) -> Any:
    if tz is None:
        return None
    if isinstance(tz, ZoneInfo):
        return tz.key
    if isinstance(tz, dt.timezone):
        offset = tz.utcoffset(None)
        name = tz.tzname(None)
        default_name = dt.timezone(offset).tzname(None)
        return [
            offset.days * 86400 + offset.seconds,
            offset.microseconds,
            name if name != default_name else None,
        ]
    raise StateValueError(
        f"time zone {tz!r} ({type(tz).__name__}) is not supported in state: use "
        f"datetime.timezone or zoneinfo.ZoneInfo"
    )


def _fields(obj: Any, names: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in names}


def _default(obj: Any) -> msgpack.ExtType:
    cls = type(obj)
    serializer = _registered.get(cls)
    if serializer is not None:
        payload = [_class_name(cls), serializer.version, serializer.serialize(obj)]
        return msgpack.ExtType(_REGISTERED, _pack(payload))
    if cls is tuple:
        return msgpack.ExtType(_TUPLE, _pack(list(obj)))
    if cls is set:
        return msgpack.ExtType(_SET, _pack(list(obj)))
    if cls is frozenset:
        return msgpack.ExtType(_FROZENSET, _pack(list(obj)))
    if cls is int:  # beyond 64 bits (msgpack packs the others natively)
        return msgpack.ExtType(_BIGINT, str(obj).encode())
    if cls is dt.datetime:
        fields = [obj.year, obj.month, obj.day, obj.hour, obj.minute, obj.second, obj.microsecond]
        return msgpack.ExtType(_DATETIME, _pack([*fields, _tz(obj.tzinfo), obj.fold]))
    if cls is dt.date:
        return msgpack.ExtType(_DATE, _pack(obj.toordinal()))
    if cls is dt.time:
        fields = [obj.hour, obj.minute, obj.second, obj.microsecond]
        return msgpack.ExtType(_TIME, _pack([*fields, _tz(obj.tzinfo), obj.fold]))
    if cls is dt.timedelta:
        return msgpack.ExtType(_TIMEDELTA, _pack([obj.days, obj.seconds, obj.microseconds]))
    if cls is Decimal:
        return msgpack.ExtType(_DECIMAL, str(obj).encode())
    if cls is uuid.UUID:
        return msgpack.ExtType(_UUID, obj.bytes)
    if isinstance(obj, enum.Enum):
        return msgpack.ExtType(_ENUM, _pack([_class_name(cls), obj.value]))
    if dataclasses.is_dataclass(obj):
        names = [f.name for f in dataclasses.fields(obj)]
        return msgpack.ExtType(_DATACLASS, _pack([_class_name(cls), _fields(obj, names)]))
    if isinstance(obj, tuple) and hasattr(cls, "_fields"):
        return msgpack.ExtType(_NAMEDTUPLE, _pack([_class_name(cls), _fields(obj, cls._fields)]))
    model_fields = getattr(cls, "model_fields", None)
    if isinstance(model_fields, dict) and hasattr(cls, "model_validate"):
        return msgpack.ExtType(_PYDANTIC, _pack([_class_name(cls), _fields(obj, model_fields)]))
    raise StateValueError(
        f"values of type {cls.__module__}.{cls.__qualname__} are not supported in state; "
        f"register a serializer with headwater.core.register_state_serializer("
        f"{cls.__qualname__}, serializer), or name one in the state descriptor (serializer=...)"
    )


# -- decoding --------------------------------------------------------------------------------


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, strict_map_key=False, raw=False)


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


def _from_tz(data: Any) -> dt.tzinfo | None:
    if data is None:
        return None
    if isinstance(data, str):
        return ZoneInfo(data)
    seconds, micros, name = data
    offset = dt.timedelta(seconds=seconds, microseconds=micros)
    return dt.timezone(offset, name) if name is not None else dt.timezone(offset)


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


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _TUPLE:
        return tuple(_unpack(data))
    if code == _SET:
        return set(_unpack(data))
    if code == _FROZENSET:
        return frozenset(_unpack(data))
    if code == _BIGINT:
        return int(data)
    if code == _DATETIME:
        y, mo, d, h, mi, s, us, tz, fold = _unpack(data)
        return dt.datetime(y, mo, d, h, mi, s, us, tzinfo=_from_tz(tz), fold=fold)
    if code == _DATE:
        return dt.date.fromordinal(_unpack(data))
    if code == _TIME:
        h, mi, s, us, tz, fold = _unpack(data)
        return dt.time(h, mi, s, us, tzinfo=_from_tz(tz), fold=fold)
    if code == _TIMEDELTA:
        days, seconds, micros = _unpack(data)
        return dt.timedelta(days=days, seconds=seconds, microseconds=micros)
    if code == _DECIMAL:
        return Decimal(data.decode())
    if code == _UUID:
        return uuid.UUID(bytes=data)
    if code == _ENUM:
        name, value = _unpack(data)
        return _load_class(name)(value)
    if code == _DATACLASS:
        return _dataclass(*_unpack(data))
    if code == _NAMEDTUPLE:
        return _namedtuple(*_unpack(data))
    if code == _PYDANTIC:
        return _pydantic(*_unpack(data))
    if code == _REGISTERED:
        return _registered_value(*_unpack(data))
    raise SerializationError(f"state holds an unknown extension type {code}; upgrade headwater")
