"""A slow sink slows the source: records in flight stay bounded by the channel capacity."""

import asyncio
from collections.abc import Sequence
from typing import Any

from headwater.core import (
    DeliveryGuarantee,
    ExecutionConfig,
    NumberSequenceSource,
    Sink,
    SinkWriter,
    StreamEnvironment,
    WriterInitContext,
)


class SlowWriter(SinkWriter[Any]):
    def __init__(self, sink: "SlowSink") -> None:
        self.sink = sink

    async def write_batch(self, records: Sequence[Any]) -> None:
        await asyncio.sleep(0.002)
        self.sink.written += len(records)


class SlowSink(Sink[Any]):
    def __init__(self) -> None:
        self.written = 0

    @property
    def delivery_guarantee(self) -> DeliveryGuarantee:
        return DeliveryGuarantee.NONE

    def create_writer(self, context: WriterInitContext) -> SinkWriter[Any]:
        return SlowWriter(self)


def test_in_flight_records_stay_bounded_with_a_slow_sink() -> None:
    batch, capacity = 100, 4
    sink = SlowSink()

    async def main() -> int:
        env = StreamEnvironment(
            execution=ExecutionConfig(batch_size=batch, channel_capacity=capacity)
        )
        env.from_source(NumberSequenceSource(0, 30_000, batch_size=batch), name="numbers").map(
            lambda x: x, name="ident"
        ).rebalance().sink_to(sink, name="slow")
        client = await env.execute_async("backpressure")
        peak = 0
        while not client._task.done():
            produced = client.metrics().get("ident", {}).get("numRecordsOut") or 0
            peak = max(peak, int(produced) - sink.written)
            await asyncio.sleep(0.001)
        await client.wait()
        return peak

    peak = asyncio.run(main())
    assert sink.written == 30_000
    # At most `capacity` batches queued in the channel, one being written by the sink and one
    # held by the producer waiting for space: never the whole input.
    assert 0 < peak <= (capacity + 2) * batch
