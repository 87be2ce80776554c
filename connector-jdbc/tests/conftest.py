"""Fixtures: a fresh database per test module on SQLite, PostgreSQL and MariaDB.

PostgreSQL and MariaDB are the servers from ``HEADWATER_POSTGRES_URL`` / ``HEADWATER_MARIADB_URL``
(default: the pre-started local servers); each test module gets its own ``hw_<random>`` database,
dropped at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from headwater.core._metrics import MetricRegistry
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import URL, Engine

SERVERS = {
    "postgresql": (
        os.environ.get("HEADWATER_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        "postgresql+psycopg",
    ),
    "mariadb": (
        os.environ.get("HEADWATER_MARIADB_URL", "mysql://root@127.0.0.1:3306/test"),
        "mysql+pymysql",
    ),
}
DIALECTS = ["sqlite", "postgresql", "mariadb"]
_tables = itertools.count()


def server_url(dialect: str, database: str | None = None) -> URL:
    raw, driver = SERVERS[dialect]
    url = make_url(raw).set(drivername=driver)
    return url if database is None else url.set(database=database)


class Db:
    """A test database: its URL and helpers to run SQL."""

    def __init__(self, dialect: str, url: URL) -> None:
        self.dialect = dialect
        self.url = url
        self.engine: Engine = create_engine(url)

    @property
    def url_text(self) -> str:
        return self.url.render_as_string(hide_password=False)

    def table(self, prefix: str = "t") -> str:
        return f"{prefix}_{next(_tables)}"

    def execute(self, *statements: str, params: Any = None) -> None:
        with self.engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement), params)

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(statement))]


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Db]]:
    name = f"hw_{uuid.uuid4().hex[:10]}"
    dbs: dict[str, Db] = {}
    admins = {d: create_engine(server_url(d), isolation_level="AUTOCOMMIT") for d in SERVERS}
    try:
        for dialect, admin in admins.items():
            with admin.connect() as connection:
                connection.execute(text(f"CREATE DATABASE {name}"))
            dbs[dialect] = Db(dialect, server_url(dialect, name))
        path = Path(tmp_path_factory.mktemp("sqlite")) / "test.db"
        dbs["sqlite"] = Db("sqlite", make_url(f"sqlite:///{path}"))
        yield dbs
    finally:
        for db in dbs.values():
            db.engine.dispose()
        for dialect, admin in admins.items():
            if dialect in dbs:
                with admin.connect() as connection:
                    if dialect == "postgresql":
                        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    else:
                        connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
            admin.dispose()


@pytest.fixture(params=DIALECTS)
def db(request: pytest.FixtureRequest, databases: dict[str, Db]) -> Db:
    return databases[request.param]


class FakeContext:
    """A stand-in for the runtime's writer/reader context, to drive writers and readers directly."""

    def __init__(self, subtask_index: int = 0, parallelism: int = 1) -> None:
        self.subtask_index = subtask_index
        self.parallelism = parallelism
        self.attempt = 0
        self.restored_checkpoint_id: int | None = None
        self.metric_group = MetricRegistry().group({"operator": "test"})
        self.split_requests = 0

    def run_blocking(self, fn: Callable[..., Any], /, *args: Any) -> Awaitable[Any]:
        return asyncio.to_thread(fn, *args)

    def send_split_request(self) -> None:
        self.split_requests += 1

    def send_source_event(self, event: Any, /) -> None:
        raise NotImplementedError


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()
