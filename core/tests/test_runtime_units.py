"""Unit tests of pure runtime logic: restart strategies, key groups, redistribution, serializers."""

from datetime import timedelta
from typing import Any

import pytest
from headwater.core import (
    ConfigurationError,
    ExponentialBackoffRestart,
    FailureRateRestart,
    FixedDelayRestart,
    JsonSerializer,
    NoRestart,
    SerializationError,
)
from headwater.core._keygroups import key_group_range, stable_hash, subtask_for_key_group
from headwater.core._runtime._restore import redistribute


def test_fixed_delay_allows_the_configured_attempts() -> None:
    s = FixedDelayRestart(attempts=2, delay=timedelta(seconds=3))
    assert [s.next_delay(0.0), s.next_delay(1.0), s.next_delay(2.0)] == [
        timedelta(seconds=3),
        timedelta(seconds=3),
        None,
    ]
    s.reset()
    assert s.next_delay(3.0) == timedelta(seconds=3)
    assert NoRestart().next_delay(0.0) is None


def test_exponential_backoff_doubles_caps_and_resets() -> None:
    s = ExponentialBackoffRestart(
        initial=timedelta(seconds=1),
        maximum=timedelta(seconds=5),
        jitter=0.0,
        reset_after=timedelta(seconds=100),
    )
    delays = [s.next_delay(float(t)).total_seconds() for t in range(5)]  # type: ignore[union-attr]
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert s.next_delay(1000.0) == timedelta(seconds=1)  # quiet for longer than reset_after


def test_exponential_backoff_jitter_stays_in_bounds() -> None:
    s = ExponentialBackoffRestart(
        initial=timedelta(seconds=10), maximum=timedelta(seconds=10), jitter=0.2
    )
    for t in range(50):
        d = s.next_delay(float(t))
        assert d is not None and 8.0 <= d.total_seconds() <= 12.0


def test_failure_rate_counts_failures_in_the_window() -> None:
    s = FailureRateRestart(max_failures=2, interval=timedelta(seconds=10), delay=timedelta(0))
    assert s.next_delay(0.0) == timedelta(0)
    assert s.next_delay(1.0) == timedelta(0)
    assert s.next_delay(2.0) is None  # third failure within 10 s
    s2 = FailureRateRestart(max_failures=2, interval=timedelta(seconds=10), delay=timedelta(0))
    assert [s2.next_delay(t) for t in (0.0, 11.0, 22.0, 33.0)] == [timedelta(0)] * 4


def test_restart_strategy_validation_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="attempts"):
        FixedDelayRestart(attempts=-1)
    with pytest.raises(ConfigurationError, match="multiplier"):
        ExponentialBackoffRestart(multiplier=0.5)


def test_stable_hash_is_fixed_across_processes() -> None:
    # Values pinned: a change would move keyed state to other subtasks on restore.
    assert stable_hash("user-1") == 2116437524
    assert stable_hash(b"user-1") == stable_hash("user-1")
    assert stable_hash(42) == stable_hash(42) and stable_hash(42) != stable_hash(43)
    assert stable_hash(("a", 1)) != stable_hash(("a", 2))
    with pytest.raises(ConfigurationError, match="key_by"):
        stable_hash(object())


@pytest.mark.parametrize(("max_parallelism", "parallelism"), [(128, 1), (128, 3), (10, 7), (7, 7)])
def test_key_group_ranges_partition_all_groups(max_parallelism: int, parallelism: int) -> None:
    owned = [
        kg for s in range(parallelism) for kg in key_group_range(s, max_parallelism, parallelism)
    ]
    assert owned == list(range(max_parallelism))
    for s in range(parallelism):
        for kg in key_group_range(s, max_parallelism, parallelism):
            assert subtask_for_key_group(kg, max_parallelism, parallelism) == s


def test_redistribution_keeps_subtasks_when_parallelism_is_unchanged() -> None:
    old = [{"splits": ["a"], "list": {"x": [1]}}, {"splits": ["b", "c"], "list": {"x": [2]}}]
    assert redistribute(old, 1, 2, 128) == {"splits": ["b", "c"], "list": {"x": [2]}}


def test_redistribution_deals_lists_unions_and_key_groups() -> None:
    old = [
        {"splits": ["a", "b"], "union": {"u": [1]}, "keyed": {"0": [["k", 1]], "100": [["j", 2]]}},
        {"splits": ["c"], "union": {"u": [2]}, "committables": [[3, "t"]]},
    ]
    shares = [redistribute(old, i, 3, 128) for i in range(3)]
    assert [s.get("splits") for s in shares] == [["a"], ["b"], ["c"]]
    assert all(s["union"] == {"u": [1, 2]} for s in shares)
    assert shares[0]["keyed"] == {0: [["k", 1]]}  # key groups as ints, whatever the format
    assert shares[2]["keyed"] == {100: [["j", 2]]}
    assert shares[1]["keyed"] == {}
    assert [s.get("committables") for s in shares] == [[[3, "t"]], [], []]


def test_json_serializer_refuses_newer_versions() -> None:
    s = JsonSerializer(version=2, to_json=lambda x: x, from_json=lambda v, d: (v, d))
    assert s.deserialize(1, s.serialize({"a": 1})) == (1, {"a": 1})
    with pytest.raises(SerializationError, match="newer"):
        s.deserialize(3, b"{}")
    with pytest.raises(SerializationError, match="cannot serialize"):
        s.serialize(object())


def test_collect_batch_with_timestamps_drives_the_watermark() -> None:
    from headwater.core import WatermarkStrategy
    from headwater.core._runtime._source_output import SourceOutput

    out = SourceOutput(WatermarkStrategy.for_monotonous_timestamps(), now=0.0)
    out.collect_batch(["a", "b"], [10, 30])
    out.collect("c", 20)
    split = out.split_output("s1")
    split.collect_batch(["d"], [5])
    batch = out.take()
    assert batch.values == ["a", "b", "c", "d"]
    assert batch.timestamps == [10, 30, 20, 5]
    assert out.watermark(now=0.0) == (4, False)  # min over main (30) and split s1 (5), minus 1
    out.release_split_output("s1")
    assert out.watermark(now=0.0) == (29, False)
    with pytest.raises(ValueError, match="2 records but 1 timestamps"):
        out.collect_batch(["x", "y"], [1])


def test_operator_context_for_unit_tests_runs_blocking_calls_and_counts() -> None:
    import asyncio

    from headwater.core.testing import operator_context

    context = operator_context(subtask_index=1, parallelism=2, operator_uid="sink-1")
    context.metric_group.counter("numRecordsOut").inc(3)
    assert context.metric_group.snapshot()["numRecordsOut"] == 3
    assert (context.subtask_index, context.parallelism, context.operator_uid) == (1, 2, "sink-1")
    assert asyncio.run(_blocking(context)) == 42


async def _blocking(context: Any) -> int:
    return int(await context.run_blocking(lambda: 42))


def test_row_kinds_keep_flinks_byte_values_and_short_strings() -> None:
    from headwater.core import RowKind

    assert [(k.value, k.short_string) for k in RowKind] == [
        (0, "+I"),
        (1, "-U"),
        (2, "+U"),
        (3, "-D"),
    ]
    assert all(RowKind.from_short_string(k.short_string) is k for k in RowKind)
    with pytest.raises(ValueError, match="not a row kind: '\\+X'"):
        RowKind.from_short_string("+X")
