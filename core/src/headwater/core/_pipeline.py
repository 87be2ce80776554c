"""Declarative pipelines: a TOML file names a source, steps and a sink; ``headwater run`` runs it.

A pipeline file::

    [job]
    name = "big orders"        # optional
    parallelism = 2            # optional

    [checkpointing]            # optional
    interval = "5s"            # durations: "250ms", "5s", "2m", "1h", ISO 8601 "PT5S"
    storage = "checkpoints"    # relative to the pipeline file
    restore = "latest"         # or a checkpoint/savepoint path

    [source]
    connector = "kafka"        # an installed connector's identifier (headwater connectors)
    format = "json"            # other keys are the connector's settings
    [source.options]           # the connector's options model, validated by the connector
    bootstrap_servers = "localhost:9092"
    topics = ["orders"]

    [[steps]]                  # optional, in order: map, filter, flat_map, or key_by + reduce
    filter = "orders:is_big"   # a function, as module:name (the file's directory is importable)
    # key_by may also be followed by a window step:
    # window = { tumbling = "10s", aggregate = "count" }

    [sink]
    connector = "jdbc"
    [sink.options]
    url = "sqlite:///orders.db"
    table = "orders"

Connectors take part by setting :attr:`ConnectorSpec.pipeline_source` / ``pipeline_sink``: a
factory that builds the source or sink from a :class:`PipelineEndpoint`. Every error names the
file and the key it is about.
"""

from __future__ import annotations

import dataclasses
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.core._config import CheckpointConfig
from headwater.core._connectors import InstalledConnector, installed_connectors
from headwater.core._datastream import DataStream, KeyedStream
from headwater.core._environment import StreamEnvironment
from headwater.core._errors import ConfigurationError
from headwater.core._settings import parse_duration as _parse_duration
from headwater.core._settings import suggest
from headwater.core._state import AggregateFunction
from headwater.core._watermarks import WatermarkStrategy
from headwater.core._windows import (
    EventTimeSessionWindows,
    ProcessingTimeSessionWindows,
    SlidingEventTimeWindows,
    SlidingProcessingTimeWindows,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
    WindowAssigner,
    WindowResult,
)

if TYPE_CHECKING:
    from headwater.core._runtime._executor import JobResult

__all__ = ["Pipeline", "PipelineEndpoint", "load_pipeline"]

_STEPS = ("map", "filter", "flat_map", "key_by", "reduce", "window")
_KEYED_STEPS = ("reduce", "window")
_WINDOW_KINDS = ("tumbling", "sliding", "session")
_WINDOW_KEYS = {*_WINDOW_KINDS, "slide", "aggregate", "field", "time", "timestamp", "max_delay"}
_BUILTIN_AGGREGATES = ("count", "sum", "min", "max", "avg")
_JOB_KEYS = {"name", "parallelism"}
_CHECKPOINTING_KEYS = {"interval", "storage", "restore", "timeout"}
_WHERE_KEYS_BELONG = {
    **{key: "under [job]" for key in _JOB_KEYS},
    **{key: "under [checkpointing]" for key in _CHECKPOINTING_KEYS},
    "connector": "under [source] or [sink]",
    "options": "under [source] or [sink]",
}
"""Keys a user may put at the wrong level, and where they belong."""


@dataclass(frozen=True)
class PipelineEndpoint:
    """The ``[source]`` or ``[sink]`` table of a pipeline, as a connector's factory gets it.

    Attributes:
        role: ``"source"`` or ``"sink"``.
        connector: the connector's identifier.
        options: the ``options`` table (for the connector's options model).
        settings: every other key of the table (``format``, a topic, function references...).
        file: the pipeline file, for error messages.
        option_names: the connector's option names for this role (to tell a user who put an
            option beside ``connector`` that it belongs under ``options``).
    """

    role: str
    connector: str
    options: Mapping[str, Any]
    settings: Mapping[str, Any]
    file: Path
    option_names: frozenset[str] = field(default=frozenset())

    def where(self, key: str | None = None) -> str:
        """``file [role]`` or ``file [role] key``: where an error is, for messages."""
        at = f"{self.file} [{self.role}]"
        return at if key is None else f"{at} {key}"

    def check_settings(self, allowed: set[str], options: set[str] | None = None) -> None:
        """Refuse settings (keys besides ``connector`` and ``options``) not in ``allowed``.

        With ``options`` (for connectors without an options model), refuse unknown options too.
        A key at the wrong level is told where it belongs; another gets the closest allowed key.
        """
        names = self.option_names | (options or set())
        section = f"[{self.role}.options]"
        _unknown(
            self.settings,
            allowed | {"connector", "options"},
            self.where(),
            {name: f"under {section} (an option of {self.connector})" for name in names},
        )
        if options is not None:
            _unknown(
                self.options,
                options,
                self.where("options"),
                {
                    name: f"at the [{self.role}] level, beside 'connector' (a setting, not an option)"
                    for name in allowed
                },
            )

    def function(self, key: str) -> Callable[..., Any] | None:
        """The function a ``module:name`` setting refers to, or ``None`` if the key is absent."""
        reference = self.settings.get(key)
        if reference is None:
            return None
        return resolve_function(reference, self.where(key))


@dataclass(frozen=True)
class Pipeline:
    """A loaded pipeline: the environment with its job built, and the job's name."""

    env: StreamEnvironment
    name: str

    def run(self) -> JobResult:
        """Execute the job (see :meth:`StreamEnvironment.execute`)."""
        return self.env.execute(self.name)


def resolve_function(reference: Any, where: str) -> Callable[..., Any]:
    """Import ``module:name`` (a dotted name after the colon reaches into the module)."""
    target = _import(reference, where)
    if not callable(target):
        raise ConfigurationError(f"{where}: {reference!r} is not callable")
    return target  # type: ignore[no-any-return]


def _import(reference: Any, where: str) -> Any:
    """The object ``module:name`` names."""
    if not isinstance(reference, str) or reference.count(":") != 1:
        raise ConfigurationError(f"{where}: expected 'module:function', got {reference!r}")
    module_name, _, attribute = reference.partition(":")
    try:
        target: Any = import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"{where}: cannot import {reference!r}: {exc}") from exc
    return target


def parse_duration(value: Any, where: str) -> timedelta:
    """``"250ms"``, ``"5s"``, ``"2m"``, ``"1h"``, ISO 8601 ``"PT5S"`` or a number of seconds."""
    return _parse_duration(value, where, seconds_allowed=True)


def _table(document: Mapping[str, Any], key: str, file: Path, *, required: bool) -> dict[str, Any]:
    value = document.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        problem = "is missing" if value is None else "must be a table"
        raise ConfigurationError(f"{file}: [{key}] {problem}")
    return value


def _unknown(
    table: Mapping[str, Any],
    allowed: set[str],
    where: str,
    elsewhere: Mapping[str, str] = _WHERE_KEYS_BELONG,
) -> None:
    """Refuse keys not in ``allowed``: each with where it belongs or the closest allowed key."""
    unknown = sorted(set(table) - allowed)
    if not unknown:
        return
    described = [
        f"'{key}' belongs {elsewhere[key]}"
        if key in elsewhere
        else f"'{key}'{suggest(key, allowed)}"
        for key in unknown
    ]
    raise ConfigurationError(
        f"{where}: unknown key(s): {'; '.join(described)} (allowed here: "
        f"{', '.join(sorted(allowed))})"
    )


def _option_names(model: Any) -> frozenset[str]:
    """The field names of an options model (a pydantic model or a dataclass)."""
    if dataclasses.is_dataclass(model):
        return frozenset(f.name for f in dataclasses.fields(model))
    fields = getattr(model, "model_fields", None)
    return frozenset(fields) if isinstance(fields, Mapping) else frozenset()


def _endpoint(
    document: Mapping[str, Any], role: str, file: Path, installed: Mapping[str, InstalledConnector]
) -> Any:
    table = _table(document, role, file, required=True)
    identifier = table.get("connector")
    if not isinstance(identifier, str):
        raise ConfigurationError(f"{file} [{role}] connector: expected a connector's identifier")
    options = table.get("options", {})
    if not isinstance(options, dict):
        raise ConfigurationError(f"{file} [{role}] options: must be a table")
    settings = {k: v for k, v in table.items() if k not in ("connector", "options")}
    connector = installed.get(identifier)
    if connector is None or connector.spec is None:
        loaded = sorted(c for c, i in installed.items() if i.spec is not None)
        why = (
            f"is not installed{suggest(identifier, loaded)}"
            if connector is None
            else f"failed to load: {connector.error}"
        )
        raise ConfigurationError(
            f"{file} [{role}] connector: connector {identifier!r} {why} "
            f"(installed: {', '.join(loaded)})"
        )
    names = _option_names(connector.spec.options.get(role))
    endpoint = PipelineEndpoint(role, identifier, options, settings, file, names)
    factory = getattr(connector.spec, f"pipeline_{role}")
    if factory is None:
        raise ConfigurationError(
            f"{endpoint.where('connector')}: connector {identifier!r} cannot be a pipeline {role}"
        )
    try:
        return factory(endpoint)
    except ConfigurationError as exc:
        if str(exc).startswith(str(file)):
            raise  # the factory named the key itself
        raise ConfigurationError(f"{endpoint.where('options')} ({identifier}): {exc}") from exc
    except (TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigurationError(
            f"{endpoint.where()} ({identifier}): {_describe(exc, endpoint)}"
        ) from exc


def _describe(exc: Exception, endpoint: PipelineEndpoint) -> str:
    """The error without the offending values (an option may be a secret).

    An unknown option gets the closest option name, or where connector settings go.
    """
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    lines = []
    for e in errors(include_url=False, include_input=False):
        key = ".".join(str(p) for p in e["loc"])
        line = f"options.{key}: {e['msg']}"
        if e.get("type") == "extra_forbidden":
            hint = suggest(key, endpoint.option_names)
            line += hint or (
                f" (not an option of {endpoint.connector}; its other settings go at the "
                f"[{endpoint.role}] level, beside 'connector')"
            )
        lines.append(line)
    return "; ".join(lines)


def _environment(document: Mapping[str, Any], file: Path) -> tuple[StreamEnvironment, str]:
    job = _table(document, "job", file, required=False)
    _unknown(job, _JOB_KEYS, f"{file} [job]")
    name = job.get("name", file.stem)
    parallelism = job.get("parallelism", 1)
    if not isinstance(parallelism, int) or isinstance(parallelism, bool) or parallelism < 1:
        raise ConfigurationError(
            f"{file} [job] parallelism: expected an integer >= 1, got {parallelism!r}"
        )
    table = _table(document, "checkpointing", file, required=False)
    _unknown(table, _CHECKPOINTING_KEYS, f"{file} [checkpointing]")
    settings: dict[str, Any] = {}
    for key in ("interval", "timeout"):
        if key in table:
            settings[key] = parse_duration(table[key], f"{file} [checkpointing] {key}")
    if "storage" in table:
        settings["storage"] = file.parent / str(table["storage"])
    if "restore" in table:
        restore = str(table["restore"])
        settings["restore_from"] = restore if restore == "latest" else file.parent / restore
    return StreamEnvironment(
        parallelism=parallelism, checkpointing=CheckpointConfig(**settings)
    ), str(name)


def _apply_steps(stream: DataStream[Any], steps: Any, file: Path) -> DataStream[Any]:
    if not isinstance(steps, list):
        raise ConfigurationError(f"{file}: [[steps]] must be an array of tables")
    keyed: KeyedStream[Any, Any] | None = None
    for index, step in enumerate(steps):
        where = f"{file} [[steps]] #{index + 1}"
        kinds = [k for k in _STEPS if k in step] if isinstance(step, dict) else []
        if not isinstance(step, dict) or len(kinds) != 1:
            raise ConfigurationError(f"{where}: expected exactly one of {', '.join(_STEPS)}")
        kind = kinds[0]
        _unknown(step, {kind, "name"}, where)
        if keyed is None and kind in _KEYED_STEPS:
            raise ConfigurationError(f"{where}: {kind} must follow a key_by step")
        if keyed is not None and kind not in _KEYED_STEPS:
            raise ConfigurationError(
                f"{where}: a key_by step is followed by reduce or window, not {kind}"
            )
        if kind == "window":
            assert keyed is not None
            stream, keyed = (
                _window(keyed, step["window"], f"{where} window", step.get("name")),
                None,
            )
            continue
        function = resolve_function(step[kind], f"{where} {kind}")
        name = str(step.get("name", f"{kind} {step[kind]}"))
        if kind == "key_by":
            keyed = stream.key_by(function)
        elif keyed is not None:
            stream, keyed = keyed.reduce(function, name=name), None
        else:
            stream = getattr(stream, kind)(function, name=name)
    if keyed is not None:
        raise ConfigurationError(
            f"{file} [[steps]]: the last key_by step needs a reduce or window step"
        )
    return stream


def _window_table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigurationError(
            f'{where}: expected a table such as {{ tumbling = "10s", aggregate = "count" }}'
        )
    _unknown(value, _WINDOW_KEYS, where)
    kinds = [k for k in _WINDOW_KINDS if k in value]
    if len(kinds) != 1:
        raise ConfigurationError(f"{where}: expected exactly one of {', '.join(_WINDOW_KINDS)}")
    if "slide" in value and kinds[0] != "sliding":
        raise ConfigurationError(f"{where} slide: only for sliding windows")
    time = value.get("time", "event")
    if time not in ("event", "processing"):
        raise ConfigurationError(f"{where} time: expected 'event' or 'processing', got {time!r}")
    if time == "processing" and ("timestamp" in value or "max_delay" in value):
        raise ConfigurationError(
            f"{where}: timestamp and max_delay are for event-time windows (time = 'event')"
        )
    return value


def _assigner(table: Mapping[str, Any], where: str) -> WindowAssigner:
    event = table.get("time", "event") == "event"
    if "tumbling" in table:
        size = parse_duration(table["tumbling"], f"{where} tumbling")
        tumbling = TumblingEventTimeWindows if event else TumblingProcessingTimeWindows
        return tumbling.of(size)
    if "sliding" in table:
        if "slide" not in table:
            raise ConfigurationError(f"{where}: a sliding window needs slide (a duration)")
        size = parse_duration(table["sliding"], f"{where} sliding")
        slide = parse_duration(table["slide"], f"{where} slide")
        sliding = SlidingEventTimeWindows if event else SlidingProcessingTimeWindows
        return sliding.of(size, slide)
    gap = parse_duration(table["session"], f"{where} session")
    session = EventTimeSessionWindows if event else ProcessingTimeSessionWindows
    return session.with_gap(gap)


def _window(
    keyed: KeyedStream[Any, Any], value: Any, where: str, name: Any
) -> DataStream[dict[str, Any]]:
    """A window step: its results as rows ``{"key", "start", "end", "value"}``."""
    table = _window_table(value, where)
    windowed = keyed.window(_assigner(table, where))
    aggregate = table.get("aggregate")
    field = table.get("field")
    label = str(name) if name is not None else f"window {aggregate}"
    results: DataStream[WindowResult[Any, Any]]
    if aggregate in _BUILTIN_AGGREGATES:
        if aggregate == "count":
            if field is not None:
                raise ConfigurationError(f"{where} field: count takes no field")
            results = windowed.count(name=label)
        else:
            results = getattr(windowed, aggregate)(field, name=label)
    elif isinstance(aggregate, str) and ":" in aggregate:
        if field is not None:
            raise ConfigurationError(
                f"{where} field: only for {', '.join(_BUILTIN_AGGREGATES[1:])}"
            )
        target = _import(aggregate, f"{where} aggregate")
        if isinstance(target, type) and issubclass(target, AggregateFunction):
            target = target()
        if isinstance(target, AggregateFunction):
            results = windowed.aggregate(target, name=label, with_window=True)
        elif callable(target):
            results = windowed.reduce(target, name=label, with_window=True)
        else:
            raise ConfigurationError(
                f"{where} aggregate: {aggregate!r} is neither an AggregateFunction nor a function"
            )
    else:
        raise ConfigurationError(
            f"{where} aggregate: expected one of {', '.join(_BUILTIN_AGGREGATES)} or "
            f"'module:function', got {aggregate!r}"
        )
    return results.map(WindowResult.as_dict, name=f"{label} rows")


def _event_time(steps: Any, file: Path) -> WatermarkStrategy[Any] | None:
    """The source's watermark strategy when an event-time window step needs one.

    The first event-time window step's ``timestamp`` (a function returning a datetime or epoch
    milliseconds; default: the source's own timestamps) and ``max_delay`` (how much out of order
    records arrive; default 0) apply to the source.
    """
    if not isinstance(steps, list):
        return None
    for index, step in enumerate(steps):
        table = step.get("window") if isinstance(step, dict) else None
        if not isinstance(table, dict) or table.get("time", "event") != "event":
            continue
        where = f"{file} [[steps]] #{index + 1} window"
        delay = parse_duration(table.get("max_delay", 0), f"{where} max_delay")
        strategy: WatermarkStrategy[Any] = WatermarkStrategy.for_bounded_out_of_orderness(delay)
        if "timestamp" in table:
            reader = resolve_function(table["timestamp"], f"{where} timestamp")
            strategy = strategy.with_timestamp_assigner(_TimestampOf(reader, f"{where} timestamp"))
        return strategy
    return None


class _TimestampOf:
    """Epoch milliseconds from a function returning a datetime (naive means UTC) or an int."""

    def __init__(self, reader: Callable[[Any], Any], where: str) -> None:
        self.reader = reader
        self.where = where

    def __call__(self, record: Any, _source_timestamp: int | None) -> int:
        value = self.reader(record)
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return int(value.timestamp() * 1000)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigurationError(
            f"{self.where}: expected a datetime or epoch milliseconds, got {type(value).__name__}"
        )


def load_pipeline(path: str | Path) -> Pipeline:
    """Read a pipeline file and build its job; raises :class:`ConfigurationError` naming the key."""
    file = Path(path)
    try:
        document = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"{file}: cannot read the pipeline file: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{file}: not valid TOML: {exc}") from exc
    _unknown(document, {"job", "checkpointing", "source", "steps", "sink"}, str(file))
    # Step and connector functions live next to the pipeline file.
    directory = str(file.parent.resolve())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    env, name = _environment(document, file)
    # Loads every connector's entry point: once for both ends.
    installed = {c.identifier: c for c in installed_connectors()}
    source = _endpoint(document, "source", file, installed)
    sink = _endpoint(document, "sink", file, installed)
    source_name = f"{document['source']['connector']} source"
    steps = document.get("steps", [])
    stream = _apply_steps(
        env.from_source(source, _event_time(steps, file), name=source_name), steps, file
    )
    stream.sink_to(sink, name=f"{document['sink']['connector']} sink")
    return Pipeline(env, name)
