"""headwater quickstart: clickstream -> 10 s event-time windows per user -> upsert into SQLite.

A seeded DataGen clickstream (200,000 clicks by 500 users, event timestamps up to 1 s out of order)
-> 10-second tumbling event-time windows per user (events, last page, last seen) -> upsert into the
SQLite table ``user_stats`` (one row per user and window), with a checkpoint every second in
``.headwater/quickstart/checkpoints``. No server is needed. Progress is printed every second and a
summary at the end. Interrupt it (Ctrl-C) and run it again: it resumes from its last checkpoint.

Run:  tools/dev quickstart            (or: python examples/quickstart.py [--fresh])
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from headwater.connectors.jdbc import JdbcSink, JdbcSinkOptions
from headwater.core import (
    CheckpointConfig,
    DataGenSource,
    ExecutionConfig,
    FixedDelayRestart,
    ProcessWindowFunction,
    StreamEnvironment,
    TimeWindow,
    TumblingEventTimeWindows,
    WatermarkStrategy,
)

HOME = Path(".headwater/quickstart")
DATABASE = HOME / "quickstart.db"
CHECKPOINTS = HOME / "checkpoints"
CLICKS = 200_000
USERS = 500
PAGES = ("/", "/search", "/product", "/cart", "/checkout", "/help")
START_MS = 1_700_000_000_000


def click(index: int, rng: random.Random) -> dict[str, object]:
    """Click ``index``: every draw comes from ``rng``, so a restored job regenerates it exactly."""
    user = min(int(rng.paretovariate(1.1)), USERS) - 1  # a few heavy users, a long tail
    return {
        "user": f"user-{user:03d}",
        "page": rng.choice(PAGES),
        "ts": START_MS + index * 2 - rng.randrange(1000),  # up to 1 s out of order
    }


class UserStats(ProcessWindowFunction[str, dict[str, object], dict[str, object]]):
    """One row per user and window: how many clicks, and the last page and time seen."""

    def process(
        self, key: str, window: TimeWindow, elements: list[dict[str, object]]
    ) -> Iterable[dict[str, object]]:
        last = max(elements, key=lambda e: e["ts"])  # type: ignore[arg-type, return-value]
        yield {
            "user_id": key,
            "window_start": window.start,
            "events": len(elements),
            "last_page": last["page"],
            "last_seen": last["ts"],
        }


def create_table() -> None:
    HOME.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(DATABASE) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS user_stats ("
            " user_id TEXT NOT NULL, window_start INTEGER NOT NULL, events INTEGER NOT NULL,"
            " last_page TEXT NOT NULL, last_seen INTEGER NOT NULL,"
            " PRIMARY KEY (user_id, window_start))"
        )


def build() -> StreamEnvironment:
    env = StreamEnvironment(
        parallelism=2,
        checkpointing=CheckpointConfig(
            interval=timedelta(seconds=1), storage=CHECKPOINTS, restore_from="latest"
        ),
        restart_strategy=FixedDelayRestart(attempts=3, delay=timedelta(seconds=1)),
        execution=ExecutionConfig(progress=True),
    )
    watermarks = WatermarkStrategy.for_bounded_out_of_orderness(
        timedelta(seconds=1)
    ).with_timestamp_assigner(lambda c, _ts: c["ts"])
    (
        env.from_source(
            DataGenSource(click, count=CLICKS, rows_per_second=50_000, seed=42),
            watermarks,
            "clicks",
        )
        .uid("clicks")
        .key_by(lambda c: c["user"])
        .window(TumblingEventTimeWindows.of(timedelta(seconds=10)))
        .process(UserStats(), name="user-stats")
        .uid("user-stats")
        .sink_to(
            JdbcSink(
                JdbcSinkOptions(
                    url=f"sqlite:///{DATABASE}",
                    table="user_stats",
                    key_columns=("user_id", "window_start"),
                    batch_size=2000,
                )
            ),
            name="sqlite",
        )
        .uid("sqlite")
    )
    return env


def summary(started: float, restored: bool) -> None:
    with sqlite3.connect(DATABASE) as db:
        rows, events = db.execute(
            "SELECT count(*), coalesce(sum(events), 0) FROM user_stats"
        ).fetchone()
        top = db.execute(
            "SELECT user_id, sum(events) AS n, max(last_seen) FROM user_stats"
            " GROUP BY user_id ORDER BY n DESC, user_id LIMIT 5"
        ).fetchall()
    how = "resumed from a checkpoint and finished" if restored else "finished"
    print(f"\nquickstart {how} in {time.monotonic() - started:.1f} s")
    print(
        f"user_stats in {DATABASE}: {rows:,} rows (user x 10 s window), {events:,} clicks counted"
    )
    for user, n, last_seen in top:
        seen = datetime.fromtimestamp(last_seen / 1000, UTC).isoformat(timespec="milliseconds")
        print(f"  {user}: {n:,} clicks, last seen at {seen}")
    if events != CLICKS:
        sys.exit(f"expected {CLICKS:,} clicks in user_stats, found {events:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="forget earlier runs and start over")
    args = parser.parse_args()
    if args.fresh:
        shutil.rmtree(HOME, ignore_errors=True)
    restored = CHECKPOINTS.is_dir() and any(CHECKPOINTS.glob("chk-*/_metadata"))
    create_table()
    started = time.monotonic()
    build().execute("quickstart")
    summary(started, restored)


if __name__ == "__main__":
    main()
