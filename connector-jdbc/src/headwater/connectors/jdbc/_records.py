"""The records the JDBC sink accepts: plain row dicts (inserts) or changelog rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from headwater.core import RowKind

__all__ = ["ChangelogRow", "RowKind"]


@dataclass(frozen=True, slots=True)
class ChangelogRow:
    """One change of a row. The sink also accepts a plain mapping, which means ``INSERT``.

    With key columns, ``INSERT`` and ``UPDATE_AFTER`` upsert the row, ``DELETE`` deletes it by
    its key, and ``UPDATE_BEFORE`` is ignored (the ``UPDATE_AFTER`` that follows upserts).
    Without key columns, only inserts are possible. :class:`RowKind` is core's.
    """

    kind: RowKind
    row: Mapping[str, Any]
