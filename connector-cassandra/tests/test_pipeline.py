"""The ``cassandra`` connector in pipeline files, run by ``headwater run`` in a child process."""

from __future__ import annotations

import textwrap
from pathlib import Path

from cassandra.cluster import Session
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core.testing import run_cli

FUNCTIONS = """
def hit(i, rng):
    return {"k": i % 7}


def to_copy(row):
    return {"k": row["k"], "n": row["n"]}
"""


def test_datagen_to_cassandra_then_cassandra_to_cassandra(
    session: Session, cassandra_service: RunningService, cassandra_keyspace: str, tmp_path: Path
) -> None:
    session.execute("CREATE TABLE hits (k int PRIMARY KEY, n counter)")
    session.execute("CREATE TABLE copy (k int PRIMARY KEY, n bigint)")
    (tmp_path / "hits_functions.py").write_text(FUNCTIONS)
    connection = textwrap.dedent(
        f"""
        [{{kind}}.options.connection]
        contact_points = ["{cassandra_service.host}"]
        port = {cassandra_service.port}
        protocol_version = 3
        """
    )
    write = tmp_path / "write.toml"
    write.write_text(
        textwrap.dedent(
            f"""
            [job]
            parallelism = 2
            [checkpointing]
            interval = "100ms"
            storage = "checkpoints-write"
            [source]
            connector = "datagen"
            generator = "hits_functions:hit"
            [source.options]
            count = 700
            [sink]
            connector = "cassandra"
            [sink.options]
            keyspace = "{cassandra_keyspace}"
            cql = "UPDATE {cassandra_keyspace}.hits SET n = n + 1 WHERE k = :k"
            delivery_guarantee = "exactly_once"
            """
        )
        + connection.format(kind="sink")
    )
    done = run_cli("run", "--quiet", str(write))
    assert done.returncode == 0, done.stderr[-3000:]
    assert {r.k: r.n for r in session.execute("SELECT k, n FROM hits")} == dict.fromkeys(
        range(7), 100
    )

    copy = tmp_path / "copy.toml"
    copy.write_text(
        textwrap.dedent(
            f"""
            [job]
            parallelism = 2
            [source]
            connector = "cassandra"
            [source.options]
            keyspace = "{cassandra_keyspace}"
            table = "hits"
            split_count = 3
            [[steps]]
            map = "hits_functions:to_copy"
            [sink]
            connector = "cassandra"
            [sink.options]
            keyspace = "{cassandra_keyspace}"
            table = "copy"
            key_columns = ["k"]
            """
        )
        + connection.format(kind="source")
        + connection.format(kind="sink")
    )
    done = run_cli("run", "--quiet", str(copy))
    assert done.returncode == 0, done.stderr[-3000:]
    assert {r.k: r.n for r in session.execute("SELECT k, n FROM copy")} == dict.fromkeys(
        range(7), 100
    )
