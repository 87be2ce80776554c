"""Bucket assigners: the sub-directory of the sink's path each record goes to.

A bucket id is a relative path (``""`` for the base path). Assigners work a batch at a time:
:meth:`BucketAssigner.assign_batch` groups a batch by bucket, so an assigner that puts a whole
batch in one bucket costs nothing per record.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from headwater.core import ConfigurationError

__all__ = [
    "BasePathBucketAssigner",
    "BucketAssigner",
    "DateTimeBucketAssigner",
    "FieldBucketAssigner",
    "FunctionBucketAssigner",
]

T = TypeVar("T")


class BucketAssigner(ABC, Generic[T]):
    """Maps records to bucket ids (relative directories)."""

    @abstractmethod
    def bucket_id(self, record: T) -> str:
        """The bucket of one record."""

    def assign_batch(self, records: Sequence[T]) -> dict[str, list[T]]:
        """The batch grouped by bucket, each group in arrival order."""
        groups: dict[str, list[T]] = {}
        bucket_id = self.bucket_id
        for record in records:
            bucket = bucket_id(record)
            group = groups.get(bucket)
            if group is None:
                groups[bucket] = [record]
            else:
                group.append(record)
        return groups


class BasePathBucketAssigner(BucketAssigner[Any]):
    """Every record in the sink's path itself (the default)."""

    def bucket_id(self, record: Any) -> str:
        """``""``."""
        return ""

    def assign_batch(self, records: Sequence[Any]) -> dict[str, list[Any]]:
        """The whole batch in one bucket."""
        return {"": list(records)}


class DateTimeBucketAssigner(BucketAssigner[T]):
    """Buckets by time, formatted with ``strftime`` (``dt=%Y-%m-%d/hour=%H`` by default).

    Args:
        format: the ``strftime`` pattern of the bucket id (may contain ``/``).
        timestamp: the record's event time in ms since the epoch (a function of the record);
            ``None`` uses processing time (the wall clock when the batch is written). The sink
            API hands writers records without their stream timestamps, so event time comes from
            the record itself.
        timezone: the zone the time is formatted in (``"UTC"`` or an IANA name).
    """

    def __init__(
        self,
        format: str = "dt=%Y-%m-%d/hour=%H",
        *,
        timestamp: Callable[[T], int] | None = None,
        timezone: str = "UTC",
    ) -> None:
        try:
            self.zone: tzinfo = UTC if timezone == "UTC" else ZoneInfo(timezone)
        except Exception as exc:
            raise ConfigurationError(
                f"DateTimeBucketAssigner: unknown timezone {timezone!r}"
            ) from exc
        self.format = format
        self.timestamp = timestamp

    def _format(self, millis: float) -> str:
        return datetime.fromtimestamp(millis / 1000.0, self.zone).strftime(self.format)

    def bucket_id(self, record: T) -> str:
        """The formatted event time (or now)."""
        if self.timestamp is None:
            return self._format(time.time() * 1000.0)
        return self._format(self.timestamp(record))

    def assign_batch(self, records: Sequence[T]) -> dict[str, list[T]]:
        """Processing time: the whole batch in the bucket of now; event time: per record."""
        if self.timestamp is None:
            return {self._format(time.time() * 1000.0): list(records)}
        return super().assign_batch(records)


class FieldBucketAssigner(BucketAssigner[Any]):
    """Hive-style ``key=value`` buckets from fields of mapping records (``country=de/kind=a``).

    Args:
        fields: the keys whose values name the bucket, outermost first.
    """

    def __init__(self, *fields: str) -> None:
        if not fields:
            raise ConfigurationError("FieldBucketAssigner: name at least one field")
        self.fields = fields

    def bucket_id(self, record: Any) -> str:
        """``field=value`` per field, joined with ``/``."""
        try:
            return "/".join(f"{name}={_safe(record[name])}" for name in self.fields)
        except (KeyError, TypeError) as exc:
            raise ValueError(
                f"FieldBucketAssigner: the record has no field {exc} (fields: {self.fields})"
            ) from exc


def _safe(value: Any) -> str:
    text = str(value)
    return text.replace("/", "%2F") if "/" in text else text


class FunctionBucketAssigner(BucketAssigner[T]):
    """Buckets from a function of the record (its result is the relative directory)."""

    def __init__(self, function: Callable[[T], str]) -> None:
        self.function = function

    def bucket_id(self, record: T) -> str:
        """``function(record)``."""
        return self.function(record)
