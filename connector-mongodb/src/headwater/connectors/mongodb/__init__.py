"""The MongoDB connector for headwater, on pymongo's asyncio API.

- :class:`MongoSource`: a bounded snapshot of a collection (split by ``_id`` ranges), a change
  stream (collection, database or deployment), or a snapshot then its stream; exactly-once.
- :class:`MongoSink`: bulk writes (insert, upsert, ``$set`` update, delete, or a changelog),
  at-least-once or exactly-once (transactions with a per-writer marker).
- :class:`MongoLookup`: find-by-key for the async I/O operator, with an optional cache.

Registered as ``mongodb`` in the ``headwater.connectors`` entry-point group (see ``CONNECTOR``).
"""

from headwater.connectors.mongodb._connector import CONNECTOR
from headwater.connectors.mongodb._lookup import MongoLookup
from headwater.connectors.mongodb._options import (
    MongoConnectionOptions,
    MongoLookupOptions,
    MongoSinkOptions,
    MongoSourceOptions,
)
from headwater.connectors.mongodb._records import (
    BsonFormat,
    ExtendedJsonFormat,
    MongoChangeEvent,
    MongoChangelogRecord,
)
from headwater.connectors.mongodb._sink import MongoCommittable, MongoSink
from headwater.connectors.mongodb._source import MongoSource
from headwater.connectors.mongodb._split import MongoSplit
from headwater.connectors.mongodb.version import __version__

__all__ = [
    "CONNECTOR",
    "BsonFormat",
    "ExtendedJsonFormat",
    "MongoChangeEvent",
    "MongoChangelogRecord",
    "MongoCommittable",
    "MongoConnectionOptions",
    "MongoLookup",
    "MongoLookupOptions",
    "MongoSink",
    "MongoSinkOptions",
    "MongoSource",
    "MongoSourceOptions",
    "MongoSplit",
    "__version__",
]
