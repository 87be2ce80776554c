"""The DataStream API end to end on the local executor, with exact expected outputs."""

from collections import Counter
from collections.abc import Iterable

import pytest
from headwater.core import (
    ConfigurationError,
    DataGenSource,
    JobFailedError,
    ListState,
    NumberSequenceSource,
    ProcessFunction,
    RuntimeContext,
    StreamEnvironment,
)


def test_map_filter_flat_map_keep_order_at_parallelism_one() -> None:
    env = StreamEnvironment()
    out = (
        env.from_collection(range(10))
        .map(lambda x: x * 3)
        .filter(lambda x: x % 2 == 0)
        .flat_map(lambda x: [x, -x])
        .execute_and_collect()
    )
    assert out == [0, 0, 6, -6, 12, -12, 18, -18, 24, -24]


def test_parallel_number_sequence_reads_every_number_once() -> None:
    env = StreamEnvironment(parallelism=4)
    out = (
        env.from_source(NumberSequenceSource(0, 50_000)).map(lambda x: x + 1).execute_and_collect()
    )
    assert sorted(out) == list(range(1, 50_001))


def test_union_merges_streams() -> None:
    env = StreamEnvironment(parallelism=2)
    a = env.from_collection(["a1", "a2"])
    b = env.from_collection(["b1"])
    c = env.from_source(NumberSequenceSource(0, 3)).map(str)
    assert sorted(a.union(b, c).execute_and_collect()) == ["0", "1", "2", "a1", "a2", "b1"]


def test_key_by_routes_equal_keys_to_one_subtask_and_reduce_sums() -> None:
    env = StreamEnvironment(parallelism=3)
    out = (
        env.from_source(NumberSequenceSource(0, 3000))
        .map(lambda x: (f"k{x % 7}", x))
        .key_by(lambda t: t[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .execute_and_collect()
    )
    final: dict[str, int] = {}
    for key, total in out:
        final[key] = max(final.get(key, 0), total)
    assert final == {f"k{k}": sum(x for x in range(3000) if x % 7 == k) for k in range(7)}
    assert len(out) == 3000


class Tagger(ProcessFunction[int, tuple[int, int]]):
    def open(self, context: RuntimeContext) -> None:
        self.subtask = context.subtask_index

    def process_element(self, value: int) -> Iterable[tuple[int, int]]:
        yield (self.subtask, value)


@pytest.mark.parametrize("method", ["rebalance", "shuffle", "broadcast"])
def test_partitioning_spreads_records(method: str) -> None:
    env = StreamEnvironment(parallelism=1)
    stream = getattr(env.from_collection(range(20_000)), method)()
    out = stream.process(Tagger()).set_parallelism(4).execute_and_collect()
    per_subtask = Counter(subtask for subtask, _ in out)
    assert set(per_subtask) == {0, 1, 2, 3}
    if method == "broadcast":
        assert all(n == 20_000 for n in per_subtask.values())
        assert len(out) == 80_000
    else:
        assert sorted(v for _, v in out) == list(range(20_000))


def test_partition_custom_uses_the_partitioner() -> None:
    env = StreamEnvironment(parallelism=1)
    out = (
        env.from_collection(range(100))
        .partition_custom(lambda key, n: key % n, lambda x: x)
        .process(Tagger())
        .set_parallelism(4)
        .execute_and_collect()
    )
    assert all(subtask == value % 4 for subtask, value in out)


def test_datagen_is_seeded_and_replayable() -> None:
    def gen(i, rng):  # type: ignore[no-untyped-def]
        return (i, rng.randrange(1000))

    def collect(parallelism: int) -> list[tuple[int, int]]:
        env = StreamEnvironment(parallelism=parallelism)
        return sorted(env.from_source(DataGenSource(gen, count=5000, seed=3)).execute_and_collect())

    one = collect(1)
    assert one == collect(3)
    assert [i for i, _ in one] == list(range(5000))
    assert len({v for _, v in one}) > 500


def test_user_function_error_names_operator_and_record() -> None:
    env = StreamEnvironment()
    stream = env.from_collection([1, 2, 0, 4]).map(lambda x: 10 // x, name="Divide")
    with pytest.raises(JobFailedError) as info:
        stream.execute_and_collect()
    cause = info.value.__cause__
    assert cause is not None
    message = str(cause)
    assert "operator 'Divide'" in message
    assert "record 0" in message
    assert "ZeroDivisionError" in message
    assert isinstance(cause.__cause__, ZeroDivisionError)


def test_long_records_are_truncated_in_errors() -> None:
    env = StreamEnvironment()
    stream = env.from_collection(["x" * 10_000]).map(int, name="Parse")
    with pytest.raises(JobFailedError) as info:
        stream.execute_and_collect()
    assert len(str(info.value.__cause__)) < 800
    assert "..." in str(info.value.__cause__)


def test_invalid_settings_fail_when_the_job_is_built() -> None:
    with pytest.raises(ConfigurationError, match="parallelism"):
        StreamEnvironment(parallelism=0)
    env = StreamEnvironment()
    stream = env.from_collection([1])
    with pytest.raises(ConfigurationError, match="cannot run in parallel"):
        stream.set_parallelism(2)
    with pytest.raises(ConfigurationError, match="no sink"):
        env.build()
    with pytest.raises(ConfigurationError, match="one-shot iterator"):
        env.from_iterable(iter([1, 2]))


def test_from_iterable_reads_a_reiterable() -> None:
    env = StreamEnvironment()
    assert env.from_iterable(range(2500)).execute_and_collect() == list(range(2500))


def test_list_state_is_available_to_process_functions() -> None:
    class Counting(ProcessFunction[int, int]):
        def open(self, context: RuntimeContext) -> None:
            self.state: ListState = context.get_list_state("seen")

        def process_element(self, value: int) -> Iterable[int]:
            self.state.add(value)
            yield len(self.state.get())

    env = StreamEnvironment()
    assert env.from_collection([5, 6, 7]).process(Counting()).execute_and_collect() == [1, 2, 3]


def test_metrics_count_records_per_operator() -> None:
    env = StreamEnvironment(parallelism=2)
    env.from_source(NumberSequenceSource(0, 1000)).map(lambda x: x, name="Ident").filter(
        lambda x: x < 100, name="Small"
    ).print()
    result = env.execute("metrics")
    assert result.metrics["Ident"]["numRecordsIn"] == 1000
    assert result.metrics["Small"]["numRecordsIn"] == 1000
    assert result.metrics["Small"]["numRecordsOut"] == 100
