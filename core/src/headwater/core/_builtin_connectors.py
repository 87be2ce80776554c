"""The connectors core ships (``datagen``, ``print``): their entry points and pipeline factories."""

from __future__ import annotations

from typing import Any

from headwater.core._builtins import DataGenSource, PrintSink
from headwater.core._connectors import ConnectorSpec
from headwater.core._errors import ConfigurationError
from headwater.core._pipeline import PipelineEndpoint

__all__ = ["DATAGEN_CONNECTOR", "PRINT_CONNECTOR"]

_DATAGEN_OPTIONS = {"count", "rows_per_second", "seed", "num_splits", "batch_size"}


def _datagen_source(endpoint: PipelineEndpoint) -> DataGenSource[Any]:
    """A DataGen source from ``generator = "module:function"`` and its options.

    The generator is called with the index and a seeded ``random.Random``; the options are
    ``count``, ``rows_per_second``, ``seed``, ``num_splits`` and ``batch_size``.
    """
    endpoint.check_settings({"generator"}, _DATAGEN_OPTIONS)
    generator = endpoint.function("generator")
    if generator is None:
        raise ConfigurationError(
            f"{endpoint.where('generator')}: datagen needs a generator, as 'module:function'"
        )
    return DataGenSource(generator, **endpoint.options)


def _print_sink(endpoint: PipelineEndpoint) -> PrintSink:
    """``prefix`` (optional): printed before every record."""
    endpoint.check_settings({"prefix"})
    if endpoint.options:
        raise ConfigurationError(f"{endpoint.where('options')}: print takes no options")
    return PrintSink(str(endpoint.settings.get("prefix", "")))


DATAGEN_CONNECTOR = ConnectorSpec(
    identifier="datagen",
    summary="Generated records: seeded, rate-limited, bounded or unbounded, parallel splits.",
    source=DataGenSource,
    sink=None,
    distribution="headwater-core",
    pipeline_source=_datagen_source,
)
"""The entry point of the built-in DataGen connector (group ``headwater.connectors``)."""

PRINT_CONNECTOR = ConnectorSpec(
    identifier="print",
    summary="Prints every record to standard output (for trying pipelines out).",
    source=None,
    sink=PrintSink,
    distribution="headwater-core",
    pipeline_sink=_print_sink,
)
"""The entry point of the built-in print sink (group ``headwater.connectors``)."""
