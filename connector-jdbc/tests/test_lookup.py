"""JdbcLookup: cached key lookups."""

from __future__ import annotations

import time
from datetime import timedelta

from headwater.connectors.jdbc import JdbcLookup, JdbcLookupOptions
from headwater.core import StreamEnvironment


def make_users(db) -> str:
    name = db.table("users")
    db.execute(
        f"CREATE TABLE {name} (id INTEGER, region VARCHAR(10), name VARCHAR(20), PRIMARY KEY (id, region))",
        f"INSERT INTO {name} VALUES (1, 'eu', 'ann'), (2, 'eu', 'bob'), (2, 'us', 'cy')",
    )
    return name


async def test_lookup_cache_ttl(db) -> None:
    table = make_users(db)
    lookup = JdbcLookup(
        JdbcLookupOptions(
            url=db.url_text,
            table=table,
            key_columns=("id",),
            columns=("name",),
            cache_ttl=timedelta(milliseconds=300),
        )
    )
    assert lookup.lookup(1) == [{"name": "ann"}]
    db.execute(f"UPDATE {table} SET name = 'changed' WHERE id = 1")
    assert await lookup.alookup(1) == [{"name": "ann"}]  # cached
    assert (lookup.hits, lookup.misses) == (1, 1)
    time.sleep(0.4)
    assert lookup.lookup(1) == [{"name": "changed"}]  # expired
    assert sorted(r["name"] for r in lookup.lookup(2)) == ["bob", "cy"]
    assert lookup.lookup(99) == []
    lookup.close()


def test_lookup_composite_key_and_max_rows(databases) -> None:
    db = databases["sqlite"]
    table = make_users(db)
    lookup = JdbcLookup(
        JdbcLookupOptions(
            url=db.url_text, table=table, key_columns=("id", "region"), cache_max_rows=1
        )
    )
    assert lookup.lookup((2, "us")) == [{"id": 2, "region": "us", "name": "cy"}]
    lookup.lookup((1, "eu"))  # evicts (2, "us")
    lookup.lookup((2, "us"))
    assert (lookup.hits, lookup.misses) == (0, 3)
    lookup.lookup((2, "us"))
    assert lookup.hits == 1
    lookup.close()


def test_lookup_from_a_map(databases) -> None:
    db = databases["sqlite"]
    table = make_users(db)
    users = JdbcLookup(JdbcLookupOptions(url=db.url_text, table=table, key_columns=("id",)))
    env = StreamEnvironment()
    out = (
        env.from_collection([1, 2, 1, 3]).map(lambda k: len(users.lookup(k))).execute_and_collect()
    )
    assert out == [1, 2, 1, 0]
    assert "users" in repr(users)
    users.close()
