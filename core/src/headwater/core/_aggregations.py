"""Built-in incremental window aggregations: count, sum, min, max, avg of a field.

Each is an :class:`AggregateFunction` whose accumulator is one small value (a number, the current
extreme, or a ``(sum, count)`` pair), so a window keeps no records until it fires.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from headwater.core._errors import ConfigurationError
from headwater.core._state import AggregateFunction

__all__ = ["Avg", "Count", "Field", "Max", "Min", "Sum", "field_getter"]

Field = str | int | Callable[[Any], Any] | None
"""What to aggregate: a mapping key or attribute name, a tuple index, a function, or the record."""


class _Getter:
    """Reads one field of a record (a mapping key, an attribute, or an index)."""

    __slots__ = ("field",)

    def __init__(self, field: str | int) -> None:
        self.field = field

    def __call__(self, record: Any) -> Any:
        field = self.field
        if isinstance(field, int):
            return record[field]
        if isinstance(record, Mapping):
            return record[field]
        return getattr(record, field)

    def __repr__(self) -> str:
        return f"field {self.field!r}"


def _itself(record: Any) -> Any:
    return record


def field_getter(field: Field) -> Callable[[Any], Any]:
    """A function reading ``field`` from a record (see :data:`Field`)."""
    if field is None:
        return _itself
    if isinstance(field, bool) or (not isinstance(field, str | int) and not callable(field)):
        raise ConfigurationError(
            f"window aggregation: field must be a name, an index or a function, got {field!r}"
        )
    if callable(field):
        return field
    return _Getter(field)


class Count(AggregateFunction[Any, int, int]):
    """The number of records."""

    def create_accumulator(self) -> int:
        """Zero records."""
        return 0

    def add(self, value: Any, accumulator: int) -> int:
        """One more record."""
        return accumulator + 1

    def get_result(self, accumulator: int) -> int:
        """The count."""
        return accumulator

    def merge(self, a: int, b: int) -> int:
        """Two counts added."""
        return a + b


class _OfField(AggregateFunction[Any, Any, Any]):
    """An aggregation of one field; the accumulator is ``None`` until the first record."""

    def __init__(self, field: Field = None) -> None:
        self.get = field_getter(field)

    def create_accumulator(self) -> Any:
        """Nothing seen yet."""
        return None

    def add(self, value: Any, accumulator: Any) -> Any:
        """The accumulator with the record's field folded in."""
        item = self.get(value)
        return item if accumulator is None else self.combine(accumulator, item)

    def get_result(self, accumulator: Any) -> Any:
        """The folded value."""
        return accumulator

    def merge(self, a: Any, b: Any) -> Any:
        """Two accumulators folded (sessions merging)."""
        if a is None:
            return b
        return a if b is None else self.combine(a, b)

    def combine(self, a: Any, b: Any) -> Any:
        """Fold two values (overridden per aggregation)."""
        raise NotImplementedError


class Sum(_OfField):
    """The sum of a field (``+``: ints, floats, Decimals, timedeltas keep their type)."""

    def combine(self, a: Any, b: Any) -> Any:
        """``a + b``."""
        return a + b


class Min(_OfField):
    """The smallest value of a field (anything ordered: numbers, datetimes, strings)."""

    def combine(self, a: Any, b: Any) -> Any:
        """The smaller (the earlier on ties)."""
        return b if b < a else a


class Max(_OfField):
    """The largest value of a field (anything ordered: numbers, datetimes, strings)."""

    def combine(self, a: Any, b: Any) -> Any:
        """The larger (the earlier on ties)."""
        return b if b > a else a


class Avg(AggregateFunction[Any, Any, Any]):
    """The mean of a field: ``sum / count`` (Decimals stay Decimals; ints give a float)."""

    def __init__(self, field: Field = None) -> None:
        self.get = field_getter(field)

    def create_accumulator(self) -> Any:
        """``(sum, count)`` of nothing."""
        return (0, 0)

    def add(self, value: Any, accumulator: Any) -> Any:
        """``(sum + field, count + 1)``."""
        total, count = accumulator
        item = self.get(value)
        return (item if count == 0 else total + item, count + 1)

    def get_result(self, accumulator: Any) -> Any:
        """``sum / count``."""
        total, count = accumulator
        return total / count

    def merge(self, a: Any, b: Any) -> Any:
        """Two ``(sum, count)`` pairs added."""
        if a[1] == 0:
            return b
        if b[1] == 0:
            return a
        return (a[0] + b[0], a[1] + b[1])
