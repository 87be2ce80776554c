"""pytest fixtures for real servers started by ``tools/services``, and fault proxies.

Registered through the ``pytest11`` entry point, so every test run in the workspace has
them. A test asks for the server it needs and gets its connection settings::

    async def test_roundtrip(kafka_service: RunningService, unique_name: str) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_service.address)
        ...

Session fixtures, one per service (the server starts on first use, on free ports, and
stops when the session ends): ``postgres_service``, ``mariadb_service``,
``rabbitmq_service``, ``redis_service``, ``mongodb_service``, ``kafka_service``,
``opensearch_service``, ``elasticsearch_service``, ``cassandra_service``,
``kinesis_service``, ``dynamodb_service``, ``moto_service``. When the service's address
variable is set (``HEADWATER_KAFKA_BOOTSTRAP``..., as printed by
``tools/services env``), that server is used and nothing is started.

Per-test fixtures for clean state: ``unique_name`` (a fresh name valid for topics, index
names, streams, tables, keyspaces and databases), ``postgres_database`` and
``mariadb_database`` (a fresh database, dropped afterwards), ``cassandra_keyspace`` (a
fresh keyspace, dropped afterwards).

Fault injection: ``fault_http_proxy_factory`` (fails a seeded share of the entries of
Kinesis PutRecords, Firehose PutRecordBatch, DynamoDB BatchWriteItem and ``_bulk``;
adds delay) and ``tcp_proxy_factory`` (delays, cuts and refuses connections).

A server that cannot be brought up fails the tests that need it, with ``tools/services``'
explanation; it never skips them. ``tools/services`` is found through
``HEADWATER_SERVICES_CMD`` or by walking up from the working directory and the rootdir; outside
the repository (a connector of its own), the copy of its ``servicekit`` package that this
distribution ships (``headwater.connectors.testing.servicekit``) manages the servers, with its
installs cached in ``~/.cache/headwater/services``. A context may also bring its own server: set
its address variable (``HEADWATER_MONGODB_URL``...) and nothing is started.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pytest

if TYPE_CHECKING:
    from servicekit.faults import FaultHttpProxy, TcpProxy  # type: ignore[import-not-found]

__all__ = [
    "BUNDLED_SERVICEKIT",
    "SERVICE_NAMES",
    "RunningService",
    "ServicesRunner",
    "cassandra_keyspace",
    "fault_http_proxy_factory",
    "headwater_services",
    "mariadb_database",
    "postgres_database",
    "tcp_proxy_factory",
    "unique_name",
]

#: The services with a ``<name>_service`` fixture (those of ``tools/services``).
SERVICE_NAMES = (
    "postgres",
    "mariadb",
    "rabbitmq",
    "redis",
    "mongodb",
    "kafka",
    "opensearch",
    "elasticsearch",
    "cassandra",
    "kinesis",
    "dynamodb",
    "moto",
)

_AWS_REGION = "us-east-1"


@dataclass(frozen=True, kw_only=True)
class RunningService:
    """Connection settings of one running server.

    ``address`` is what a client is given: a URL (``postgresql://...``, ``http://...``,
    ``amqp://...``) or, for Kafka and Cassandra, ``host:port``. ``env`` holds the
    ``HEADWATER_*`` variables as ``tools/services env`` prints them.
    """

    name: str
    host: str
    port: int
    address: str
    env: Mapping[str, str]

    def boto3_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client(...)`` against this AWS emulator.

        The credentials are fixed: DynamoDB Local keeps data per access key and region,
        so every client of one test must use the same ones (these).
        """
        return {
            "endpoint_url": self.address,
            "region_name": _AWS_REGION,
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
        }

    def with_database(self, database: str) -> RunningService:
        """Return the same server with the URL's path (the database) replaced."""
        parts = urlsplit(self.address)
        return replace(self, address=urlunsplit(parts._replace(path=f"/{database}")))


#: The servicekit package shipped in this distribution (``tools/servicekit``, copied at build).
BUNDLED_SERVICEKIT = "headwater.connectors.testing.servicekit"


def _find_services_command(config: pytest.Config) -> Path | None:
    """``tools/services`` (configured or above the working directory).

    ``None`` when neither is there: the bundled servicekit manages the servers.
    """
    configured = os.environ.get("HEADWATER_SERVICES_CMD")
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise pytest.UsageError(f"HEADWATER_SERVICES_CMD={configured} is not a file")
        return path.resolve()
    for start in (Path.cwd(), config.rootpath):
        for directory in (start, *start.parents):
            candidate = directory / "tools" / "services"
            if candidate.is_file():
                return candidate.resolve()
    if importlib.util.find_spec(BUNDLED_SERVICEKIT) is not None:
        return None
    raise pytest.UsageError(
        "tools/services not found above the working directory or the rootdir, and this "
        "headwater-connector-testing has no servicekit: set HEADWATER_SERVICES_CMD to its path"
    )


class ServicesRunner:
    """Brings services up for one pytest session through ``tools/services``.

    Its servers live in a state directory of their own (below the default one, owned by
    this process), so ``tools/services down --all`` stops them should the session die,
    while another session's servers are left alone.
    """

    def __init__(self, command: Path | None) -> None:
        self.command = command
        """``tools/services``, or ``None`` for the bundled servicekit."""
        settings = self.servicekit("settings")
        self.state_dir: Path = settings.default_state_dir() / f"pytest-{os.getpid()}"
        self._running: dict[str, RunningService] = {}
        self._started = False

    def servicekit(self, module: str) -> ModuleType:
        """Import ``servicekit.<module>`` from beside ``tools/services`` (or the bundled one).

        The package is loaded by path, so ``tools/`` never goes on ``sys.path`` (its other
        modules could shadow installed ones).
        """
        if self.command is None:
            return importlib.import_module(f"{BUNDLED_SERVICEKIT}.{module}")
        if "servicekit" not in sys.modules:
            package = self.command.parent / "servicekit"
            spec = importlib.util.spec_from_file_location(
                "servicekit", package / "__init__.py", submodule_search_locations=[str(package)]
            )
            if spec is None or spec.loader is None:
                raise pytest.UsageError(f"cannot load {package}")
            kit = importlib.util.module_from_spec(spec)
            sys.modules["servicekit"] = kit
            spec.loader.exec_module(kit)
        return importlib.import_module(f"servicekit.{module}")

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = ["-m", BUNDLED_SERVICEKIT] if self.command is None else [str(self.command)]
        argv = [sys.executable, *command, "--state", str(self.state_dir), *args]
        return subprocess.run(argv, capture_output=True, text=True, check=False)

    def get(self, name: str) -> RunningService:
        """Return the server ``name``: the configured one, or one started now."""
        if name not in self._running:
            self._running[name] = self._configured(name) or self._start(name)
        return self._running[name]

    def _configured(self, name: str) -> RunningService | None:
        variable = self.servicekit("registry").get(name).address[0]
        if not os.environ.get(variable):
            return None
        prefix = f"HEADWATER_{name.upper()}_"
        env = {k: v for k, v in os.environ.items() if k.startswith(prefix)}
        return _running_service(name, env[variable], env)

    def _start(self, name: str) -> RunningService:
        self._started = True
        up = self._run("--owner-pid", str(os.getpid()), "up", "--free-ports", name)
        if up.returncode != 0:
            pytest.fail(f"tools/services could not bring {name} up:\n{up.stderr}", pytrace=False)
        printed = self._run("env", name)
        if printed.returncode != 0:
            pytest.fail(f"tools/services env {name} failed:\n{printed.stderr}", pytrace=False)
        env = dict(token.split("=", 1) for token in shlex.split(printed.stdout))
        variable = self.servicekit("registry").get(name).address[0]
        return _running_service(name, env[variable], env)

    def close(self) -> None:
        """Stop every server this session started."""
        if self._started:
            down = self._run("down", "--all")
            if down.returncode != 0:
                sys.stderr.write(f"tools/services down failed:\n{down.stderr}")
            shutil.rmtree(self.state_dir, ignore_errors=True)


def _running_service(name: str, address: str, env: Mapping[str, str]) -> RunningService:
    parts = urlsplit(address if "://" in address else f"//{address}")
    if parts.hostname is None or parts.port is None:
        raise pytest.UsageError(f"{name}: cannot read host and port from {address!r}")
    return RunningService(
        name=name, host=parts.hostname, port=parts.port, address=address, env=dict(env)
    )


@pytest.fixture(scope="session")
def headwater_services(pytestconfig: pytest.Config) -> Iterator[ServicesRunner]:
    """Yield the session's :class:`ServicesRunner`; its servers stop when the session ends."""
    runner = ServicesRunner(_find_services_command(pytestconfig))
    try:
        yield runner
    finally:
        runner.close()


def _service_fixture(name: str) -> Any:
    def fixture(headwater_services: ServicesRunner) -> RunningService:
        return headwater_services.get(name)

    fixture.__name__ = f"{name}_service"
    fixture.__doc__ = f"The session's {name} server (started on first use)."
    return pytest.fixture(scope="session", name=f"{name}_service")(fixture)


for _name in SERVICE_NAMES:
    globals()[f"{_name}_service"] = _service_fixture(_name)


# --- clean state per test ------------------------------------------------------------


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """Return a fresh name like ``hw_test_roundtrip_1a2b3c4d`` (a-z, 0-9 and ``_``).

    Valid as a Kafka topic, OpenSearch index, Kinesis stream, DynamoDB table, Cassandra
    keyspace, SQL database and queue name. S3 bucket names forbid ``_``: use
    ``unique_name.replace("_", "-")``.
    """
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:24]
    return f"hw_{slug}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def postgres_database(
    postgres_service: RunningService, unique_name: str
) -> Iterator[RunningService]:
    """Create a PostgreSQL database for this test (``address`` points at it); drop it after."""
    import psycopg

    with psycopg.connect(postgres_service.address, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{unique_name}"')
    try:
        yield postgres_service.with_database(unique_name)
    finally:
        with psycopg.connect(postgres_service.address, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{unique_name}" WITH (FORCE)')


@pytest.fixture
def mariadb_database(mariadb_service: RunningService, unique_name: str) -> Iterator[RunningService]:
    """Create a MariaDB database for this test (``address`` points at it); drop it after."""
    import pymysql

    def execute(sql: str) -> None:
        connection = pymysql.connect(
            host=mariadb_service.host,
            port=mariadb_service.port,
            user=urlsplit(mariadb_service.address).username or "root",
            password=urlsplit(mariadb_service.address).password or "",
            autocommit=True,
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
        finally:
            connection.close()

    execute(f"CREATE DATABASE `{unique_name}`")
    try:
        yield mariadb_service.with_database(unique_name)
    finally:
        execute(f"DROP DATABASE IF EXISTS `{unique_name}`")


@pytest.fixture
def cassandra_keyspace(cassandra_service: RunningService, unique_name: str) -> Iterator[str]:
    """Create a keyspace (SimpleStrategy, one replica) for this test; drop it after.

    Cassandra here is 2.1: clients must use ``protocol_version=3``.
    """
    from cassandra.cluster import Cluster

    cluster = Cluster([cassandra_service.host], port=cassandra_service.port, protocol_version=3)
    session = cluster.connect()
    try:
        session.execute(
            f"CREATE KEYSPACE {unique_name} WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        yield unique_name
        session.execute(f"DROP KEYSPACE IF EXISTS {unique_name}")
    finally:
        cluster.shutdown()


# --- fault injection -----------------------------------------------------------------


@pytest.fixture
def fault_http_proxy_factory(
    headwater_services: ServicesRunner,
) -> Iterator[Callable[..., FaultHttpProxy]]:
    """Start fault-injecting HTTP proxies; each is stopped after the test.

    ``factory(upstream_url, *, failure_rate=0.0, seed=0, delay=0.0)`` returns a running
    proxy: point the client at its ``url``. See ``servicekit.faults.FaultHttpProxy``.
    """
    proxy_class = headwater_services.servicekit("faults").FaultHttpProxy
    started: list[FaultHttpProxy] = []

    def factory(upstream: str, **settings: Any) -> FaultHttpProxy:
        proxy = proxy_class(upstream, **settings).start()
        started.append(proxy)
        return proxy

    yield factory
    for proxy in started:
        proxy.stop()


@pytest.fixture
def tcp_proxy_factory(
    headwater_services: ServicesRunner,
) -> Iterator[Callable[[str, int], TcpProxy]]:
    """Start TCP proxies: ``factory(host, port)``; each is stopped after the test.

    Connect to the proxy's ``address``; call ``delay(seconds)``, ``cut()``, ``refuse()``
    and ``restore()`` to script an outage. See ``servicekit.faults.TcpProxy``.
    """
    proxy_class = headwater_services.servicekit("faults").TcpProxy
    started: list[TcpProxy] = []

    def factory(host: str, port: int) -> TcpProxy:
        proxy = proxy_class(host, port).start()
        started.append(proxy)
        return proxy

    yield factory
    for proxy in started:
        proxy.stop()
