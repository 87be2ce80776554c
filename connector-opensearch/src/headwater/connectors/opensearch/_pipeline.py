"""The ``opensearch`` connector in pipeline files (``headwater run pipeline.toml``).

Source: the ``options`` table is :class:`OpenSearchSourceOptions`; records are the documents'
``_source`` dicts. Sink: the ``options`` table is :class:`OpenSearchSinkOptions`; records must be
dicts; the setting ``on_error`` (``"fail"``, default, or ``"skip"``) is the error policy for
actions the server refuses.
"""

from __future__ import annotations

from typing import Any

from headwater.connectors.base import ErrorPolicy, FailOnError, SkipOnError
from headwater.connectors.opensearch._options import OpenSearchSinkOptions, OpenSearchSourceOptions
from headwater.connectors.opensearch._sink import OpenSearchSink
from headwater.connectors.opensearch._source import OpenSearchSource
from headwater.core import ConfigurationError, PipelineEndpoint

__all__ = ["pipeline_sink", "pipeline_source"]

_POLICIES: dict[str, type[ErrorPolicy]] = {"fail": FailOnError, "skip": SkipOnError}


def pipeline_source(endpoint: PipelineEndpoint) -> OpenSearchSource[Any]:
    """An :class:`OpenSearchSource` from a pipeline's ``[source]`` table."""
    endpoint.check_settings(set())
    return OpenSearchSource(OpenSearchSourceOptions(**endpoint.options))


def pipeline_sink(endpoint: PipelineEndpoint) -> OpenSearchSink[Any]:
    """An :class:`OpenSearchSink` from a pipeline's ``[sink]`` table."""
    endpoint.check_settings({"on_error"})
    on_error = endpoint.settings.get("on_error", "fail")
    if on_error not in _POLICIES:
        raise ConfigurationError(
            f"{endpoint.where('on_error')}: the opensearch sink's on_error is 'fail' or 'skip', "
            f"not {on_error!r}"
        )
    return OpenSearchSink(
        OpenSearchSinkOptions(**endpoint.options), error_policy=_POLICIES[on_error]()
    )
