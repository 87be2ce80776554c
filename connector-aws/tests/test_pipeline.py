"""The AWS connectors in pipeline files, run by ``headwater run`` against the emulators."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest
from aws_helpers import client, create_table_with_id, read_stream, scan_items
from headwater.connectors.testing.pytest_plugin import RunningService
from headwater.core.testing import run_cli

FUNCTIONS = """
def order(i, rng):
    return {"id": f"o{i}", "total": i * 3}

def customer(order):
    return f"c{int(order['id'][1:]) % 4}"

def label(order):
    return f"{order['id']}:{order['total']}"
"""


def client_table(service: RunningService) -> str:
    """The ``client`` option as an inline TOML table (the emulator's endpoint and test keys)."""
    kwargs = service.boto3_kwargs()
    return (
        f'{{ region = "{kwargs["region_name"]}", endpoint_url = "{kwargs["endpoint_url"]}", '
        f'access_key_id = "{kwargs["aws_access_key_id"]}", '
        f'secret_access_key = "{kwargs["aws_secret_access_key"]}" }}'
    )


def run(directory: Path, name: str, toml: str) -> str:
    (directory / "aws_steps.py").write_text(FUNCTIONS)
    path = directory / f"{name}.toml"
    path.write_text(textwrap.dedent(toml))
    done = run_cli("run", "--quiet", str(path))
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_kinesis_pipelines_write_and_read_a_stream(
    kinesis_service: RunningService, kinesis_client: Any, new_stream: Any, tmp_path: Path
) -> None:
    arn = new_stream(2)
    aws = client_table(kinesis_service)
    run(
        tmp_path,
        "write",
        f"""
        [source]
        connector = "datagen"
        generator = "aws_steps:order"
        [source.options]
        count = 120
        [sink]
        connector = "kinesis"
        format = "json"
        partition_key = "aws_steps:customer"
        [sink.options]
        stream_arn = "{arn}"
        client = {aws}
        """,
    )
    written = read_stream(kinesis_client, arn)
    assert sorted((r["PartitionKey"], orjson.loads(r["Data"])["id"]) for r in written) == sorted(
        (f"c{i % 4}", f"o{i}") for i in range(120)
    )
    printed = run(
        tmp_path,
        "read",
        f"""
        [job]
        parallelism = 2
        [source]
        connector = "kinesis"
        format = "json"
        [source.options]
        stream_arn = "{arn}"
        initial_position = "TRIM_HORIZON"
        bounded = true
        client = {aws}
        [[steps]]
        map = "aws_steps:label"
        [sink]
        connector = "print"
        """,
    )
    lines = [line.split("> ", 1)[-1] for line in printed.splitlines()]
    assert sorted(lines) == sorted(f"o{i}:{i * 3}" for i in range(120))


@pytest.mark.slow
def test_a_dynamodb_pipeline_puts_items(
    dynamodb_service: RunningService, unique_name: str, tmp_path: Path
) -> None:
    dynamodb = client(dynamodb_service, "dynamodb")
    create_table_with_id(dynamodb, unique_name)
    run(
        tmp_path,
        "items",
        f"""
        [source]
        connector = "datagen"
        generator = "aws_steps:order"
        [source.options]
        count = 60
        [sink]
        connector = "dynamodb"
        [sink.options]
        table_name = "{unique_name}"
        client = {client_table(dynamodb_service)}
        """,
    )
    items = sorted((i["id"], int(i["total"])) for i in scan_items(dynamodb, unique_name))
    assert items == sorted((f"o{i}", i * 3) for i in range(60))
