"""The ``jdbc`` connector in pipeline files, on every test database, run by ``headwater run``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from headwater.core import ConfigurationError, load_pipeline
from headwater.core.testing import run_cli

FUNCTIONS = """
def order(i, rng):
    return {"id": i % 10, "total": i}
"""


def pipeline(directory: Path, url: str, table: str, extra: str = "") -> Path:
    (directory / "orders_functions.py").write_text(FUNCTIONS)
    path = directory / "orders.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [job]
            parallelism = 2
            [checkpointing]
            interval = "100ms"
            storage = "checkpoints"
            [source]
            connector = "datagen"
            generator = "orders_functions:order"
            [source.options]
            count = 500
            [sink]
            connector = "jdbc"
            [sink.options]
            url = "{url}"
            table = "{table}"
            key_columns = ["id"]
            delivery_guarantee = "exactly_once"
            batch_size = 40
            {extra}
            """
        )
    )
    return path


@pytest.mark.slow
def test_a_pipeline_upserts_into_the_database(db, tmp_path: Path) -> None:
    table = db.table("orders")
    db.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, total INTEGER NOT NULL)")
    path = pipeline(tmp_path, db.url_text, table)
    done = run_cli("run", "--quiet", str(path))
    assert done.returncode == 0, done.stderr[-3000:]
    # the last order of each id wins; every id was upserted
    rows = sorted(db.query(f"SELECT id, total FROM {table}"))
    assert rows == [(k, max(i for i in range(500) if i % 10 == k)) for k in range(10)]


def test_an_invalid_option_is_named_and_the_password_is_not_shown(tmp_path: Path) -> None:
    url = "postgresql+psycopg://writer:s3cret-pw@127.0.0.1:5432/shop"
    path = pipeline(tmp_path, url, "orders", extra='batch_interval = "often"')
    with pytest.raises(
        ConfigurationError, match=r"\[sink\] options \(jdbc\): jdbc sink: option 'batch_interval'"
    ) as caught:
        load_pipeline(path)
    assert "s3cret-pw" not in str(caught.value)
