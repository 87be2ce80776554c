"""Window steps in pipeline files: every aggregate of the vocabulary, compared with the input."""

from __future__ import annotations

import sys
import textwrap
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from headwater.core import ConfigurationError, DataGenSource, StreamEnvironment, load_pipeline

FUNCTIONS = """
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from headwater.core import AggregateFunction

BASE = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)


def order(i, rng):
    # up to 300 ms out of order
    at = BASE + timedelta(milliseconds=i * 7 - rng.randrange(300))
    return {"user": f"u{i % 3}", "amount": Decimal(rng.randrange(1, 10_000)) / 100, "at": at}


def user(record):
    return record["user"]


def at(record):
    return record["at"]


def row(result):
    start, end = result["start"].isoformat(), result["end"].isoformat()
    return f"{result['key']}|{start}|{end}|{result['value']!r}"


def larger(a, b):
    return b if b["amount"] > a["amount"] else a


class Spread(AggregateFunction):
    def create_accumulator(self):
        return None

    def add(self, value, acc):
        x = value["amount"]
        return (x, x) if acc is None else (min(acc[0], x), max(acc[1], x))

    def get_result(self, acc):
        return acc[1] - acc[0]
"""

PIPELINE = """
[source]
connector = "datagen"
generator = "window_functions:order"
[source.options]
count = 1500

[[steps]]
key_by = "window_functions:user"

[[steps]]
window = {WINDOW}

[[steps]]
map = "window_functions:row"

[sink]
connector = "print"
"""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SIZE = timedelta(seconds=1)


@pytest.fixture
def functions(tmp_path: Path) -> Iterator[Any]:
    (tmp_path / "window_functions.py").write_text(FUNCTIONS)
    sys.path.insert(0, str(tmp_path))
    import window_functions

    yield window_functions
    sys.path.remove(str(tmp_path))
    del sys.modules["window_functions"]


def run(tmp_path: Path, window: str, capsys: pytest.CaptureFixture[str]) -> list[tuple[Any, ...]]:
    """Run the pipeline with ``window``; its printed rows as ``(key, start, end, repr(value))``."""
    path = tmp_path / "pipeline.toml"
    path.write_text(textwrap.dedent(PIPELINE).replace("{WINDOW}", window))
    capsys.readouterr()
    load_pipeline(path).run()
    rows = []
    for line in capsys.readouterr().out.splitlines():
        key, start, end, value = line.split("|")
        rows.append((key, datetime.fromisoformat(start), datetime.fromisoformat(end), value))
    return rows


def orders(functions: Any) -> list[dict[str, Any]]:
    env = StreamEnvironment()
    generated: list[dict[str, Any]] = env.from_source(
        DataGenSource(functions.order, count=1500)
    ).execute_and_collect()
    return generated


def tumbling(
    records: list[dict[str, Any]], fold: Callable[[list[dict[str, Any]]], Any]
) -> list[tuple[Any, ...]]:
    groups: dict[tuple[str, datetime], list[dict[str, Any]]] = defaultdict(list)
    for o in records:
        groups[(o["user"], EPOCH + (o["at"] - EPOCH) // SIZE * SIZE)].append(o)
    return sorted((u, s, s + SIZE, repr(fold(os))) for (u, s), os in groups.items())


CASES: dict[str, tuple[str, Callable[[list[dict[str, Any]]], Any]]] = {
    "count": ('{ tumbling = "1s", aggregate = "count", timestamp = "window_functions:at" }', len),
    "sum": (
        '{ tumbling = "1s", aggregate = "sum", field = "amount", timestamp = "window_functions:at",'
        ' max_delay = "300ms" }',
        lambda os: sum(o["amount"] for o in os),
    ),
    "min": (
        '{ tumbling = "1s", aggregate = "min", field = "at", timestamp = "window_functions:at" }',
        lambda os: min(o["at"] for o in os),
    ),
    "max": (
        '{ tumbling = "1s", aggregate = "max", field = "amount", timestamp = "window_functions:at" }',
        lambda os: max(o["amount"] for o in os),
    ),
    "avg": (
        '{ tumbling = "1s", aggregate = "avg", field = "amount", timestamp = "window_functions:at" }',
        lambda os: sum((o["amount"] for o in os), Decimal(0)) / len(os),
    ),
    "reduce function": (
        '{ tumbling = "1s", aggregate = "window_functions:larger", timestamp = "window_functions:at" }',
        lambda os: max(os, key=lambda o: o["amount"]),
    ),
    "AggregateFunction": (
        '{ tumbling = "1s", aggregate = "window_functions:Spread", timestamp = "window_functions:at" }',
        lambda os: max(o["amount"] for o in os) - min(o["amount"] for o in os),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_tumbling_window_step_matches_a_direct_computation(
    tmp_path: Path, functions: Any, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    window, fold = CASES[case]
    # reduce keeps the first of equal amounts, as max() does: records arrive in index order
    assert sorted(run(tmp_path, window, capsys)) == tumbling(orders(functions), fold)


def test_sliding_and_session_window_steps(
    tmp_path: Path, functions: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    records = orders(functions)
    sliding = run(
        tmp_path,
        '{ sliding = "2s", slide = "1s", aggregate = "count", timestamp = "window_functions:at" }',
        capsys,
    )
    counts: dict[tuple[str, datetime], int] = defaultdict(int)
    for o in records:
        last = EPOCH + (o["at"] - EPOCH) // SIZE * SIZE
        for start in (last, last - SIZE):
            counts[(o["user"], start)] += 1
    assert sorted(sliding) == sorted((u, s, s + 2 * SIZE, repr(n)) for (u, s), n in counts.items())
    # every user has a record at least every 21 ms: one session per user, over all its records
    sessions = run(
        tmp_path,
        '{ session = "500ms", aggregate = "count", timestamp = "window_functions:at" }',
        capsys,
    )
    expected = []
    for name in ("u0", "u1", "u2"):
        mine = [o["at"] for o in records if o["user"] == name]
        end = max(mine) + timedelta(milliseconds=500)
        expected.append((name, min(mine), end, repr(len(mine))))
    assert sorted(sessions) == expected


def test_a_processing_time_window_counts_every_record(
    tmp_path: Path, functions: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    window = '{ tumbling = "1h", aggregate = "count", time = "processing" }'
    per_user: dict[str, int] = defaultdict(int)
    for key, _, _, n in run(tmp_path, window, capsys):
        per_user[key] += int(n)
    assert dict(per_user) == {"u0": 500, "u1": 500, "u2": 500}


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (
            '{ aggregate = "count" }',
            r"#2 window: expected exactly one of tumbling, sliding, session",
        ),
        (
            '{ tumbling = "1s", aggregate = "median" }',
            r"#2 window aggregate: expected one of count",
        ),
        ('{ tumbling = "ten", aggregate = "count" }', r"#2 window tumbling: expected a duration"),
        ('{ sliding = "2s", aggregate = "count" }', r"a sliding window needs slide"),
        (
            '{ tumbling = "1s", aggregate = "count", sizee = 1 }',
            r"unknown key\(s\): 'sizee' \(did you mean",
        ),
        ('{ tumbling = "1s", aggregate = "count", field = "x" }', r"count takes no field"),
        (
            '{ tumbling = "1s", aggregate = "count", time = "processing", max_delay = "1s" }',
            r"timestamp and max_delay are for event-time windows",
        ),
        ('"10s"', r"#2 window: expected a table"),
    ],
)
def test_window_step_mistakes_name_the_key(
    tmp_path: Path, functions: Any, window: str, message: str
) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text(textwrap.dedent(PIPELINE).replace("{WINDOW}", window))
    with pytest.raises(ConfigurationError, match=message):
        load_pipeline(path)


def test_a_window_step_needs_a_key_by(tmp_path: Path, functions: Any) -> None:
    path = tmp_path / "pipeline.toml"
    text = textwrap.dedent(PIPELINE).replace("{WINDOW}", '{ tumbling = "1s", aggregate = "count" }')
    text = text.replace('[[steps]]\nkey_by = "window_functions:user"\n\n', "")
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=r"#1: window must follow a key_by step"):
        load_pipeline(path)


def test_a_timestamp_function_must_return_a_time(
    tmp_path: Path, functions: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    window = '{ tumbling = "1s", aggregate = "count", timestamp = "window_functions:user" }'
    with pytest.raises(Exception, match=r"expected a datetime or epoch milliseconds, got str"):
        run(tmp_path, window, capsys)
