"""Connector discovery: the check of a connector's requirement on headwater-core."""

from __future__ import annotations

import pytest
from headwater.core import _connectors
from headwater.core._connectors import satisfies


@pytest.mark.parametrize(
    ("version", "specifier", "expected"),
    [
        ("0.1.3", ">=0.1,<0.2", True),
        ("0.2.0", ">=0.1,<0.2", False),
        ("0.1.0rc1", ">=0.1", False),  # a release candidate comes before its release
        ("0.1.0rc1", ">=0.1.0rc1,<0.2", True),
        ("0.1.5", "~=0.1.0", True),
        ("0.2.0", "~=0.1.0", False),
        ("0.1.5", "~=0.1", True),
        ("0.1.5", "==0.1.*", True),
        ("0.1.5", "!=0.1.5", False),
        ("0.1", "==0.1.0", True),
        ("0.1.5", "", True),
        ("0.1.5", "not a specifier", False),
    ],
)
def test_satisfies_compares_as_pep_440(version: str, specifier: str, expected: bool) -> None:
    assert satisfies(version, specifier) is expected


@pytest.mark.parametrize(
    ("requires", "expected"),
    [
        (["headwater-core>=0.1,<0.2"], "<0.2,>=0.1"),
        (["headwater-core[prometheus]>=0.1,<0.2"], "<0.2,>=0.1"),
        (["headwater_core>=0.1,<0.2"], "<0.2,>=0.1"),
        (["Headwater.Core (>=0.1,<0.2)"], "<0.2,>=0.1"),
        (["headwater-core-extras>=9", "headwater-core~=0.1.0"], "~=0.1.0"),
        (['headwater-core>=9; extra == "future"', "headwater-core>=0.1"], ">=0.1"),
        (["aiokafka>=0.10"], None),
        ([], None),
    ],
)
def test_core_requirement_is_read_with_packaging(
    monkeypatch: pytest.MonkeyPatch, requires: list[str], expected: str | None
) -> None:
    monkeypatch.setattr(_connectors.metadata, "requires", lambda _name: requires)
    assert _connectors._core_requirement("headwater-connector-x") == expected
