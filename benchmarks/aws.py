"""Kinesis sink and source throughput vs raw boto3 loops (same run, same kinesis-mock emulator).

The emulator is HEADWATER_KINESIS_ENDPOINT if set, else one started through tools/services.

(a) Sink: 1,000 records of 100 bytes in PutRecords calls of 5 records, through the fault proxy
    in delay mode (20 ms added to every request, as a distant region would). Batches are small so
    the emulator (about 1 ms per record, slower under concurrent calls) is not the bottleneck.
    - raw_put_rps: a plain boto3 loop of sequential PutRecords calls;
    - sink_rps: a bounded job (parallelism 1) into KinesisStreamsSink with the default
      max_in_flight_requests (50; the job's thread pool bounds the calls running at once).
(b) Source: 16,000 records of 100 bytes in a 4-shard stream, read directly (no proxy).
    - raw_get_rps: a plain boto3 loop: ListShards, then per shard GetShardIterator(TRIM_HORIZON)
      and GetRecords (Limit 10,000) until caught up;
    - source_rps: a bounded KinesisStreamsSource job (parallelism 1, TRIM_HORIZON) into a
      discarding sink, timed from submission to the end of the job (start-up included).
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
from headwater.core import DiscardingSink, StreamEnvironment

ROOT = Path(__file__).resolve().parent.parent
RECORD = b"x" * 100
SINK_RECORDS = 1000
SINK_BATCH = 5
SOURCE_RECORDS = 16000
SHARDS = 4
DELAY = 0.020
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


def _raw_put(endpoint: str, arn: str) -> float:
    kinesis = _client(endpoint)
    started = time.perf_counter()
    for i in range(0, SINK_RECORDS, SINK_BATCH):
        records = [{"Data": RECORD, "PartitionKey": str(i + j)} for j in range(SINK_BATCH)]
        answer = kinesis.put_records(StreamARN=arn, Records=records)
        assert answer["FailedRecordCount"] == 0
    return SINK_RECORDS / (time.perf_counter() - started)


def _sink(endpoint: str, arn: str) -> float:
    options = KinesisStreamsSinkOptions(
        stream_arn=arn, client=_options(endpoint), writer={"max_batch_size": SINK_BATCH}
    )
    env = StreamEnvironment(parallelism=1)
    env.from_collection([RECORD] * SINK_RECORDS).sink_to(KinesisStreamsSink(options))
    started = time.perf_counter()
    env.execute("bench: kinesis sink")
    return SINK_RECORDS / (time.perf_counter() - started)


def _raw_get(endpoint: str, arn: str) -> float:
    kinesis = _client(endpoint)
    started = time.perf_counter()
    count = 0
    for shard in kinesis.list_shards(StreamARN=arn)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamARN=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = kinesis.get_records(StreamARN=arn, ShardIterator=iterator, Limit=10_000)
            count += len(answer["Records"])
            iterator = answer.get("NextShardIterator")
            if not answer["Records"] and answer.get("MillisBehindLatest", 0) == 0:
                break
    assert count == SOURCE_RECORDS, count
    return count / (time.perf_counter() - started)


def _source(endpoint: str, arn: str) -> float:
    options = KinesisStreamsSourceOptions(
        stream_arn=arn, client=_options(endpoint), initial_position="TRIM_HORIZON", bounded=True
    )
    env = StreamEnvironment(parallelism=1)
    env.from_source(KinesisStreamsSource(options)).sink_to(DiscardingSink())
    started = time.perf_counter()
    env.execute("bench: kinesis source")
    return SOURCE_RECORDS / (time.perf_counter() - started)


def run() -> dict[str, Any]:
    """Measure (a) the sink and (b) the source against raw boto3 loops; see the module docstring."""
    sys.path.insert(0, str(ROOT / "tools"))
    from servicekit.faults import FaultHttpProxy  # type: ignore[import-not-found]

    endpoint, state = _endpoint()
    kinesis = _client(endpoint)
    names = [f"bench_{uuid.uuid4().hex[:8]}_{suffix}" for suffix in ("raw", "sink", "source")]
    try:
        raw_arn, sink_arn, source_arn = (_stream(kinesis, name) for name in names)
        with FaultHttpProxy(endpoint, delay=DELAY) as proxy:
            raw_put_rps = _raw_put(proxy.url, raw_arn)
            sink_rps = _sink(proxy.url, sink_arn)
        for i in range(0, SOURCE_RECORDS, 500):
            records = [{"Data": RECORD, "PartitionKey": str(i + j)} for j in range(500)]
            kinesis.put_records(StreamARN=source_arn, Records=records)
        raw_get_rps = _raw_get(endpoint, source_arn)
        source_rps = _source(endpoint, source_arn)
    finally:
        for name in names:
            with contextlib.suppress(Exception):  # best-effort cleanup
                kinesis.delete_stream(StreamName=name)
        _stop(state)
    return {
        "sink_rps": round(sink_rps, 1),
        "raw_put_rps": round(raw_put_rps, 1),
        "sink_ratio": round(sink_rps / raw_put_rps, 2),
        "source_rps": round(source_rps, 1),
        "raw_get_rps": round(raw_get_rps, 1),
        "source_ratio": round(source_rps / raw_get_rps, 2),
        "sink_batch_size": SINK_BATCH,
        "proxy_delay_ms": int(DELAY * 1000),
    }
