"""The OpenSearch connector for headwater: a bulk sink, a sliced point-in-time source, lookups.

One package for OpenSearch and Elasticsearch (7.10+/8.x; set ``flavor="elasticsearch"`` in the
client options), on opensearch-py's ``AsyncOpenSearch``.

Example::

    from headwater.connectors.opensearch import (
        OpenSearchClientOptions, OpenSearchSink, OpenSearchSinkOptions,
    )

    client = OpenSearchClientOptions(hosts=("http://localhost:9200",))
    sink = OpenSearchSink(OpenSearchSinkOptions(client=client, index="orders", id_fields=("id",)))

Registered as ``opensearch`` in the ``headwater.connectors`` entry-point group (see ``CONNECTOR``).
"""

from headwater.connectors.opensearch._actions import BulkAction, DocumentEmitter, to_json_value
from headwater.connectors.opensearch._connector import CONNECTOR
from headwater.connectors.opensearch._lookup import OpenSearchLookup
from headwater.connectors.opensearch._options import (
    BulkWriterOptions,
    Flavor,
    OpenSearchClientOptions,
    OpenSearchLookupOptions,
    OpenSearchSinkOptions,
    OpenSearchSourceOptions,
)
from headwater.connectors.opensearch._sink import BulkRejectedError, OpenSearchSink
from headwater.connectors.opensearch._source import OpenSearchSource, SliceSplit
from headwater.connectors.opensearch.version import __version__

__all__ = [
    "CONNECTOR",
    "BulkAction",
    "BulkRejectedError",
    "BulkWriterOptions",
    "DocumentEmitter",
    "Flavor",
    "OpenSearchClientOptions",
    "OpenSearchLookup",
    "OpenSearchLookupOptions",
    "OpenSearchSink",
    "OpenSearchSinkOptions",
    "OpenSearchSource",
    "OpenSearchSourceOptions",
    "SliceSplit",
    "__version__",
    "to_json_value",
]
