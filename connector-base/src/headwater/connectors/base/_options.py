"""The base of every options model: frozen, keyword-only, validated at construction."""

from __future__ import annotations

import inspect
import re
from typing import Any, ClassVar

from headwater.connectors.base._secrets import SecretMasker, secret_values
from headwater.core import ConfigurationError
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["OptionsModel"]


class OptionsModel(BaseModel):
    """A frozen, keyword-only options model; invalid values raise :class:`ConfigurationError`.

    Subclasses declare fields with types and defaults (``timedelta`` for durations, ``None`` for
    "not set") and cross-field rules with ``@model_validator(mode="after")`` raising ``ValueError``.
    The error message (``"<options_name>: option '<option>': <problem>"``) names the model and the
    option, never the value given (it may be a secret); the docs' options tables are generated from
    the model's JSON Schema. A field's description there is its ``Field(description=...)``, else
    the docstring under its declaration, else its entry in the class docstring's ``Args:``
    section; the docs build fails on a field with none.

    Secrets are ``SecretStr`` fields (or passwords in URLs); :meth:`masker` replaces all of them
    in any text (an error from a client, a log line).
    """

    options_name: ClassVar[str | None] = None
    """What errors call these options (e.g. ``"kafka source"``); default: the class name."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", arbitrary_types_allowed=True, use_attribute_docstrings=True
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Describe the fields without a description from the class docstring's ``Args:``."""
        super().__pydantic_init_subclass__(**kwargs)
        documented = _documented_args(cls.__doc__ or "")
        undescribed = [
            (name, field)
            for name, field in cls.model_fields.items()
            if not field.description and name in documented
        ]
        for name, field in undescribed:
            field.description = documented[name]
        if undescribed:
            cls.model_rebuild(force=True, raise_errors=False)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            problems = []
            for error in exc.errors(include_input=False, include_url=False):
                option = ".".join(str(part) for part in error["loc"])
                message = str(error["msg"]).removeprefix("Value error, ")
                problems.append(f"option '{option}': {message}" if option else message)
            name = self.options_name or type(self).__name__
            raise ConfigurationError(f"{name}: " + "; ".join(problems)) from None

    def masker(self) -> SecretMasker:
        """A :class:`SecretMasker` of every secret in these options (nested options included)."""
        return SecretMasker(secret_values(self))


_ARG = re.compile(r"(\w+)(?: \([^)]*\))?: (.*)")


def _documented_args(doc: str) -> dict[str, str]:
    """The ``name: text`` entries of a Google-style ``Args:`` section, continuation lines joined."""
    found: dict[str, str] = {}
    current: str | None = None
    inside = False
    for line in inspect.cleandoc(doc).splitlines():
        text = line.strip()
        if not line.startswith(" "):  # a heading or text at the margin ends the section
            inside, current = text == "Args:", None
            continue
        match = _ARG.fullmatch(text)
        if inside and match and len(line) - len(line.lstrip()) == 4:
            current = match.group(1)
            found[current] = match.group(2)
        elif inside and current is not None:
            found[current] += " " + text
    return found
