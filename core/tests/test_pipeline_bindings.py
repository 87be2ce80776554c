"""PipelineBinding: a connector's pipeline source/sink as data (options model, settings)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from headwater.core import (
    ConfigurationError,
    PipelineBinding,
    PipelineEndpoint,
    choice_setting,
    function_setting,
    value_setting,
)


@dataclass(frozen=True, kw_only=True)
class Options:
    url: str
    batch: int = 10


@dataclass
class Built:
    options: Options | None
    keywords: dict[str, Any]


def build(options: Options | None = None, **keywords: Any) -> Built:
    return Built(options, keywords)


def upper(text: str) -> str:
    return text.upper()


def endpoint(options: dict[str, Any], **settings: Any) -> PipelineEndpoint:
    return PipelineEndpoint("sink", "demo", options, settings, Path("job.toml"))


BINDING = PipelineBinding(
    build=build,
    options=Options,
    settings={
        "topic": value_setting("topic", required=True, kind=str),
        "key": function_setting("key_function", default=len),
        "on_error": choice_setting(
            "policy", {"fail": lambda: "F", "skip": lambda: "S"}, default="fail"
        ),
    },
)


def test_options_go_first_and_settings_become_keywords() -> None:
    built = BINDING(
        endpoint({"url": "x", "batch": 3}, topic="t", key=f"{__name__}:upper", on_error="skip")
    )
    assert built == Built(
        Options(url="x", batch=3), {"topic": "t", "key_function": upper, "policy": "S"}
    )


def test_defaults_of_absent_settings() -> None:
    built = BINDING(endpoint({"url": "x"}, topic="t"))
    assert built.keywords == {"topic": "t", "key_function": len, "policy": "F"}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"topic": "t", "partitions": 3}, r"job.toml \[sink\]: unknown key\(s\): 'partitions'"),
        ({}, r"job.toml \[sink\] topic: the demo sink needs topic"),
        ({"topic": 5}, r"job.toml \[sink\] topic: expected a str, got 5"),
        ({"topic": "t", "on_error": "retry"}, r"on_error is 'fail' or 'skip', not 'retry'"),
        ({"topic": "t", "key": "nowhere_at_all:f"}, r"\[sink\] key: cannot import"),
    ],
)
def test_bad_settings_name_the_key(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        BINDING(endpoint({"url": "x"}, **settings))


def test_the_options_model_validates_the_options_table() -> None:
    with pytest.raises(TypeError, match="nope"):
        BINDING(endpoint({"url": "x", "nope": 1}, topic="t"))


def test_a_binding_without_options_refuses_an_options_table() -> None:
    binding = PipelineBinding(build=build)
    assert binding(endpoint({})) == Built(None, {})
    with pytest.raises(
        ConfigurationError, match=r"\[sink\] options: the demo sink takes no options"
    ):
        binding(endpoint({"url": "x"}))
