"""headwater-connector-testing: conformance suites, process-kill harness and test doubles.

- :class:`SourceTestSuiteBase` / :class:`SinkTestSuiteBase` with their external contexts.
- :func:`run_with_kills` and :mod:`headwater.connectors.testing.jobrunner`: run a job described
  by ``module:function`` in a subprocess, SIGKILL it at random moments, restart it.
- Test doubles, re-exported from :mod:`headwater.core.testing` (one implementation, which core's
  own tests use): :class:`FileTwoPhaseSink` (exactly-once), :class:`FileAppendSink`
  (at-least-once) and :func:`read_records`.
"""

from headwater.connectors.testing._harness import KillReport, run_with_kills
from headwater.connectors.testing._suites import (
    SinkExternalContext,
    SinkTestSuiteBase,
    SourceExternalContext,
    SourceTestSuiteBase,
)
from headwater.connectors.testing.version import __version__
from headwater.core.testing import FileAppendSink, FileTwoPhaseSink, read_records

__all__ = [
    "FileAppendSink",
    "FileTwoPhaseSink",
    "KillReport",
    "SinkExternalContext",
    "SinkTestSuiteBase",
    "SourceExternalContext",
    "SourceTestSuiteBase",
    "__version__",
    "read_records",
    "run_with_kills",
]

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__") and _obj.__module__.startswith("headwater.connectors.testing._"):
        _obj.__module__ = "headwater.connectors.testing"
del _name, _obj
