"""Declarative pipeline bindings: how a connector's source or sink is built from a pipeline file.

A connector sets :attr:`ConnectorSpec.pipeline_source` / ``pipeline_sink`` to a
:class:`PipelineBinding`, data naming the class to build, its options model and what each other
key of the ``[source]`` / ``[sink]`` table becomes::

    pipeline_sink=PipelineBinding(
        build=RabbitMQSink,
        options=RabbitMQSinkOptions,
        settings={
            "format": format_setting("value_format", default="raw"),  # connector-base
            "message_id": function_setting("message_id"),
        },
    )

The binding refuses keys it does not name, validates the ``options`` table with the model and
calls ``build(options, **arguments)``; errors name the file, the table and the key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from headwater.core._errors import ConfigurationError
from headwater.core._pipeline import PipelineEndpoint

__all__ = [
    "PipelineBinding",
    "PipelineSetting",
    "choice_setting",
    "function_setting",
    "value_setting",
]


@dataclass(frozen=True, kw_only=True)
class PipelineSetting:
    """One key of a pipeline endpoint's table (besides ``connector`` and ``options``)."""

    keyword: str | None
    """The keyword argument of ``build`` it becomes; ``None`` for a key that another setting's
    ``read`` consumes (it is allowed, and passed on by that setting)."""
    read: Callable[[PipelineEndpoint, str], Any]
    """``read(endpoint, key)``: the argument, from the setting's value (also when it is absent:
    then it returns the default). Raises :class:`ConfigurationError` naming the key."""


def value_setting(
    keyword: str, *, default: Any = None, required: bool = False, kind: type | None = None
) -> PipelineSetting:
    """A setting passed as it is written (a string, a number, a list...).

    ``required``: the key must be present (and not empty); ``kind``: the type it must have.
    """

    def read(endpoint: PipelineEndpoint, key: str) -> Any:
        value = endpoint.settings.get(key)
        if value is None or value == "":
            if required:
                raise ConfigurationError(
                    f"{endpoint.where(key)}: the {endpoint.connector} {endpoint.role} needs {key}"
                )
            return default
        if kind is not None and not isinstance(value, kind):
            raise ConfigurationError(
                f"{endpoint.where(key)}: expected a {kind.__name__}, got {value!r}"
            )
        return value

    return PipelineSetting(keyword=keyword, read=read)


def function_setting(keyword: str, *, default: Any = None) -> PipelineSetting:
    """A ``module:function`` reference, passed as the function (``default`` when absent)."""

    def read(endpoint: PipelineEndpoint, key: str) -> Any:
        function = endpoint.function(key)
        return default if function is None else function

    return PipelineSetting(keyword=keyword, read=read)


def choice_setting(
    keyword: str, choices: Mapping[str, Callable[[], Any]], *, default: str
) -> PipelineSetting:
    """One of the names in ``choices``; the argument is what that name's factory returns."""

    def read(endpoint: PipelineEndpoint, key: str) -> Any:
        name = endpoint.settings.get(key, default)
        if name not in choices:
            allowed = " or ".join(repr(c) for c in choices)
            raise ConfigurationError(
                f"{endpoint.where(key)}: the {endpoint.connector} {endpoint.role}'s {key} is "
                f"{allowed}, not {name!r}"
            )
        return choices[name]()

    return PipelineSetting(keyword=keyword, read=read)


@dataclass(frozen=True, kw_only=True)
class PipelineBinding:
    """A connector's source or sink in pipeline files, as data (a ``ConnectorSpec`` factory)."""

    build: Callable[..., Any]
    """The source or sink class (or a function) called as ``build(options, **arguments)``."""
    options: Callable[..., Any] | None = None
    """The options model the ``options`` table is validated with (given as the first argument);
    ``None``: the connector takes no options (the table must be empty or absent)."""
    settings: Mapping[str, PipelineSetting] = field(default_factory=dict)
    """The other keys of the table, each with the argument it becomes; any other key is refused."""

    def __call__(self, endpoint: PipelineEndpoint) -> Any:
        """Build the source or sink of ``endpoint``."""
        endpoint.check_settings(set(self.settings))
        arguments: list[Any] = []
        if self.options is not None:
            arguments.append(self.options(**endpoint.options))
        elif endpoint.options:
            raise ConfigurationError(
                f"{endpoint.where('options')}: the {endpoint.connector} {endpoint.role} takes "
                "no options"
            )
        keywords: dict[str, Any] = {}
        for key, setting in self.settings.items():
            value = setting.read(endpoint, key)
            if setting.keyword is not None:
                keywords[setting.keyword] = value
        return self.build(*arguments, **keywords)
