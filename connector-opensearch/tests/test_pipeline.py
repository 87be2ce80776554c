"""The ``opensearch`` connector in pipeline files, run by ``headwater run``, on both servers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from headwater.connectors.opensearch import CONNECTOR, OpenSearchSinkOptions
from headwater.core import ConfigurationError, installed_connectors, load_pipeline
from headwater.core.testing import run_cli
from os_helpers import Server

FUNCTIONS = """
def order(i, rng):
    return {"n": i, "key": i % 10, "total": i * 3}
"""


def _write(directory: Path, source: str, sink: str) -> Path:
    (directory / "orders_functions.py").write_text(FUNCTIONS)
    path = directory / "orders.toml"
    text = f"""
        [job]
        parallelism = 2
        [checkpointing]
        interval = "100ms"
        storage = "checkpoints"
        {source}
        {sink}
        """
    path.write_text(textwrap.dedent(text))
    return path


def _sink(url: str, flavor: str, index: str, extra: str = "") -> str:
    return f"""
        [sink]
        connector = "opensearch"
        {extra}
        [sink.options]
        index = "{index}"
        id_fields = ["key"]
        version_field = "n"
        [sink.options.client]
        hosts = ["{url}"]
        flavor = "{flavor}"
        """


DATAGEN = """
    [source]
    connector = "datagen"
    generator = "orders_functions:order"
    [source.options]
    count = 500
    """


def test_registered_for_the_installed_core() -> None:
    connector = next(c for c in installed_connectors() if c.identifier == "opensearch")
    assert connector.spec is CONNECTOR
    assert connector.compatible, connector.requirement


def test_a_pipeline_writes_and_another_copies_the_index(
    server: Server, unique_name: str, tmp_path: Path
) -> None:
    path = _write(tmp_path, DATAGEN, _sink(server.url, server.flavor.value, unique_name))
    done = run_cli("run", "--quiet", str(path))
    assert done.returncode == 0, done.stderr[-3000:]
    latest = {k: max(i for i in range(500) if i % 10 == k) for k in range(10)}
    expected = [{"n": n, "key": k, "total": n * 3} for k, n in sorted(latest.items())]
    got = sorted((h["_source"] for h in server.documents(unique_name)), key=lambda d: d["key"])
    assert got == expected

    source = f"""
        [source]
        connector = "opensearch"
        [source.options]
        index = "{unique_name}"
        slices = 2
        [source.options.client]
        hosts = ["{server.url}"]
        flavor = "{server.flavor.value}"
        """
    copy = tmp_path / "copy"
    copy.mkdir()
    path = _write(copy, source, _sink(server.url, server.flavor.value, f"{unique_name}_copy"))
    done = run_cli("run", "--quiet", str(path))
    assert done.returncode == 0, done.stderr[-3000:]
    copied = sorted(
        (h["_source"] for h in server.documents(f"{unique_name}_copy")), key=lambda d: d["key"]
    )
    assert copied == expected


def test_a_bad_option_is_named_and_the_password_is_not_shown(tmp_path: Path) -> None:
    url = "http://writer:s3cret-pw@127.0.0.1:1"
    path = _write(
        tmp_path,
        DATAGEN,
        _sink(url, "opensearch", "orders").replace(
            "[sink.options]\n", '[sink.options]\n        action = "upsert"\n'
        ),
    )
    with pytest.raises(ConfigurationError, match="action") as caught:
        load_pipeline(path)
    assert "s3cret-pw" not in str(caught.value)
    path = _write(
        tmp_path, DATAGEN, _sink(url, "opensearch", "orders", extra='on_error = "ignore"')
    )
    with pytest.raises(ConfigurationError, match="on_error"):
        load_pipeline(path)


def test_options_name_the_option_at_fault() -> None:
    client = {"hosts": ["http://127.0.0.1:1"]}
    with pytest.raises(ConfigurationError, match="action 'update' needs id_fields"):
        OpenSearchSinkOptions(client=client, index="x", action="update")
    with pytest.raises(ConfigurationError, match="exactly_once"):
        OpenSearchSinkOptions(client=client, index="x", delivery_guarantee="exactly_once")
    with pytest.raises(ConfigurationError, match="one authentication method"):
        OpenSearchSinkOptions(
            client={**client, "username": "u", "password": "p", "api_key": "k"}, index="x"
        )
