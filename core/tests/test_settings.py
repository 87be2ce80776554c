"""Settings are checked where they are written: the error names the setting and what it expects."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from headwater.core import (
    CheckpointConfig,
    ConfigurationError,
    DataGenSource,
    ExecutionConfig,
    ExponentialBackoffRestart,
    FailureRateRestart,
    FixedDelayRestart,
    NumberSequenceSource,
    StreamEnvironment,
)
from headwater.core._settings import parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250ms", timedelta(milliseconds=250)),
        ("5s", timedelta(seconds=5)),
        (" 1.5m ", timedelta(seconds=90)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("PT5S", timedelta(seconds=5)),
        ("PT0.25S", timedelta(milliseconds=250)),
        ("PT1M30S", timedelta(seconds=90)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        (timedelta(seconds=3), timedelta(seconds=3)),
    ],
)
def test_one_duration_syntax(text: Any, expected: timedelta) -> None:
    assert parse_duration(text, "x") == expected
    assert CheckpointConfig(interval=text).interval == expected


@pytest.mark.parametrize("bad", ["soon", "5", "5 sec", "P", "PT", "-5s", 5000, 1.5, True, None])
def test_a_bad_duration_names_the_setting_and_the_syntax(bad: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        CheckpointConfig(timeout=bad)
    message = str(caught.value)
    assert message.startswith("CheckpointConfig: timeout: expected a duration such as '250ms'")
    assert repr(bad) in message


def test_numbers_are_seconds_only_in_pipeline_files() -> None:
    assert parse_duration(5, "x", seconds_allowed=True) == timedelta(seconds=5)
    with pytest.raises(ConfigurationError, match=r"or a timedelta\), got 5 \(int\)"):
        parse_duration(5, "x")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: StreamEnvironment(parallelism="2"),
            "StreamEnvironment: parallelism must be an integer, got '2' (str)",
        ),
        (
            lambda: StreamEnvironment(parallelism=0),
            "StreamEnvironment: parallelism must be >= 1, got 0",
        ),
        (
            lambda: StreamEnvironment(parallelism=True),
            "parallelism must be an integer, got True (bool)",
        ),
        (
            lambda: StreamEnvironment(max_parallelism=40000),
            "max_parallelism must be within [1, 32768], got 40000",
        ),
        (
            lambda: StreamEnvironment(parallelism=4, max_parallelism=2),
            "parallelism (4) exceeds max_parallelism (2)",
        ),
        (
            lambda: StreamEnvironment(checkpointing={"interval": "5s"}),
            "StreamEnvironment: checkpointing must be a CheckpointConfig or None, got {'interval': '5s'} (dict)",
        ),
        (
            lambda: StreamEnvironment(restart_strategy=3),
            "restart_strategy must be a RestartStrategy or None",
        ),
        (
            lambda: CheckpointConfig(interval="0s"),
            "CheckpointConfig: interval must be positive, got 0:00:00",
        ),
        (
            lambda: CheckpointConfig(retained="3"),
            "CheckpointConfig: retained must be an integer, got '3' (str)",
        ),
        (
            lambda: CheckpointConfig(storage=3),
            "CheckpointConfig: storage must be a str or Path, got 3 (int)",
        ),
        (
            lambda: CheckpointConfig(restore_from=7),
            "CheckpointConfig: restore_from must be a str or Path, got 7",
        ),
        (
            lambda: CheckpointConfig(restore_from="latest"),
            "restore_from='latest' needs a checkpoint storage",
        ),
        (
            lambda: CheckpointConfig(incremental="yes"),
            "CheckpointConfig: incremental must be a bool, got 'yes'",
        ),
        (
            lambda: DataGenSource(lambda i, r: i, count="ten"),
            "DataGenSource: count must be an integer or None, got 'ten' (str)",
        ),
        (
            lambda: DataGenSource(lambda i, r: i, count=-1),
            "DataGenSource: count must be >= 0, got -1",
        ),
        (
            lambda: DataGenSource(lambda i, r: i, rows_per_second="fast"),
            "DataGenSource: rows_per_second must be a number or None",
        ),
        (lambda: DataGenSource("gen"), "DataGenSource: generator must be a function"),
        (
            lambda: NumberSequenceSource(0, 10, batch_size=0),
            "NumberSequenceSource: batch_size must be >= 1, got 0",
        ),
        (
            lambda: ExecutionConfig(batch_linger="soon"),
            "ExecutionConfig: batch_linger: expected a duration",
        ),
        (
            lambda: ExecutionConfig(channel_capacity=1.5),
            "ExecutionConfig: channel_capacity must be an integer",
        ),
        (
            lambda: FixedDelayRestart(attempts="3"),
            "FixedDelayRestart: attempts must be an integer, got '3'",
        ),
        (lambda: FixedDelayRestart(delay=1), "FixedDelayRestart: delay: expected a duration"),
        (
            lambda: ExponentialBackoffRestart(jitter=2),
            "ExponentialBackoffRestart: jitter must be within [0, 1], got 2",
        ),
        (
            lambda: FailureRateRestart(interval="-1s"),
            "FailureRateRestart: interval: expected a duration",
        ),
    ],
)
def test_a_bad_setting_names_itself_and_what_it_expects(build: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build()
    assert message in str(caught.value)


def test_duration_strings_work_everywhere_a_duration_is_taken() -> None:
    assert ExecutionConfig(batch_linger="10ms").batch_linger == timedelta(milliseconds=10)
    assert FixedDelayRestart(delay="PT2S").delay == timedelta(seconds=2)
    backoff = ExponentialBackoffRestart(initial="1s", maximum="1m", reset_after="10m")
    assert (backoff.initial, backoff.maximum) == (timedelta(seconds=1), timedelta(minutes=1))
    config = CheckpointConfig(interval="250ms", timeout="1m", min_pause="50ms", storage="ckpt")
    assert (config.interval, config.timeout, config.min_pause, config.storage) == (
        timedelta(milliseconds=250),
        timedelta(minutes=1),
        timedelta(milliseconds=50),
        Path("ckpt"),
    )


def _job(storage: Path) -> StreamEnvironment:
    env = StreamEnvironment(checkpointing=CheckpointConfig(interval="50ms", storage=storage))
    env.from_collection([1, 2, 3]).map(lambda x: x + 1).print()
    return env


def test_checkpoint_storage_that_cannot_be_created_is_named_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(Exception, match=rf"checkpoint storage {blocker}/ckpt: cannot be created"):
        _job(blocker / "ckpt").execute("storage-check")
    with pytest.raises(
        Exception, match=rf"checkpoint storage {blocker}: exists but is not a directory"
    ):
        _job(blocker).execute("storage-check")


def test_checkpoint_storage_that_is_not_writable_is_named_at_start(tmp_path: Path) -> None:
    storage = tmp_path / "ckpt"
    storage.mkdir()
    storage.chmod(0o500)
    if os.access(storage, os.W_OK):  # root writes through permissions; sysfs refuses even root
        storage = Path("/sys/kernel")
    try:
        with pytest.raises(Exception, match=rf"checkpoint storage {storage}: is not writable"):
            _job(storage).execute("storage-check")
    finally:
        (tmp_path / "ckpt").chmod(0o700)


def test_missing_checkpoint_storage_is_created(tmp_path: Path) -> None:
    storage = tmp_path / "new" / "ckpt"
    _job(storage).execute("storage-created")
    assert list(storage.glob("chk-*/_metadata"))
