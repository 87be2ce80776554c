"""Conformance suites: a connector supplies an external context and inherits the tests.

Usage::

    class TestMySink(SinkTestSuiteBase):
        @pytest.fixture
        def external(self, tmp_path):
            return MySinkContext(tmp_path)

Every test takes a few seconds at most. The bad-record tests of the source suite need two
optional context methods (:meth:`SourceExternalContext.write_bad_records` and
:meth:`SourceExternalContext.create_source_with_error_policy`); a context without them gets those
tests skipped with a reason naming the methods, never silently.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from headwater.connectors.base import (
    DeadLetter,
    DeadLetterOnError,
    ErrorPolicy,
    FailOnError,
    SkipOnError,
)
from headwater.connectors.testing._harness import run_with_kills
from headwater.core import (
    Boundedness,
    CheckpointConfig,
    CollectSink,
    DataGenSource,
    DeliveryGuarantee,
    OutputTag,
    Sink,
    Source,
    StreamEnvironment,
    TumblingEventTimeWindows,
    WatermarkStrategy,
)

__all__ = [
    "SinkExternalContext",
    "SinkTestSuiteBase",
    "SourceExternalContext",
    "SourceTestSuiteBase",
]


class SinkExternalContext(ABC):
    """What a sink's conformance tests need from its external system."""

    guarantee: DeliveryGuarantee = DeliveryGuarantee.AT_LEAST_ONCE
    """The guarantee the sink declares (checked under process kills)."""
    job_target: str
    """``module:function`` of a job for :mod:`.jobrunner` that writes the integers
    ``[0, count)`` (DataGen, ``rows_per_second=rate``) into this sink; it receives ``count``,
    ``rate`` and :meth:`job_params` as string keywords."""

    @abstractmethod
    def create_sink(self) -> Sink[Any]:
        """A sink writing into the test's external resource (a topic, a table, a directory)."""

    @abstractmethod
    def read_back(self) -> list[Any]:
        """Every record the sink made visible, in any order, a record written twice twice.

        The guarantee tests count duplicates through it: a read-back that cannot see them (a
        put by key that overwrites) proves nothing; write append-only (a key per write) instead.
        """

    def job_params(self) -> dict[str, str]:
        """Extra parameters of :attr:`job_target` (where to write)."""
        return {}


class SinkTestSuiteBase:
    """Tests every sink must pass. Provide a fixture ``external`` returning a :class:`SinkExternalContext`."""

    count = 2000
    restart_parallelism = 3
    """The parallelism of the runs after a kill in :meth:`test_restore_with_other_parallelism`
    (the first run has 2)."""

    def test_bounded_write_equals_input(self, external: SinkExternalContext) -> None:
        """Everything written by a bounded job is read back, once."""
        env = StreamEnvironment(parallelism=2)
        env.from_collection(list(range(self.count))).sink_to(external.create_sink())
        result = env.execute("sink conformance: bounded")
        assert sorted(external.read_back()) == list(range(self.count))
        sink_metrics = [m for name, m in result.metrics.items() if "Sink" in name or "sink" in name]
        assert any(m.get("numRecordsIn") == self.count for m in sink_metrics), result.metrics

    def test_read_back_sees_duplicates(self, external: SinkExternalContext) -> None:
        """Records written twice are read back twice: the other tests could see a duplicate."""
        env = StreamEnvironment(parallelism=1)
        twice = [n for n in range(20) for _ in range(2)]
        env.from_collection(twice).sink_to(external.create_sink())
        env.execute("sink conformance: duplicates")
        assert sorted(external.read_back()) == twice, (
            f"{type(external).__name__}.read_back hides duplicates: the guarantee tests "
            "cannot see a record delivered twice"
        )

    @pytest.mark.slow
    def test_guarantee_under_process_kills(
        self, external: SinkExternalContext, tmp_path: Path
    ) -> None:
        """Kill the job's process at random moments; the output keeps the declared guarantee."""
        self._check_under_kills(external, tmp_path, restart_parallelism=2, kills=5, seed=42)

    @pytest.mark.slow
    def test_restore_with_other_parallelism(
        self, external: SinkExternalContext, tmp_path: Path
    ) -> None:
        """Kill the job, restart it with another parallelism: the guarantee still holds."""
        self._check_under_kills(
            external, tmp_path, restart_parallelism=self.restart_parallelism, kills=3, seed=7
        )

    def test_stop_with_savepoint_then_restore_delivers_each_record_once(
        self, external: SinkExternalContext, tmp_path: Path
    ) -> None:
        """A clean stop needs no replay: whatever the guarantee, every record arrives once.

        The job stops with a savepoint mid-stream and a job restored from it runs to the end;
        a sink that wrote (or sent from a timer) anything past the savepoint would repeat it.
        """

        def job(restore: str | None) -> StreamEnvironment:
            env = StreamEnvironment(
                parallelism=2,
                checkpointing=CheckpointConfig(
                    interval=timedelta(milliseconds=100), restore_from=restore
                ),
            )
            numbers = DataGenSource(
                _identity, count=self.count, rows_per_second=1500, num_splits=2, batch_size=50
            )
            env.from_source(numbers).uid("numbers").sink_to(external.create_sink()).uid("sink")
            return env

        async def stop_midway() -> Path:
            client = await job(None).execute_async("sink conformance: stop")
            await asyncio.sleep(0.6)
            return await client.stop_with_savepoint(tmp_path / "savepoint")

        savepoint = asyncio.run(stop_midway())
        job(str(savepoint)).execute("sink conformance: restored")
        got = external.read_back()
        repeated = sorted(r for r, n in Counter(got).items() if n > 1)
        assert not repeated, f"written twice across the stop: {repeated[:20]}"
        assert sorted(got) == list(range(self.count))

    def _check_under_kills(
        self,
        external: SinkExternalContext,
        tmp_path: Path,
        *,
        restart_parallelism: int,
        kills: int,
        seed: int,
    ) -> None:
        report = run_with_kills(
            external.job_target,
            checkpoint_dir=tmp_path / "checkpoints",
            parallelism=2,
            restart_parallelism=restart_parallelism,
            params={"count": str(self.count * 2), "rate": "1500", **external.job_params()},
            kills=kills,
            min_uptime=0.6,
            max_uptime=1.2,
            seed=seed,
        )
        report.check(kills)
        got = external.read_back()
        expected = list(range(self.count * 2))
        if external.guarantee is DeliveryGuarantee.EXACTLY_ONCE:
            assert sorted(got) == expected
        else:
            assert set(got) == set(expected)


class SourceExternalContext(ABC):
    """What a source's conformance tests need from its external system.

    Records are the integers the tests write; a source reads them back as the same integers.
    """

    @abstractmethod
    def write_test_data(self, records: Sequence[Any]) -> None:
        """Write ``records`` into the test's external resource."""

    @abstractmethod
    def create_source(self, *, bounded: bool) -> Source[Any, Any, Any]:
        """A source reading the resource: bounded (ends after the data written) or unbounded."""

    def write_test_data_in_splits(self, splits: Sequence[Sequence[Any]]) -> None:
        """Write each of ``splits`` (two or more) into a split of its own, in order (optional).

        A bounded source created after this must hand all those splits to one reader at once
        (parallelism 1). Without it the per-split event-time test is skipped, naming this method.
        """
        raise NotImplementedError

    def write_bad_records(self, count: int) -> None:
        """Write ``count`` records the source's format cannot decode (optional, with the next).

        Without it the bad-record tests are skipped, with a reason naming this method.
        """
        raise NotImplementedError

    def create_source_with_error_policy(self, policy: ErrorPolicy) -> Source[Any, Any, Any]:
        """A bounded source whose format hands undecodable records to ``policy`` (optional)."""
        raise NotImplementedError


def _collect_unbounded(
    source: Source[Any, Any, Any],
    sink: CollectSink[Any],
    *,
    parallelism: int,
    restore_from: str | None = None,
    until: Callable[[list[Any]], bool],
    timeout: float,
    savepoint: Path | None = None,
) -> Path | None:
    """Run ``source`` into ``sink`` until ``until(results)`` or ``timeout`` seconds.

    Then stop with a savepoint at ``savepoint`` (returned) or cancel. One sink for a run and its
    restore: the savepoint's committables are committed again after the restore, and
    :class:`CollectSink` keeps staged records in the sink object.
    """

    async def run() -> Path | None:
        env = StreamEnvironment(
            parallelism=parallelism,
            checkpointing=CheckpointConfig(
                interval=timedelta(milliseconds=100), restore_from=restore_from
            ),
        )
        env.from_source(source).sink_to(sink)
        client = await env.execute_async("source conformance: unbounded")
        deadline = time.monotonic() + timeout
        while not until(sink.results()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if savepoint is not None:
            return await client.stop_with_savepoint(savepoint)
        await client.cancel()
        return None

    return asyncio.run(run())


_AHEAD_MS = 600_000
"""How far the second split of the per-split event-time test is ahead (10 minutes)."""


def _identity(index: int, _rng: Any) -> int:
    return index


def _after(seconds: float, done: Callable[[list[Any]], bool]) -> Callable[[list[Any]], bool]:
    """A condition that holds once ``seconds`` have passed and ``done(results)`` holds."""
    start = time.monotonic()
    return lambda results: time.monotonic() - start >= seconds and done(results)


def _window_counts(got: list[tuple[bool, int, int]]) -> dict[tuple[bool, int], int]:
    counts: dict[tuple[bool, int], int] = {}
    for ahead, window, count in got:
        assert (ahead, window) not in counts, f"window {window} fired twice"
        counts[(ahead, window)] = count
    return counts


def _require_bad_records(
    external: SourceExternalContext, count: int, policy: ErrorPolicy
) -> Source[Any, Any, Any]:
    """Write ``count`` bad records and build the source, or skip saying what is missing."""
    try:
        external.write_bad_records(count)
        return external.create_source_with_error_policy(policy)
    except NotImplementedError:
        pytest.skip(
            f"{type(external).__name__} does not implement write_bad_records and "
            "create_source_with_error_policy"
        )


class SourceTestSuiteBase:
    """Tests every source must pass. Provide a fixture ``external`` returning a :class:`SourceExternalContext`."""

    count = 1000
    restore_parallelism = 3
    """The parallelism a savepoint taken with parallelism 2 is restored with."""
    idle_parallelism = 4
    """A parallelism above the test resource's number of splits: some readers get none."""
    bad_count = 5
    """How many undecodable records the bad-record tests write."""
    timeout = 15.0
    """The longest an unbounded test waits for the records it expects, in seconds."""

    def test_bounded_read_equals_written(self, external: SourceExternalContext) -> None:
        """A bounded read returns exactly what was written."""
        records = list(range(self.count))
        external.write_test_data(records)
        env = StreamEnvironment(parallelism=2)
        result_records = env.from_source(external.create_source(bounded=True)).execute_and_collect()
        assert sorted(result_records) == records

    def test_unbounded_read_across_savepoint(
        self, external: SourceExternalContext, tmp_path: Path
    ) -> None:
        """Stop with a savepoint, restore: nothing lost, nothing read twice.

        Each run lasts 0.6 s, or longer until it has delivered a record: a source whose client
        takes longer to connect (on a loaded machine) is not stopped before its first record.
        """
        external.write_test_data(list(range(self.count)))
        sink: CollectSink[Any] = CollectSink()
        savepoint = _collect_unbounded(
            external.create_source(bounded=False),
            sink,
            parallelism=2,
            until=_after(0.6, lambda got: len(got) > 0),
            timeout=self.timeout,
            savepoint=tmp_path / "savepoint",
        )
        first = sink.results()
        _collect_unbounded(
            external.create_source(bounded=False),
            sink,
            parallelism=2,
            restore_from=str(savepoint),
            until=_after(0.6, lambda got: len(got) > len(first)),
            timeout=self.timeout,
        )
        combined = sink.results()
        assert len(combined) > len(first) > 0
        assert len(set(combined)) == len(combined), "records read twice across the savepoint"
        assert combined[: len(first)] == first

    def test_restore_with_other_parallelism(
        self, external: SourceExternalContext, tmp_path: Path
    ) -> None:
        """A savepoint taken with parallelism 2 restored with another: every record, once."""
        records = list(range(self.count))
        external.write_test_data(records)
        expected = set(records)
        sink: CollectSink[Any] = CollectSink()
        savepoint = _collect_unbounded(
            external.create_source(bounded=False),
            sink,
            parallelism=2,
            until=lambda got: len(got) >= self.count // 3,
            timeout=self.timeout,
            savepoint=tmp_path / "savepoint",
        )
        first = sink.results()
        _collect_unbounded(
            external.create_source(bounded=False),
            sink,
            parallelism=self.restore_parallelism,
            restore_from=str(savepoint),
            until=lambda got: expected <= set(got),
            timeout=self.timeout,
        )
        combined = sink.results()
        assert 0 < len(first) < len(combined)
        assert len(set(combined)) == len(combined), "records read twice across the rescale"
        assert expected <= set(combined), f"missing: {sorted(expected - set(combined))[:20]}"

    def test_idle_readers_bounded(self, external: SourceExternalContext) -> None:
        """Readers without a split do not keep a bounded job from finishing."""
        records = list(range(self.count))
        external.write_test_data(records)
        env = StreamEnvironment(parallelism=self.idle_parallelism)
        got = env.from_source(external.create_source(bounded=True)).execute_and_collect()
        assert sorted(got) == records

    def test_idle_readers_do_not_hold_back_watermarks(
        self, external: SourceExternalContext
    ) -> None:
        """Readers without a split, and splits without records, let event time advance.

        Each record is its own event time (ms); 100 ms tumbling windows over them must fire
        (all but the last two, which need later records to close) with every record counted.

        Idleness is only for a source that does not end: its readers without a split stay open
        and only idleness lets event time pass them. Readers of a bounded source without a split
        finish, and a finished input holds nothing back; with idleness, the reader whose split
        has not produced its first record yet would count as idle too, so the finished readers'
        final watermark would close every window before its records (min over non-idle inputs).
        """
        external.write_test_data(list(range(self.count)))
        closed = self.count // 100 - 2
        source = external.create_source(bounded=False)
        watermarks: WatermarkStrategy[Any] = (
            WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
                lambda record, _ts: int(record)
            )
        )
        if source.boundedness is Boundedness.CONTINUOUS_UNBOUNDED:
            watermarks = watermarks.with_idleness(timedelta(milliseconds=200))
        sink: CollectSink[tuple[int, int]] = CollectSink()

        def all_closed(got: list[tuple[int, int]]) -> bool:
            return {bucket for bucket, _ in got} >= set(range(closed))

        async def run() -> None:
            env = StreamEnvironment(
                parallelism=self.idle_parallelism,
                checkpointing=CheckpointConfig(interval=timedelta(milliseconds=100)),
            )
            (
                env.from_source(source, watermarks)
                .map(lambda record: (int(record) // 100, 1))
                .key_by(lambda pair: pair[0])
                .window(TumblingEventTimeWindows.of(timedelta(milliseconds=100)))
                .reduce(lambda a, b: (a[0], a[1] + b[1]))
                .sink_to(sink)
            )
            client = await env.execute_async("source conformance: idle readers")
            deadline = time.monotonic() + self.timeout
            while not all_closed(sink.results()) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await client.cancel()

        asyncio.run(run())
        counts = dict(sink.results())
        assert {b: counts.get(b) for b in range(closed)} == dict.fromkeys(range(closed), 100)

    def test_splits_at_different_event_time_progress(self, external: SourceExternalContext) -> None:
        """One reader, two splits whose event times are 10 minutes apart: every window exact.

        Each record is its own event time (ms). A reader that kept one watermark for all its
        splits let the split ahead push it past the other one's records, dropping them as late.
        """
        half = self.count // 2
        behind = [i * 10 for i in range(half)]
        ahead = [_AHEAD_MS + i * 10 for i in range(half)]
        try:
            external.write_test_data_in_splits([behind, ahead])
        except NotImplementedError:
            pytest.skip(f"{type(external).__name__} does not implement write_test_data_in_splits")
        watermarks: WatermarkStrategy[Any] = (
            WatermarkStrategy.for_monotonous_timestamps()
            .with_timestamp_assigner(lambda record, _ts: int(record))
            .with_emit_interval(timedelta(milliseconds=1))
        )
        env = StreamEnvironment(parallelism=1)
        late = OutputTag[Any]("late")
        windows = (
            env.from_source(external.create_source(bounded=True), watermarks)
            .map(lambda r: (int(r) >= _AHEAD_MS, int(r) - int(r) % 1000, 1))
            .key_by(lambda e: e[0])
            .window(TumblingEventTimeWindows.of(timedelta(seconds=1)))
            .side_output_late_data(late)
            .reduce(lambda a, b: (a[0], a[1], a[2] + b[2]))
        )
        counts: CollectSink[tuple[bool, int, int]] = CollectSink()
        late_records: CollectSink[Any] = CollectSink()
        windows.sink_to(counts)
        windows.get_side_output(late).sink_to(late_records)
        env.execute("source conformance: splits at different event-time progress")
        expected = Counter((r >= _AHEAD_MS, r - r % 1000) for r in behind + ahead)
        assert sorted(late_records.results()) == []
        assert _window_counts(counts.results()) == dict(expected)

    def test_metrics(self, external: SourceExternalContext) -> None:
        """The source reports its FLIP-33 counters with sane values after a bounded read."""
        external.write_test_data(list(range(self.count)))
        env = StreamEnvironment(parallelism=2)
        env.from_source(external.create_source(bounded=True), name="Source: conformance").sink_to(
            CollectSink()
        )
        result = env.execute("source conformance: metrics")
        metrics = result.metrics["Source: conformance"]
        assert metrics["numRecordsOut"] == self.count, metrics
        if "numRecordsIn" in metrics:
            assert metrics["numRecordsIn"] == self.count, metrics
        if "numRecordsInErrors" in metrics:
            assert metrics["numRecordsInErrors"] == 0, metrics
        bytes_in = metrics.get("numBytesIn")
        if bytes_in is not None:
            assert bytes_in > 0, metrics
        for name, value in metrics.items():
            if name.startswith("num") and value is not None:
                assert value >= 0, (name, value)
            if name.startswith("accumulated") and value is not None:
                assert 0 <= value <= 2 * result.duration_s * 1000 + 100, (name, value)

    def test_bad_records_skipped_and_counted(self, external: SourceExternalContext) -> None:
        """With :class:`SkipOnError`, bad records are dropped and counted in ``numRecordsInErrors``."""
        records = list(range(self.count))
        external.write_test_data(records)
        source = _require_bad_records(external, self.bad_count, SkipOnError())
        env = StreamEnvironment(parallelism=2)
        sink: CollectSink[Any] = CollectSink()
        env.from_source(source, name="Source: conformance").sink_to(sink)
        result = env.execute("source conformance: bad records skipped")
        assert sorted(sink.results()) == records
        assert result.metrics["Source: conformance"].get("numRecordsInErrors") == self.bad_count

    def test_bad_records_to_dead_letters(self, external: SourceExternalContext) -> None:
        """With :class:`DeadLetterOnError`, each bad record reaches the collector, raw."""
        records = list(range(self.count))
        external.write_test_data(records)
        letters: list[DeadLetter] = []
        source = _require_bad_records(external, self.bad_count, DeadLetterOnError(letters.append))
        env = StreamEnvironment(parallelism=2)
        got = env.from_source(source).execute_and_collect()
        assert sorted(got) == records
        assert len(letters) == self.bad_count
        assert all(letter.payload and letter.error and letter.format for letter in letters)

    def test_bad_records_fail_by_default(self, external: SourceExternalContext) -> None:
        """With the default policy, a bad record fails the job with an error naming the format."""
        external.write_test_data(list(range(self.count)))
        source = _require_bad_records(external, self.bad_count, FailOnError())
        env = StreamEnvironment(parallelism=2)
        with pytest.raises(Exception) as info:
            env.from_source(source).execute_and_collect()
        chain: list[BaseException] = []
        error: BaseException | None = info.value
        while error is not None and len(chain) < 10:
            chain.append(error)
            error = error.__cause__ or error.__context__
        assert any("cannot deserialize" in str(e) for e in chain), chain
