"""The options of the {{title}} connector: frozen, keyword-only, validated at construction.

The docs page's options tables are generated from these models' JSON Schema: give every field a
description, use ``timedelta`` for durations and ``None`` for "not set".
"""

from __future__ import annotations

from datetime import timedelta

from headwater.connectors.base import AsyncSinkOptions, OptionsModel
from pydantic import Field

__all__ = ["{{class_prefix}}SinkOptions", "{{class_prefix}}SourceOptions"]


class {{class_prefix}}SourceOptions(OptionsModel):
    """What the {{title}} source reads, and how."""

    address: str = Field(description="Where {{title}} is (the example system: a directory).")
    log: str = Field(min_length=1, description="The log to read; its partitions are the splits.")
    fetch_size: int = Field(
        default=500, gt=0, description="The most records one fetch reads from one partition."
    )
    poll_interval: timedelta = Field(
        default=timedelta(milliseconds=100),
        gt=timedelta(0),
        description="How long a fetch that found nothing new waits before the next one.",
    )
    discovery_interval: timedelta | None = Field(
        default=timedelta(seconds=5),
        description="How often an unbounded source looks for new partitions (none: only at start).",
    )


class {{class_prefix}}SinkOptions(AsyncSinkOptions):
    """Where the {{title}} sink writes (batching, retries and limits: the async sink's options)."""

    address: str = Field(description="Where {{title}} is (the example system: a directory).")
    log: str = Field(min_length=1, description="The log to append to; it must exist.")
