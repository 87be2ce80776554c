from __future__ import annotations

import pytest
from headwater.connectors.base import (
    AvroFormat,
    CsvFormat,
    DeadLetter,
    DeadLetterOnError,
    JsonFormat,
    RawFormat,
    SkipOnError,
    TextFormat,
    format_from_setting,
)
from headwater.core import ConfigurationError, Counter, SerializationError, emit_dead_letter

SCHEMA = {
    "type": "record",
    "name": "Click",
    "fields": [{"name": "user", "type": "string"}, {"name": "n", "type": "long"}],
}


@pytest.mark.parametrize(
    ("fmt", "records"),
    [
        (RawFormat(), [b"a", b"", b"\x00\xff"]),
        (TextFormat(), ["héllo", "", "x,y"]),
        (JsonFormat(), [{"a": 1, "b": [1, 2]}, [1, "x"], None, 3.5]),
        (CsvFormat(), [["a", "b,c", 'd"e'], ["1"]]),
        (CsvFormat(fieldnames=["k", "v"], delimiter=";"), [{"k": "x", "v": "1;2"}]),
        (AvroFormat(schema=SCHEMA), [{"user": "ann", "n": 1}, {"user": "", "n": -(2**40)}]),
    ],
)
def test_round_trip(fmt: object, records: list[object]) -> None:
    payloads = fmt.serialize_batch(records)  # type: ignore[attr-defined]
    assert all(isinstance(p, bytes) for p in payloads)
    assert fmt.deserialize_batch(payloads) == records  # type: ignore[attr-defined]


BAD = {
    "text": (TextFormat, [b"ok", b"\xff\xfe", b"fine"], ["ok", "fine"]),
    "json": (JsonFormat, [b"1", b"{bad", b"[2]"], [1, [2]]),
    "csv": (
        lambda **kw: CsvFormat(fieldnames=["a", "b"], **kw),
        [b"1,2", b"only-one", b"3,4"],
        [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}],
    ),
    "avro": (
        lambda **kw: AvroFormat(schema=SCHEMA, **kw),
        [b"\x06ann\x02", b"\x06an", b"\x00\x04"],
        [{"user": "ann", "n": 1}, {"user": "", "n": 2}],
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_fail_policy_names_format_and_position(name: str) -> None:
    factory, payloads, _ = BAD[name]
    with pytest.raises(
        SerializationError, match=rf"^{name}: cannot deserialize the record at position 41"
    ):
        factory().deserialize_batch(payloads, positions=[40, 41, 42])


@pytest.mark.parametrize("name", sorted(BAD))
def test_skip_policy_counts(name: str) -> None:
    factory, payloads, good = BAD[name]
    errors = Counter()
    assert factory(on_error=SkipOnError()).deserialize_batch(payloads, errors=errors) == good
    assert errors.count == 1


@pytest.mark.parametrize("name", sorted(BAD))
def test_dead_letter_policy(name: str) -> None:
    factory, payloads, good = BAD[name]
    letters: list[DeadLetter] = []
    errors = Counter()
    fmt = factory(on_error=DeadLetterOnError(letters.append))
    assert fmt.deserialize_batch(payloads, positions=["p0", "p1", "p2"], errors=errors) == good
    assert errors.count == 1
    assert len(letters) == 1
    letter = letters[0]
    assert (letter.payload, letter.format, letter.position) == (payloads[1], name, "p1")
    assert letter.error


def test_serialize_error_names_format_and_index() -> None:
    with pytest.raises(SerializationError, match=r"^json: cannot serialize the record at index 1"):
        JsonFormat().serialize_batch([1, object()])


def test_invalid_options() -> None:
    with pytest.raises(ConfigurationError, match="delimiter"):
        CsvFormat(delimiter=";;")
    with pytest.raises(ConfigurationError, match="AvroFormat: invalid schema"):
        AvroFormat(schema={"type": "nope"})


def test_deserializer_counts_bad_payloads_in_the_metric_group() -> None:
    from headwater.core._metrics import MetricRegistry

    group = MetricRegistry().group({"operator": "source"})
    letters: list[DeadLetter] = []
    deserializer = JsonFormat(on_error=DeadLetterOnError(letters.append)).deserializer(group)
    assert deserializer.deserialize_batch([b"1", b"{bad", b"2"], positions=[7, 8, 9]) == [1, 2]
    assert group.snapshot()["numRecordsInErrors"] == 1
    assert group.counter("numRecordsInErrors") is group.counter("numRecordsInErrors")
    assert [letter.position for letter in letters] == [8]


def test_timestamped_decoding_keeps_each_value_with_its_timestamp() -> None:
    letters: list[DeadLetter] = []
    errors = Counter()
    fmt = JsonFormat(on_error=DeadLetterOnError(letters.append))
    stamps: list[int | None] = [10, 20, None]
    good = fmt.deserialize_timestamped(
        [b"1", b"2", b"3"], stamps, position=lambda i: 1 / 0, errors=errors
    )
    assert good == ([1, 2, 3], [10, 20, None])  # all good: positions are never computed
    values, kept = fmt.deserialize_timestamped(
        [b"1", b"{bad", b"3", b"nope"],
        [10, 20, 30, 40],
        position=lambda i: f"at-{i}",
        errors=errors,
    )
    assert (values, kept) == ([1, 3], [10, 30])  # the bad ones leave with their timestamps
    assert [letter.position for letter in letters] == ["at-1", "at-3"]
    assert errors.count == 2
    with pytest.raises(SerializationError, match="at-1"):
        JsonFormat().deserialize_timestamped([b"1", b"{bad"], [1, 2], position=lambda i: f"at-{i}")


def test_a_pipeline_format_can_send_bad_records_to_the_dead_letters() -> None:
    """``on_error = "dead_letter"``: the letters go to the source's stream (core's emitter);
    connector-files' tests run it end to end."""
    fmt = format_from_setting({"name": "json", "on_error": "dead_letter"}, "f [source] format")
    assert isinstance(fmt.on_error, DeadLetterOnError)
    assert fmt.on_error.collector is emit_dead_letter
    with pytest.raises(ConfigurationError, match=r"call \.dead_letters\(\) on the source's stream"):
        fmt.deserialize_batch([b"{"])  # outside a job that reads them: refused, not dropped
