"""A file source's bad lines as the job's dead-letter stream (``on_error`` = ``DeadLetterOnError()``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from headwater.connectors.base import DeadLetter, DeadLetterOnError, JsonFormat
from headwater.connectors.files import FileSource, FileSourceOptions
from headwater.core import CollectSink, StreamEnvironment


def test_bad_lines_reach_the_dead_letter_stream_with_their_positions(tmp_path: Path) -> None:
    lines = [b'{"n": %d}' % i if i % 4 else b"{broken %d" % i for i in range(200)]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    source = FileSource(
        FileSourceOptions(paths=(str(path),), split_size=300),
        JsonFormat(on_error=DeadLetterOnError()),
    )
    env = StreamEnvironment(parallelism=3)
    stream = env.from_source(source)
    good: CollectSink[Any] = CollectSink()
    letters: CollectSink[DeadLetter] = CollectSink()
    stream.sink_to(good)
    stream.dead_letters().sink_to(letters)
    env.execute("files with dead letters")
    assert sorted(r["n"] for r in good.results()) == [i for i in range(200) if i % 4]
    dead = letters.results()
    assert sorted(d.payload for d in dead) == sorted(b"{broken %d" % i for i in range(0, 200, 4))
    assert all(d.format == "json" and d.error.startswith("JSONDecodeError") for d in dead)
    assert len({str(d.position) for d in dead}) == len(dead), "each letter names its own line"
