"""The ``opensearch`` connector in pipeline files (``headwater run pipeline.toml``).

Source: the ``options`` table is :class:`OpenSearchSourceOptions`; records are the documents'
``_source`` dicts. Sink: the ``options`` table is :class:`OpenSearchSinkOptions`; records must be
dicts; the setting ``on_error`` (``"fail"``, default, or ``"skip"``) is the error policy for
actions the server refuses.
"""

from __future__ import annotations

from headwater.connectors.base import FailOnError, SkipOnError
from headwater.connectors.opensearch._options import OpenSearchSinkOptions, OpenSearchSourceOptions
from headwater.connectors.opensearch._sink import OpenSearchSink
from headwater.connectors.opensearch._source import OpenSearchSource
from headwater.core import PipelineBinding, choice_setting

__all__ = ["pipeline_sink", "pipeline_source"]

pipeline_source = PipelineBinding(build=OpenSearchSource, options=OpenSearchSourceOptions)
"""An :class:`OpenSearchSource` from a pipeline's ``[source]`` table."""
pipeline_sink = PipelineBinding(
    build=OpenSearchSink,
    options=OpenSearchSinkOptions,
    settings={
        "on_error": choice_setting(
            "error_policy", {"fail": FailOnError, "skip": SkipOnError}, default="fail"
        )
    },
)
"""An :class:`OpenSearchSink` from a pipeline's ``[sink]`` table."""
