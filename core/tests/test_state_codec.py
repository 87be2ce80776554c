"""The state codec: every supported value comes back with its type, and what it cannot write fails
when written to state (naming operator, state and type); old JSON checkpoints still restore."""

import dataclasses
import datetime as dt
import enum
import json
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pydantic
import pytest
from headwater.core import (
    CheckpointConfig,
    CollectSink,
    DataGenSource,
    JobFailedError,
    JsonSerializer,
    KeyedProcessFunction,
    ListStateDescriptor,
    MapStateDescriptor,
    ProcessFunction,
    StreamEnvironment,
    TumblingEventTimeWindows,
    ValueStateDescriptor,
    WatermarkStrategy,
    _state,
    _state_codec,
    register_state_serializer,
)
from headwater.core._errors import SerializationError
from headwater.core._state_codec import (
    SchemaEvolutionError,
    StateValueError,
    decode_state,
    encode_state,
)
from headwater.core._state_files import write_chunks_to_bytes

FIXTURES = Path(__file__).parent / "fixtures"


class Color(enum.Enum):
    RED = "red"
    BLUE = 2


class Level(enum.IntEnum):
    LOW = 1


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: tuple[int, ...]


class Pair(NamedTuple):
    left: Any
    right: Any = None


class Order(pydantic.BaseModel):
    id: int
    at: dt.datetime
    amount: Decimal
    tags: tuple[str, ...] = ()


class Money:
    """A class the codec does not know, with a registered serializer."""

    def __init__(self, cents: int) -> None:
        self.cents = cents

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and other.cents == self.cents


register_state_serializer(
    Money, JsonSerializer(version=1, to_json=lambda m: m.cents, from_json=lambda _v, c: Money(c))
)

PARIS = ZoneInfo("Europe/Paris")
VALUES: list[Any] = [
    None,
    True,
    0,
    -(2**63),
    2**64 + 5,
    -(2**90),
    1.5,
    float("inf"),
    "text",
    b"\x00bytes",
    [1, [2, (3, 4)]],
    (1, "a"),
    ((1, "a"), 2),
    (),
    {"a": 1},
    {(1, "a"): {2: 3}, 4: frozenset({1}), None: [1]},
    {1, 2, 3},
    frozenset({"x"}),
    dt.datetime(2024, 3, 31, 2, 30, tzinfo=PARIS),
    dt.datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York")),
    dt.datetime(
        2024, 1, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30), "X")
    ),
    dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC),
    dt.datetime(2024, 1, 1, 12),  # noqa: DTZ001 - naive datetimes round-trip too
    dt.date(1999, 12, 31),
    dt.time(23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.time(1, 2),
    dt.timedelta(days=-3, seconds=5, microseconds=7),
    Decimal("12.3400"),
    Decimal("-Infinity"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Color.RED,
    Color.BLUE,
    Level.LOW,
    Point(1, (2, 3)),
    Pair(Point(0, ()), {"k": (1,)}),
    Order(id=1, at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC), amount=Decimal("9.99"), tags=("a",)),
    Money(250),
    [{"nested": (Decimal("1"), {dt.date(2020, 1, 1)})}],
]


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and a != a:
        return b != b
    if isinstance(a, dt.datetime | dt.time):
        return (
            a == b and a.tzinfo == b.tzinfo and a.fold == b.fold and a.utcoffset() == b.utcoffset()
        )
    return bool(a == b)


@pytest.mark.parametrize(
    "value", VALUES, ids=[f"{i}-{type(v).__name__}" for i, v in enumerate(VALUES)]
)
def test_values_round_trip_with_their_types(value: Any) -> None:
    assert same(decode_state(encode_state(value)), value)


def test_unsupported_values_name_the_type_and_how_to_register() -> None:
    @dataclasses.dataclass
    class Local:
        x: int

    with pytest.raises(StateValueError, match="register_state_serializer"):
        encode_state(object())
    with pytest.raises(StateValueError, match="module level"):
        encode_state(Local(1))  # would not be importable at restore


def swap_class(monkeypatch: pytest.MonkeyPatch, name: str, cls: type) -> None:
    """Replace this module's class ``name`` (as a later release of the job would)."""
    cls.__qualname__ = name
    cls.__module__ = __name__
    monkeypatch.setattr(sys.modules[__name__], name, cls)
    monkeypatch.setattr(_state_codec, "_classes", {})


def test_dataclass_schema_evolution(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode_state([Point(1, (2,))])

    @dataclasses.dataclass(frozen=True)
    class Added:  # y removed, z added with a default
        x: int
        z: str = "default"

    swap_class(monkeypatch, "Point", Added)
    (restored,) = decode_state(data)
    assert (type(restored), restored.x, restored.z) == (Added, 1, "default")

    @dataclasses.dataclass(frozen=True)
    class Required:
        x: int
        w: int  # no default: state written before it cannot be restored

    swap_class(monkeypatch, "Point", Required)
    with pytest.raises(SchemaEvolutionError, match="field 'w'"):
        decode_state(data)


def test_pydantic_and_namedtuple_schema_evolution(monkeypatch: pytest.MonkeyPatch) -> None:
    order = encode_state(Order(id=1, at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), amount=Decimal(1)))
    pair = encode_state(Pair(1, 2))

    class OrderV2(pydantic.BaseModel):
        id: int
        amount: Decimal
        note: str = "none"

    class PairV2(NamedTuple):
        left: Any
        extra: int = 7

    swap_class(monkeypatch, "Order", OrderV2)
    swap_class(monkeypatch, "Pair", PairV2)
    assert decode_state(order) == OrderV2(id=1, amount=Decimal(1), note="none")
    assert decode_state(pair) == PairV2(1, 7)

    class OrderV3(pydantic.BaseModel):
        id: int
        customer: str

    swap_class(monkeypatch, "Order", OrderV3)
    with pytest.raises(SchemaEvolutionError, match="field 'customer'"):
        decode_state(order)


def test_incompatible_change_fails_the_restore_naming_state_and_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    backend = _state.KeyedStateBackend(max_parallelism=8, operator="KeyedProcess")
    backend.current_key = ("k", 1)
    backend.get_state(ValueStateDescriptor("position")).update(Point(1, (2,)))
    snapshot = backend.snapshot()

    @dataclasses.dataclass(frozen=True)
    class Required:
        x: int
        w: int

    swap_class(monkeypatch, "Point", Required)
    restored = _state.KeyedStateBackend(max_parallelism=8, operator="KeyedProcess")
    restored.restore_files([[write_chunks_to_bytes(snapshot)]])
    with pytest.raises(SerializationError, match=r"state 'position'.*field 'w'"):
        restored.get_state(ValueStateDescriptor("position"))


class Remember(KeyedProcessFunction[Any, Any]):
    def __init__(self, bad: Any = None) -> None:
        self.bad = bad

    def open(self, context: Any) -> None:
        self.value = context.get_state(ValueStateDescriptor("last"))
        self.items = context.get_state(ListStateDescriptor("items"))
        self.by = context.get_state(MapStateDescriptor("by"))

    def process_element(self, value: Any, ctx: Any) -> Any:
        if value[1] == "bad":
            self.value.update(self.bad)
        self.value.update(value)
        self.items.add(value[1])
        self.by.put(value[1], (value, ctx.current_key))
        yield (ctx.current_key, self.value.value(), self.items.get(), self.by.items())


def test_unsupported_value_fails_when_written_naming_operator_state_and_type() -> None:
    env = StreamEnvironment()
    sink: CollectSink[Any] = CollectSink()
    (
        env.from_collection([(1, "ok"), (1, "bad")])
        .key_by(lambda r: r[0])
        .process(Remember(bad=Exception("no codec for me")), name="Remember")
        .sink_to(sink)
    )
    with pytest.raises(JobFailedError) as failure:
        env.execute("unsupported")
    message = str(failure.value)
    assert "operator 'Remember'" in message and "state 'last'" in message
    assert "builtins.Exception" in message and "register_state_serializer" in message


class Buffer(ProcessFunction[Any, Any]):
    def open(self, context: Any) -> None:
        self.buffer = context.get_list_state("buffer")

    def process_element(self, value: Any) -> Any:
        self.buffer.add(value)
        yield value


def test_unsupported_value_in_operator_list_state_fails_when_added() -> None:
    env = StreamEnvironment()
    env.from_collection([(1, "ok"), (2, object())]).process(Buffer(), name="Buffer").sink_to(
        CollectSink()
    )
    with pytest.raises(JobFailedError) as failure:
        env.execute("unsupported-list")
    message = str(failure.value)
    assert "operator 'Buffer'" in message and "list state 'buffer'" in message
    assert "builtins.object" in message


def test_unsupported_value_in_a_window_fails_when_the_window_opens() -> None:
    env = StreamEnvironment()  # no checkpoints: the value must be refused when it is added
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda r, _t: r[0]
    )
    (
        env.from_source(DataGenSource(lambda i, _rng: (i, object()), count=10), strategy)
        .key_by(lambda r: r[0] % 2)
        .window(TumblingEventTimeWindows.of(dt.timedelta(seconds=1)))
        .reduce(lambda a, _b: a, name="Windows")
        .sink_to(CollectSink())
    )
    with pytest.raises(JobFailedError) as failure:
        env.execute("unsupported-window")
    message = str(failure.value)
    assert "operator 'Windows'" in message and "window contents" in message
    assert "builtins.object" in message


class Celsius:
    def __init__(self, degrees: float) -> None:
        self.degrees = degrees


CELSIUS = JsonSerializer(version=3, to_json=lambda c: c.degrees, from_json=lambda _v, d: Celsius(d))


def test_a_descriptor_names_its_own_serializer() -> None:
    backend = _state.KeyedStateBackend(max_parallelism=8)
    value = backend.get_state(ValueStateDescriptor("t", serializer=CELSIUS))
    items = backend.get_state(ListStateDescriptor("ts", serializer=CELSIUS))
    mapping = backend.get_state(MapStateDescriptor("m", serializer=CELSIUS))
    backend.current_key = "k"
    value.update(Celsius(21.5))
    items.add(Celsius(1.0))
    mapping.put((1, "a"), Celsius(2.0))
    restored = _state.KeyedStateBackend(max_parallelism=8)
    restored.restore_files([[write_chunks_to_bytes(backend.snapshot())]])
    restored.current_key = "k"
    assert restored.get_state(ValueStateDescriptor("t", serializer=CELSIUS)).value().degrees == 21.5
    assert [
        c.degrees for c in restored.get_state(ListStateDescriptor("ts", serializer=CELSIUS)).get()
    ] == [1.0]
    ((key, celsius),) = restored.get_state(MapStateDescriptor("m", serializer=CELSIUS)).items()
    assert key == (1, "a") and celsius.degrees == 2.0


def load_json_state_job() -> Any:
    import importlib.util

    path = FIXTURES / "make_json_state_savepoint.py"
    spec = importlib.util.spec_from_file_location("make_json_state_savepoint", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_json_state_checkpoint_of_release_0_1_restores() -> None:
    """The fixture was written by release 0.1 (format 1, JSON state) before the codec existed."""
    job = load_json_state_job()
    savepoint = FIXTURES / "json-state-0.1.0"
    assert json.loads((savepoint / "_metadata").read_text())["format_version"] == 1
    env = StreamEnvironment(
        parallelism=3, checkpointing=CheckpointConfig(restore_from=str(savepoint))
    )
    totals: CollectSink[Any] = CollectSink()
    tallies: CollectSink[Any] = CollectSink()
    windows: CollectSink[Any] = CollectSink()
    job.build(env, totals, tallies, windows)
    env.execute("json-state-restored")
    keys = range(job.KEYS)
    # reduce: the restored running sums end at the sums over the whole input.
    final = {k: 0 for k in keys}
    for record in totals.results():
        final[tuple(record[0])[1]] = max(final[tuple(record[0])[1]], record[1])
    assert final == {k: sum(range(k, job.COUNT, job.KEYS)) for k in keys}
    # keyed process: value, list and map state and timers came back under tuple keys.
    last_tally = {}
    for key, timestamp, count, last, residues in tallies.results():
        assert isinstance(key, tuple)
        last_tally[key] = (timestamp, count, last, residues)
    for k in keys:
        indices = list(range(k, job.COUNT, job.KEYS))
        timestamp, count, last, residues = last_tally[("k", k)]
        # (the two splits interleave, so which three indices came last depends on their pace)
        assert count == len(indices) and len(last) == 3 and set(last) <= set(indices)
        assert residues == {str(r): len([i for i in indices if i % 3 == r]) for r in range(3)}
    # windows: every window fired once with the sum of all its records (restored part included);
    # only the first window of each key had fired before the savepoint was taken.
    fired = {(tuple(r[0])[1], r[2] // 5000): r[1] for r in windows.results()}
    assert len(fired) == len(windows.results())
    expected: dict[tuple[int, int], int] = {}
    for i in range(job.COUNT):
        window = (i % job.KEYS, i * 10 // 5000)
        expected[window] = expected.get(window, 0) + i
    assert set(expected) - set(fired) == {(k, 0) for k in keys}
    assert fired == {w: n for w, n in expected.items() if w in fired}
