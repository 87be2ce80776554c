"""headwater-connector-jdbc: SQL databases (SQLite, PostgreSQL, MySQL/MariaDB) through SQLAlchemy Core.

Example::

    from headwater.core import StreamEnvironment
    from headwater.connectors.jdbc import JdbcSink, JdbcSinkOptions

    env = StreamEnvironment()
    env.from_collection([{"id": 1, "name": "a"}]).sink_to(
        JdbcSink(JdbcSinkOptions(url="sqlite:///app.db", table="users", key_columns=("id",)))
    )
    env.execute()

PostgreSQL needs the ``postgres`` extra (psycopg 3), MySQL/MariaDB the ``mysql`` extra (PyMySQL).
"""

from headwater.connectors.jdbc._errors import (
    JdbcError,
    JdbcRowError,
    JdbcTimeoutError,
    JdbcTransientError,
)
from headwater.connectors.jdbc._lookup import JdbcLookup
from headwater.connectors.jdbc._options import (
    DatabaseUrl,
    ErrorPolicy,
    JdbcLookupOptions,
    JdbcSinkOptions,
    JdbcSourceOptions,
)
from headwater.connectors.jdbc._pipeline import pipeline_sink, pipeline_source
from headwater.connectors.jdbc._records import ChangelogRow, RowKind
from headwater.connectors.jdbc._sink import JdbcSink
from headwater.connectors.jdbc._source import JdbcSource, JdbcSplit
from headwater.connectors.jdbc.version import __version__
from headwater.core import ConnectorSpec

__all__ = [
    "CONNECTOR",
    "ChangelogRow",
    "DatabaseUrl",
    "ErrorPolicy",
    "JdbcError",
    "JdbcLookup",
    "JdbcLookupOptions",
    "JdbcRowError",
    "JdbcSink",
    "JdbcSinkOptions",
    "JdbcSource",
    "JdbcSourceOptions",
    "JdbcSplit",
    "JdbcTimeoutError",
    "JdbcTransientError",
    "RowKind",
    "__version__",
]

CONNECTOR = ConnectorSpec(
    identifier="jdbc",
    summary="SQL databases (SQLite, PostgreSQL, MySQL/MariaDB): upsert/exactly-once sink, "
    "parallel scan and polling source, cached lookups.",
    source=JdbcSource,
    sink=JdbcSink,
    options={"sink": JdbcSinkOptions, "source": JdbcSourceOptions, "lookup": JdbcLookupOptions},
    distribution="headwater-connector-jdbc",
    pipeline_source=pipeline_source,
    pipeline_sink=pipeline_sink,
)
"""The entry point of the JDBC connector (group ``headwater.connectors``)."""

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("headwater.connectors.jdbc._"):
        _obj.__module__ = "headwater.connectors.jdbc"
del _name, _obj
