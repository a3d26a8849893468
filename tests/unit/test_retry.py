"""The retry policy as parameter tables: schedule, limits, Retry-After, jitter, config."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from invoice_outbox.systems.retry import (
    DEFAULT_SCHEDULE,
    RetryDecision,
    RetryPolicy,
    attempt_offsets,
    decide,
    format_duration,
    parse_duration,
    sample_jitter,
    total_window,
)

NOW = datetime(2026, 2, 5, 16, 6, 25, tzinfo=UTC)
S, M, H = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1)
NO_JITTER = RetryPolicy(jitter=0.0)


def retry(policy: RetryPolicy, attempts_made: int, **kwargs: Any) -> RetryDecision:
    args: dict[str, Any] = {"retry_after": None, "now": NOW, "jitter_sample": 0.0}
    args.update(kwargs)
    return decide(policy, attempts_made=attempts_made, error=args.pop("error", "retryable"), **args)


@pytest.mark.parametrize(
    ("attempts_made", "delay", "why"),
    [
        (1, 5 * S, "attempt 2 of 8 in 5 s"),
        (2, 5 * M, "attempt 3 of 8 in 5 min"),
        (3, 30 * M, "attempt 4 of 8 in 30 min"),
        (4, 2 * H, "attempt 5 of 8 in 2 h"),
        (5, 5 * H, "attempt 6 of 8 in 5 h"),
        (6, 10 * H, "attempt 7 of 8 in 10 h"),
        (7, 10 * H, "attempt 8 of 8 in 10 h"),
    ],
)
def test_default_schedule_delay_after_each_failed_attempt(
    attempts_made: int, delay: timedelta, why: str
) -> None:
    assert retry(NO_JITTER, attempts_made) == RetryDecision(True, NOW + delay, delay, why)


def test_default_policy_is_eight_attempts_starting_immediately() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 8
    assert policy.jitter == 0.1
    assert policy.delay_before(1) == timedelta(0)
    assert policy.schedule == DEFAULT_SCHEDULE


@pytest.mark.parametrize(
    ("policy", "attempts_made", "why"),
    [
        (RetryPolicy(), 8, "attempts spent (8 of 8)"),
        (RetryPolicy(), 9, "attempts spent (9 of 8)"),  # e.g. after a forced resend
        (RetryPolicy(max_attempts=1), 1, "attempts spent (1 of 1)"),
        (RetryPolicy(max_attempts=3), 3, "attempts spent (3 of 3)"),
    ],
)
def test_no_retry_once_attempts_are_spent(
    policy: RetryPolicy, attempts_made: int, why: str
) -> None:
    assert retry(policy, attempts_made) == RetryDecision(False, None, None, why)


@pytest.mark.parametrize("attempts_made", [1, 4, 7, 8])
def test_permanent_error_never_retries(attempts_made: int) -> None:
    decision = retry(RetryPolicy(), attempts_made, error="permanent", retry_after=5 * S)
    assert decision == RetryDecision(False, None, None, "permanent error")


@pytest.mark.parametrize(
    ("attempts_made", "retry_after", "delay", "why"),
    [
        (1, 2 * M, 2 * M, "attempt 2 of 8 in 2 min (Retry-After)"),  # later than 5 s: wins
        (2, 1 * S, 5 * M, "attempt 3 of 8 in 5 min"),  # earlier than 5 min: the schedule wins
        (3, 30 * M, 30 * M, "attempt 4 of 8 in 30 min"),  # equal: the schedule's
        (4, timedelta(0), 2 * H, "attempt 5 of 8 in 2 h"),
    ],
)
def test_retry_after_is_a_floor_on_the_delay(
    attempts_made: int, retry_after: timedelta, delay: timedelta, why: str
) -> None:
    decision = retry(NO_JITTER, attempts_made, retry_after=retry_after)
    assert decision == RetryDecision(True, NOW + delay, delay, why)


def test_retry_after_never_buys_an_attempt_beyond_the_limit() -> None:
    decision = retry(RetryPolicy(), 8, retry_after=1 * S)
    assert decision == RetryDecision(False, None, None, "attempts spent (8 of 8)")


@pytest.mark.parametrize(
    ("sample", "delay"),
    [(-1.0, 4 * M + 30 * S), (0.0, 5 * M), (1.0, 5 * M + 30 * S), (0.5, 5 * M + 15 * S)],
)
def test_jitter_scales_the_delay_within_its_bounds(sample: float, delay: timedelta) -> None:
    decision = retry(RetryPolicy(jitter=0.1), 2, jitter_sample=sample)
    assert decision.delay == delay
    assert decision.next_attempt_at == NOW + delay


def test_jitter_applies_before_the_retry_after_floor() -> None:
    # 5 s jittered down to 4.5 s is below a 5 s Retry-After, so Retry-After decides.
    decision = retry(RetryPolicy(jitter=0.1), 1, jitter_sample=-1.0, retry_after=5 * S)
    assert decision.delay == 5 * S


@pytest.mark.parametrize("sample", [-1.01, 1.01, float("nan")])
def test_jitter_sample_outside_its_range_is_refused(sample: float) -> None:
    with pytest.raises(ValueError, match="jitter_sample must be in"):
        retry(RetryPolicy(), 1, jitter_sample=sample)


def test_attempts_made_counts_from_one() -> None:
    with pytest.raises(ValueError, match="attempts_made"):
        retry(RetryPolicy(), 0)


def test_sample_jitter_stays_in_range_and_is_reproducible() -> None:
    samples = [sample_jitter(random.Random(seed)) for seed in range(200)]
    assert all(-1.0 <= s <= 1.0 for s in samples)
    assert min(samples) < -0.5 < 0.5 < max(samples)
    assert sample_jitter(random.Random(7)) == sample_jitter(random.Random(7))


def test_a_short_schedule_repeats_its_last_delay() -> None:
    policy = RetryPolicy(schedule=(timedelta(0), M), max_attempts=4, jitter=0.0)
    assert [retry(policy, n).delay for n in (1, 2, 3)] == [M, M, M]
    assert not retry(policy, 4).retry


def test_total_window_of_the_default_policy() -> None:
    # The 7 delays after failures: 5 s + 5 min + 30 min + 2 h + 5 h + 10 h + 10 h.
    assert total_window(RetryPolicy()) == timedelta(hours=27, minutes=35, seconds=5)
    offsets = attempt_offsets(RetryPolicy())
    assert len(offsets) == 8
    # 17 h 35 min 5 s is when the 7th attempt happens; the 8th follows 10 h later.
    assert offsets[6] == timedelta(hours=17, minutes=35, seconds=5)
    assert offsets[:3] == (timedelta(0), 5 * S, 5 * M + 5 * S)


def test_total_window_follows_max_attempts() -> None:
    assert total_window(RetryPolicy(max_attempts=1)) == timedelta(0)
    assert total_window(RetryPolicy(max_attempts=3)) == 5 * M + 5 * S


@pytest.mark.parametrize(
    "config",
    [
        {
            "Schedule": ["0s", "5s", "5m", "30m", "2h", "5h", "10h", "10h"],
            "MaxAttempts": 8,
            "Jitter": 0.1,
        },
        {"Schedule": ["0s", "1.5s", "1h30m", "1d"], "MaxAttempts": 10, "Jitter": 0.0},
        {"Schedule": ["0.000001s"], "MaxAttempts": 1, "Jitter": 0.5},
    ],
)
def test_config_round_trip(config: dict[str, Any]) -> None:
    policy = RetryPolicy.from_config(config)
    assert policy.to_config() == config
    assert RetryPolicy.from_config(policy.to_config()) == policy


def test_config_defaults_and_numbers_as_seconds() -> None:
    assert RetryPolicy.from_config({}) == RetryPolicy()
    policy = RetryPolicy.from_config({"Schedule": [0, 5, 2.5, "300", "250ms"]})
    assert policy.schedule == (timedelta(0), 5 * S, 2.5 * S, 5 * M, timedelta(milliseconds=250))
    assert policy.max_attempts == 5


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"Schedule": []}, "Schedule must have at least one delay"),
        ({"Schedule": "5s"}, "Schedule must be a list of durations"),
        ({"Schedule": ["0s", "soon"]}, "Schedule\\[1\\]: 'soon' is not a duration"),
        ({"Schedule": ["0s", -5]}, "Schedule\\[1\\]: -5 is not a number of seconds from 0"),
        ({"Schedule": [True]}, "Schedule\\[0\\]: True is not a duration"),
        ({"Schedule": ["5x"]}, "Schedule\\[0\\]: '5x' is not a duration"),
        ({"MaxAttempts": 0}, "MaxAttempts must be at least 1, got 0"),
        ({"MaxAttempts": "8"}, "MaxAttempts must be an integer"),
        ({"MaxAttempts": 2.5}, "MaxAttempts must be an integer"),
        ({"Jitter": 1.0}, "Jitter must be in \\[0, 1\\), got 1.0"),
        ({"Jitter": -0.1}, "Jitter must be in \\[0, 1\\)"),
        ({"Jitter": "0.1"}, "Jitter must be a number"),
        ({"Retries": 3}, "unknown key\\(s\\) Retries; expected Schedule, MaxAttempts, Jitter"),
    ],
)
def test_bad_configs_say_what_is_wrong(config: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy.from_config(config)


def test_config_must_be_an_object() -> None:
    with pytest.raises(ValueError, match="a retry policy must be an object, got list"):
        RetryPolicy.from_config([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedule": ()}, "schedule must have at least one delay"),
        ({"schedule": (timedelta(0), -S)}, "schedule\\[1\\] is negative"),
        ({"schedule": (5,)}, "schedule\\[0\\] must be a timedelta"),
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"jitter": 1}, "jitter must be in \\[0, 1\\)"),
        ({"jitter": float("nan")}, "jitter must be in \\[0, 1\\)"),
    ],
)
def test_constructor_validates(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)


@pytest.mark.parametrize(
    ("text", "delay"),
    [
        ("0s", timedelta(0)),
        ("5s", 5 * S),
        ("5m", 5 * M),
        ("2h", 2 * H),
        ("1h30m", 90 * M),
        ("1d", 24 * H),
        ("250ms", timedelta(milliseconds=250)),
        ("1.5s", 1.5 * S),
        ("45", 45 * S),
        (" 10 h ", 10 * H),
    ],
)
def test_parse_duration(text: str, delay: timedelta) -> None:
    assert parse_duration(text) == delay


@pytest.mark.parametrize(
    ("delay", "text"),
    [
        (timedelta(0), "0s"),
        (5 * S, "5s"),
        (90 * M, "1h30m"),
        (25 * H + S, "1d1h1s"),
        (timedelta(milliseconds=1500), "1.5s"),
    ],
)
def test_format_duration(delay: timedelta, text: str) -> None:
    assert format_duration(delay) == text
    assert parse_duration(text) == delay


def test_policy_is_a_hashable_value() -> None:
    assert RetryPolicy() == RetryPolicy(schedule=list(DEFAULT_SCHEDULE), max_attempts=8)
    assert hash(RetryPolicy()) == hash(RetryPolicy())
    assert RetryPolicy(jitter=0.2) != RetryPolicy()
