"""The base of every options model: frozen, keyword-only, validated at construction."""

from __future__ import annotations

from typing import Any

from headwater.core import ConfigurationError
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["OptionsModel"]


class OptionsModel(BaseModel):
    """A frozen, keyword-only options model; invalid values raise :class:`ConfigurationError`.

    Subclasses declare fields with types and defaults (``timedelta`` for durations, ``None`` for
    "not set") and cross-field rules with ``@model_validator(mode="after")`` raising ``ValueError``.
    The error message names the model and the option; the docs' options tables are generated from
    the model's JSON Schema.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                option = ".".join(str(part) for part in error["loc"])
                message = str(error["msg"]).removeprefix("Value error, ")
                problems.append(f"{option}: {message}" if option else message)
            raise ConfigurationError(f"{type(self).__name__}: " + "; ".join(problems)) from None
