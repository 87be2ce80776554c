"""The options of the {{title}} connector: frozen, keyword-only, validated at construction.

The docs page's options table is generated from this model's JSON Schema: give every field a
description, use ``timedelta`` for durations and ``None`` for "not set".
"""

from __future__ import annotations

from datetime import timedelta

from headwater.connectors.base import OptionsModel
from pydantic import Field

__all__ = ["{{class_prefix}}Options"]


class {{class_prefix}}Options(OptionsModel):
    """How to reach {{title}}."""

    address: str = Field(description="Where {{title}} listens, as host:port.")
    request_timeout: timedelta = Field(
        default=timedelta(seconds=30),
        gt=timedelta(0),
        description="How long one request may take before it counts as failed and is retried.",
    )
