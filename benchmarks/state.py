"""State: the state codec against JSON, the RocksDB backend against memory, incremental checkpoints.

- codec_ratio: encode+decode of 100,000 mixed records (datetime with a time zone, Decimal, tuple,
  str, int, float) per record with the state codec, against ``json.dumps``/``json.loads`` of the
  same records converted by hand (isoformat, str, list) and back. >= 1.0: no slower than JSON.
- rocksdb_ratio: a keyed running reduce with the RocksDB backend against the memory backend, each
  in a process of its own so that ``peak_rss_mb`` is that backend's alone (records are generated,
  not held in a list). The issue's 5,000,000 records and 1,000,000 keys. Both runs include the
  job's final checkpoint, a full snapshot of the state.
- incremental_bytes_ratio: bytes of an incremental checkpoint after 1% of INCREMENTAL_KEYS changed,
  against a full checkpoint of the same state (and the durations of both).

Prints one JSON line (with --json).
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

CODEC_RECORDS = 100_000
ROUNDS = 3
REDUCE_RECORDS = 5_000_000
REDUCE_KEYS = 1_000_000
INCREMENTAL_KEYS = 1_000_000
TZ = dt.timezone(dt.timedelta(hours=2))


def _records() -> list[tuple[Any, ...]]:
    base = dt.datetime(2024, 1, 1, tzinfo=TZ)
    return [
        (
            i,
            f"user-{i % 977}",
            base + dt.timedelta(seconds=i),
            Decimal(i) / 100,
            (i % 7, "x"),
            i * 0.5,
        )
        for i in range(CODEC_RECORDS)
    ]


def _to_json(r: tuple[Any, ...]) -> list[Any]:
    return [r[0], r[1], r[2].isoformat(), str(r[3]), list(r[4]), r[5]]


def _from_json(v: list[Any]) -> tuple[Any, ...]:
    return (v[0], v[1], dt.datetime.fromisoformat(v[2]), Decimal(v[3]), tuple(v[4]), v[5])


def codec() -> dict[str, float]:
    from headwater.core._state_codec import decode_state, encode_state

    records = _records()
    codec_s = json_s = float("inf")
    for _ in range(ROUNDS):  # interleaved, best of each: the machine is shared
        started = time.perf_counter()
        decoded = [decode_state(encode_state(r)) for r in records]
        codec_s = min(codec_s, time.perf_counter() - started)
        started = time.perf_counter()
        via_json = [_from_json(json.loads(json.dumps(_to_json(r)))) for r in records]
        json_s = min(json_s, time.perf_counter() - started)
        assert decoded == records and via_json == records  # both sides checked
    return {
        "codec_rps": round(len(records) / codec_s),
        "json_rps": round(len(records) / json_s),
        "codec_ratio": round(json_s / codec_s, 3),
    }


def reduce_run(kind: str) -> dict[str, float]:
    """One keyed reduce in this process (run in a child by :func:`rocksdb`)."""
    from headwater.core import DataGenSource, Sink, SinkWriter, StateBackend, StreamEnvironment

    class Last(Sink[Any]):
        totals: dict[int, int] = {}

        def create_writer(self, context: Any) -> SinkWriter[Any]:
            totals = self.totals

            class Writer(SinkWriter[Any]):
                async def write_batch(self, batch: Any) -> None:
                    for key, total in batch:
                        totals[key] = total

            return Writer()

    with tempfile.TemporaryDirectory() as tmp:
        backend = StateBackend.rocksdb(Path(tmp)) if kind == "rocksdb" else StateBackend.memory()
        env = StreamEnvironment(parallelism=1, state_backend=backend)
        # Generated, not a list in memory: the process's peak RSS is the state's, not the input's.
        source = DataGenSource(lambda i, _rng: (i % REDUCE_KEYS, i), count=REDUCE_RECORDS)
        sink = Last()
        env.from_source(source).key_by(lambda r: r[0]).reduce(
            lambda a, b: (a[0], a[1] + b[1])
        ).sink_to(sink)
        started = time.perf_counter()
        env.execute(f"reduce-{kind}")
        elapsed = time.perf_counter() - started
    expected = {k: sum(range(k, REDUCE_RECORDS, REDUCE_KEYS)) for k in (0, REDUCE_KEYS - 1)}
    assert all(Last.totals[k] == v for k, v in expected.items()), "reduce results checked"
    return {
        "rps": round(REDUCE_RECORDS / elapsed),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def rocksdb() -> dict[str, float]:
    results = {}
    for kind in ("memory", "rocksdb"):
        out = subprocess.run(
            [sys.executable, __file__, "--reduce", kind], capture_output=True, text=True, check=True
        )
        results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "memory_rps": results["memory"]["rps"],
        "rocksdb_rps": results["rocksdb"]["rps"],
        "rocksdb_ratio": round(results["rocksdb"]["rps"] / results["memory"]["rps"], 3),
        "memory_peak_rss_mb": results["memory"]["peak_rss_mb"],
        "rocksdb_peak_rss_mb": results["rocksdb"]["peak_rss_mb"],
    }


def incremental() -> dict[str, float]:
    from headwater.core._state import KeyedStateBackend, ValueStateDescriptor
    from headwater.core._state_files import write_chunks_to_bytes

    backend = KeyedStateBackend(128, track_changes=True)
    state = backend.get_state(ValueStateDescriptor("v"))
    for key in range(INCREMENTAL_KEYS):
        backend.current_key = key
        state.update((key, "value", key * 1.5))
    started = time.perf_counter()
    full = len(write_chunks_to_bytes(backend.snapshot(full=True)))
    full_s = time.perf_counter() - started
    for key in range(0, INCREMENTAL_KEYS, 100):  # 1% of the keys change
        backend.current_key = key
        state.update((key, "changed", 0.0))
    started = time.perf_counter()
    delta = len(write_chunks_to_bytes(backend.snapshot(full=False)))
    delta_s = time.perf_counter() - started
    return {
        "full_checkpoint_bytes": full,
        "incremental_checkpoint_bytes": delta,
        "full_checkpoint_s": round(full_s, 3),
        "incremental_checkpoint_s": round(delta_s, 3),
        "incremental_bytes_ratio": round(delta / full, 4),
    }


def run() -> dict[str, Any]:
    return {
        **codec(),
        **rocksdb(),
        **incremental(),
        "reduce_records": REDUCE_RECORDS,
        "reduce_keys": REDUCE_KEYS,
        "incremental_keys": INCREMENTAL_KEYS,
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--reduce"]:
        print(json.dumps(reduce_run(sys.argv[2])))
