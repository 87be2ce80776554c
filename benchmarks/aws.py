"""Kinesis sink and source throughput vs raw boto3 loops (same run, same kinesis-mock emulator).

The emulator is HEADWATER_KINESIS_ENDPOINT if set, else one started through tools/services.

(a) Sink: 1,000 records of 100 bytes in PutRecords calls of 5 records, through the fault proxy
    in delay mode (20 ms added to every request, as a distant region would). Batches are small so
    the emulator (about 1 ms per record, slower under concurrent calls) is not the bottleneck.
    Both sides keep IN_FLIGHT (8) requests in flight, so the ratio is the framework's overhead:
    - raw_put_rps: boto3 PutRecords calls from a pool of IN_FLIGHT threads (the sink's client is
      boto3 too, called from the job's blocking pool);
    - sink_rps: a bounded job (parallelism 1) into KinesisStreamsSink with
      max_in_flight_requests=IN_FLIGHT and a blocking pool of IN_FLIGHT threads.
(b) Source: 16,000 records of 100 bytes in a 4-shard stream, read directly (no proxy).
    - raw_get_rps: a plain boto3 loop: ListShards, then per shard GetShardIterator(TRIM_HORIZON)
      and GetRecords (Limit 10,000) until caught up;
    - source_rps: a bounded KinesisStreamsSource job (parallelism 1, TRIM_HORIZON) into a
      counting sink, timed from submission to the end of the job (start-up included).
Every side checks its result: each sink's stream holds exactly the records sent (read back), each
source read exactly the records in the stream. Raw and headwater runs alternate for ROUNDS (3)
rounds, each sink run into a fresh stream; the best of each side counts.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from headwater.connectors.aws import (
    AwsClientOptions,
    KinesisStreamsSink,
    KinesisStreamsSinkOptions,
    KinesisStreamsSource,
    KinesisStreamsSourceOptions,
)
from headwater.core import (
    DeliveryGuarantee,
    ExecutionConfig,
    Sink,
    SinkWriter,
    StreamEnvironment,
    WriterInitContext,
)

ROOT = Path(__file__).resolve().parent.parent
SINK_RECORDS = 1000
SINK_BATCH = 5
IN_FLIGHT = 8
ROUNDS = 3
SOURCE_RECORDS = 16000
SHARDS = 4
DELAY = 0.020


def record(i: int) -> bytes:
    """100 bytes naming ``i``, so a read-back can tell records apart."""
    return f"{i:010d}".encode().ljust(100, b"x")


CREDENTIALS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "bench",
    "aws_secret_access_key": "bench",
}


def _endpoint() -> tuple[str, Path | None]:
    configured = os.environ.get("HEADWATER_KINESIS_ENDPOINT")
    if configured:
        return configured, None
    state = Path(tempfile.mkdtemp(prefix="hw-bench-kinesis-"))
    services = [sys.executable, str(ROOT / "tools" / "services"), "--state", str(state)]
    subprocess.run([*services, "up", "--free-ports", "kinesis"], check=True, capture_output=True)
    env = subprocess.run([*services, "env", "kinesis"], check=True, capture_output=True, text=True)
    values = dict(token.split("=", 1) for token in shlex.split(env.stdout))
    return values["HEADWATER_KINESIS_ENDPOINT"], state


def _stop(state: Path | None) -> None:
    if state is not None:
        services = [sys.executable, str(ROOT / "tools" / "services"), "--state", str(state)]
        subprocess.run([*services, "down", "--all"], check=False, capture_output=True)


def _client(endpoint: str) -> Any:
    return boto3.client("kinesis", endpoint_url=endpoint, **CREDENTIALS)


def _options(endpoint: str) -> AwsClientOptions:
    return AwsClientOptions(
        endpoint_url=endpoint,
        region=CREDENTIALS["region_name"],
        access_key_id=CREDENTIALS["aws_access_key_id"],
        secret_access_key=CREDENTIALS["aws_secret_access_key"],
    )


def _stream(kinesis: Any, name: str) -> str:
    kinesis.create_stream(StreamName=name, ShardCount=SHARDS)
    while True:
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == "ACTIVE":
            return str(summary["StreamARN"])
        time.sleep(0.05)


def _read_back(kinesis: Any, arn: str) -> Counter[bytes]:
    """Every record's data in the stream, counted."""
    found: Counter[bytes] = Counter()
    for shard in kinesis.list_shards(StreamARN=arn)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamARN=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = kinesis.get_records(StreamARN=arn, ShardIterator=iterator, Limit=10_000)
            found.update(r["Data"] for r in answer["Records"])
            iterator = answer.get("NextShardIterator")
            if not answer["Records"] and answer.get("MillisBehindLatest", 0) == 0:
                break
    return found


def _check_stream(kinesis: Any, arn: str, side: str) -> None:
    found = _read_back(kinesis, arn)
    assert found == Counter(record(i) for i in range(SINK_RECORDS)), (
        f"{side}: the stream holds {sum(found.values())} records, {len(found)} distinct, "
        f"not the {SINK_RECORDS} sent once each"
    )


def _raw_put(endpoint: str, arn: str) -> float:
    kinesis = _client(endpoint)  # boto3 clients are thread-safe

    def put(start: int) -> None:
        records = [
            {"Data": record(i), "PartitionKey": str(i)} for i in range(start, start + SINK_BATCH)
        ]
        answer = kinesis.put_records(StreamARN=arn, Records=records)
        assert answer["FailedRecordCount"] == 0

    started = time.perf_counter()
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        list(pool.map(put, range(0, SINK_RECORDS, SINK_BATCH)))
    return SINK_RECORDS / (time.perf_counter() - started)


def _sink(endpoint: str, arn: str) -> float:
    options = KinesisStreamsSinkOptions(
        stream_arn=arn,
        client=_options(endpoint),
        writer={"max_batch_size": SINK_BATCH, "max_in_flight_requests": IN_FLIGHT},
    )
    env = StreamEnvironment(parallelism=1, execution=ExecutionConfig(blocking_pool_size=IN_FLIGHT))
    sink: KinesisStreamsSink[bytes] = KinesisStreamsSink(
        options, partition_key_generator=bytes.decode
    )
    env.from_collection([record(i) for i in range(SINK_RECORDS)]).sink_to(sink)
    started = time.perf_counter()
    env.execute("bench: kinesis sink")
    return SINK_RECORDS / (time.perf_counter() - started)


class _Writer(SinkWriter[Any]):
    def __init__(self, found: Counter[bytes]) -> None:
        self._found = found

    async def write_batch(self, records: Sequence[Any]) -> None:
        self._found.update(records)


class CountingSink(Sink[Any]):
    """Counts each record (cheap enough not to weigh on the source's figure)."""

    def __init__(self) -> None:
        self.found: Counter[bytes] = Counter()

    @property
    def delivery_guarantee(self) -> DeliveryGuarantee:
        return DeliveryGuarantee.NONE

    def create_writer(self, context: WriterInitContext) -> SinkWriter[Any]:
        return _Writer(self.found)


def _raw_get(endpoint: str, arn: str) -> float:
    started = time.perf_counter()
    found = _read_back(_client(endpoint), arn)
    elapsed = time.perf_counter() - started
    assert found == Counter(record(i) for i in range(SOURCE_RECORDS)), "raw loop: wrong records"
    return SOURCE_RECORDS / elapsed


def _source(endpoint: str, arn: str) -> float:
    options = KinesisStreamsSourceOptions(
        stream_arn=arn, client=_options(endpoint), initial_position="TRIM_HORIZON", bounded=True
    )
    env = StreamEnvironment(parallelism=1)
    sink = CountingSink()
    env.from_source(KinesisStreamsSource(options)).sink_to(sink)
    started = time.perf_counter()
    env.execute("bench: kinesis source")
    elapsed = time.perf_counter() - started
    assert sink.found == Counter(record(i) for i in range(SOURCE_RECORDS)), "source: wrong records"
    return SOURCE_RECORDS / elapsed


def run() -> dict[str, Any]:
    """Measure (a) the sink and (b) the source against raw boto3 loops; see the module docstring."""
    sys.path.insert(0, str(ROOT / "tools"))
    from servicekit.faults import FaultHttpProxy  # type: ignore[import-not-found]

    endpoint, state = _endpoint()
    kinesis = _client(endpoint)
    prefix = f"bench_{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}_{kind}{r}" for r in range(ROUNDS) for kind in ("raw", "sink")]
    names.append(f"{prefix}_source")
    raw_put: list[float] = []
    sink_put: list[float] = []
    try:
        # Interleaved rounds (raw, sink, raw, sink), each into fresh streams: the emulator warms
        # up over the first calls, and load from elsewhere should hit both sides alike.
        with FaultHttpProxy(endpoint, delay=DELAY) as proxy:
            for r in range(ROUNDS):
                raw_arn = _stream(kinesis, f"{prefix}_raw{r}")
                raw_put.append(_raw_put(proxy.url, raw_arn))
                _check_stream(kinesis, raw_arn, "raw loop")
                sink_arn = _stream(kinesis, f"{prefix}_sink{r}")
                sink_put.append(_sink(proxy.url, sink_arn))
                _check_stream(kinesis, sink_arn, "sink")
        source_arn = _stream(kinesis, f"{prefix}_source")
        for start in range(0, SOURCE_RECORDS, 500):
            records = [
                {"Data": record(i), "PartitionKey": str(i)} for i in range(start, start + 500)
            ]
            answer = kinesis.put_records(StreamARN=source_arn, Records=records)
            assert answer["FailedRecordCount"] == 0
        raw_get_rps = max(_raw_get(endpoint, source_arn) for _ in range(ROUNDS))
        source_rps = max(_source(endpoint, source_arn) for _ in range(ROUNDS))
    finally:
        for name in names:
            with contextlib.suppress(Exception):  # best-effort cleanup
                kinesis.delete_stream(StreamName=name)
        _stop(state)
    raw_put_rps, sink_rps = max(raw_put), max(sink_put)
    return {
        "sink_rps": round(sink_rps, 1),
        "raw_put_rps": round(raw_put_rps, 1),
        "sink_ratio": round(sink_rps / raw_put_rps, 2),
        "source_rps": round(source_rps, 1),
        "raw_get_rps": round(raw_get_rps, 1),
        "source_ratio": round(source_rps / raw_get_rps, 2),
        "sink_batch_size": SINK_BATCH,
        "in_flight": IN_FLIGHT,
        "proxy_delay_ms": int(DELAY * 1000),
    }
