"""The kinds of change in a changelog stream, shared by every connector that reads or writes one."""

from __future__ import annotations

import enum

__all__ = ["RowKind"]


class RowKind(enum.Enum):
    """The change a changelog record describes, as Flink's ``RowKind``.

    The values are Flink's byte values (stable: connectors may store them, e.g. the JDBC sink's
    staging table); :attr:`short_string` is Flink's notation (``+I``, ``-U``, ``+U``, ``-D``).
    """

    INSERT = 0
    """A new row."""
    UPDATE_BEFORE = 1
    """The old version of an updated row (a sink keyed by the row's key may ignore it)."""
    UPDATE_AFTER = 2
    """The new version of an updated row."""
    DELETE = 3
    """A removed row."""

    @property
    def short_string(self) -> str:
        """Flink's short notation: ``+I``, ``-U``, ``+U`` or ``-D``."""
        return _SHORT[self]

    @classmethod
    def from_short_string(cls, text: str) -> RowKind:
        """The kind written as ``text`` in Flink's short notation.

        Raises:
            ValueError: for anything but ``+I``, ``-U``, ``+U`` and ``-D``.
        """
        for kind, short in _SHORT.items():
            if short == text:
                return kind
        raise ValueError(f"not a row kind: {text!r} (expected one of +I, -U, +U, -D)")


_SHORT = {
    RowKind.INSERT: "+I",
    RowKind.UPDATE_BEFORE: "-U",
    RowKind.UPDATE_AFTER: "+U",
    RowKind.DELETE: "-D",
}
