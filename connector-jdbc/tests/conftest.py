"""Fixtures: a fresh database per test module on SQLite, PostgreSQL and MariaDB.

PostgreSQL and MariaDB are brought up by ``tools/services`` through connector-testing's
``postgres_service`` / ``mariadb_service`` fixtures, as on a fresh CI machine: a server the
machine already runs is used (or the one ``HEADWATER_POSTGRES_URL`` / ``HEADWATER_MARIADB_URL``
names), a stopped one is started, a missing one installed. Each test module gets its own
``hw_<random>`` database, dropped at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core._metrics import MetricRegistry
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import URL, Engine

DRIVERS = {"postgresql": "postgresql+psycopg", "mariadb": "mysql+pymysql"}
"""The SQLAlchemy driver of each server dialect."""
DIALECTS = ["sqlite", "postgresql", "mariadb"]
_tables = itertools.count()


def server_url(service: RunningService, dialect: str, database: str | None = None) -> URL:
    """The SQLAlchemy URL of ``service`` (its ``test`` database, or ``database``)."""
    url = make_url(service.address).set(drivername=DRIVERS[dialect])
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
def databases(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_service: RunningService,
    mariadb_service: RunningService,
) -> Iterator[dict[str, Db]]:
    name = f"hw_{uuid.uuid4().hex[:10]}"
    dbs: dict[str, Db] = {}
    services = {"postgresql": postgres_service, "mariadb": mariadb_service}
    admins = {
        d: create_engine(server_url(service, d), isolation_level="AUTOCOMMIT")
        for d, service in services.items()
    }
    try:
        for dialect, admin in admins.items():
            with admin.connect() as connection:
                connection.execute(text(f"CREATE DATABASE {name}"))
            dbs[dialect] = Db(dialect, server_url(services[dialect], dialect, name))
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
