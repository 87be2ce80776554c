"""Checks of user settings, shared by every component that takes them.

Each check names the owner and the setting, says what was expected and what was given, and
returns the value normalized (a duration string becomes a ``timedelta``). One duration syntax is
accepted everywhere: a ``timedelta``, ``"250ms"``, ``"5s"``, ``"1.5m"``, ``"2h"``, ``"1d"``, or
ISO 8601 (``"PT5S"``, ``"P1DT2H30M"``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from headwater.core._errors import ConfigurationError

__all__ = [
    "Duration",
    "check_duration",
    "check_int",
    "check_number",
    "check_type",
    "parse_duration",
    "suggest",
]

Duration = timedelta | str
"""A duration as users may write it: a ``timedelta`` or a string (``"5s"``, ``"PT5S"``)."""

_SIMPLE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ISO = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
_SYNTAX = "a duration such as '250ms', '5s', '2m', '1h' or ISO 8601 'PT5S'"


def _given(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def parse_duration(value: Any, where: str, *, seconds_allowed: bool = False) -> timedelta:
    """``value`` as a ``timedelta``: a ``timedelta`` or a duration string (see the module).

    ``seconds_allowed``: a plain number counts as seconds (pipeline files, where ``5`` is natural).
    """
    if isinstance(value, timedelta):
        return value
    if seconds_allowed and isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        simple = _SIMPLE.match(value)
        if simple is not None:
            return timedelta(seconds=float(simple.group(1)) * _UNITS[simple.group(2)])
        iso = _ISO.match(value.strip())
        if iso is not None and value.strip().upper() not in ("P", "PT") and any(iso.groups()):
            parts = {k: float(v) for k, v in iso.groupdict().items() if v is not None}
            return timedelta(
                days=parts.get("d", 0.0),
                hours=parts.get("h", 0.0),
                minutes=parts.get("m", 0.0),
                seconds=parts.get("s", 0.0),
            )
    hint = ", or a number of seconds" if seconds_allowed else " (or a timedelta)"
    raise ConfigurationError(f"{where}: expected {_SYNTAX}{hint}, got {_given(value)}")


def check_duration(
    owner: str,
    name: str,
    value: Any,
    *,
    positive: bool = False,
    optional: bool = False,
) -> Any:
    """The setting ``name`` of ``owner`` as a ``timedelta`` (``None`` passes if ``optional``)."""
    if value is None and optional:
        return None
    duration = parse_duration(value, f"{owner}: {name}")
    if positive and duration <= timedelta(0):
        raise ConfigurationError(f"{owner}: {name} must be positive, got {duration}")
    if duration < timedelta(0):
        raise ConfigurationError(f"{owner}: {name} must be >= 0, got {duration}")
    return duration


def check_int(
    owner: str,
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    optional: bool = False,
) -> Any:
    """Refuse a setting that is not an integer (``bool`` included) or lies outside the bounds."""
    return check_number(
        owner, name, value, minimum=minimum, maximum=maximum, optional=optional, integer=True
    )


def check_number(
    owner: str,
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
    optional: bool = False,
    integer: bool = False,
) -> Any:
    """Refuse a setting that is not a number (an int with ``integer``) or lies outside the bounds."""
    if value is None and optional:
        return None
    expected = ("an integer" if integer else "a number") + (" or None" if optional else "")
    kinds = int if integer else int | float
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise ConfigurationError(f"{owner}: {name} must be {expected}, got {_given(value)}")
    if positive and value <= 0:
        raise ConfigurationError(f"{owner}: {name} must be positive, got {value}")
    _check_bounds(owner, name, value, minimum, maximum)
    return value


def _check_bounds(
    owner: str, name: str, value: float, minimum: float | None, maximum: float | None
) -> None:
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        raise ConfigurationError(
            f"{owner}: {name} must be within [{minimum}, {maximum}], got {value}"
        )
    if minimum is not None and value < minimum:
        raise ConfigurationError(f"{owner}: {name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigurationError(f"{owner}: {name} must be <= {maximum}, got {value}")


def check_type(
    owner: str,
    name: str,
    value: Any,
    expected: type | tuple[type, ...],
    *,
    optional: bool = False,
) -> Any:
    """Refuse a setting that is not an instance of ``expected`` (a type or a tuple of types)."""
    if value is None and optional:
        return None
    if not isinstance(value, expected):
        types = expected if isinstance(expected, tuple) else (expected,)
        what = " or ".join(t.__name__ for t in types) + (" or None" if optional else "")
        raise ConfigurationError(f"{owner}: {name} must be a {what}, got {_given(value)}")
    return value


def suggest(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
