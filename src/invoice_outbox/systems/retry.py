"""When to try a failed sending again: a policy value and a pure decision function.

How the schedule maps to attempts (`schedule[i]` is the delay before attempt i + 1)::

    schedule[0]   before attempt 1, counted from the moment the sending is created
                  (0: immediately; the worker, not `decide`, applies it)
    schedule[n]   before attempt n + 1, counted from the failure of attempt n

The default `0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h` is therefore 8 attempts, made
0, 5 s, 5 min 5 s, 35 min 5 s, 2 h 35 min 5 s, 7 h 35 min 5 s, 17 h 35 min 5 s and
27 h 35 min 5 s after the first (`attempt_offsets`), ignoring how long attempts take.
`total_window` (27 h 35 min 5 s) is how long an outage can last and still end with the
sending delivered automatically.  A policy with more attempts than schedule entries
repeats the last delay; one with fewer ignores the tail.

Jitter spreads retries so that sendings failed by one outage do not all come back in the
same second: a delay d becomes d * (1 + jitter * s) with s uniform in [-1, 1].  `decide`
takes s as an argument (`jitter_sample`) so it stays pure; draw it with `sample_jitter`.

Everything here is pure: no clock, no randomness, no I/O.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

__all__ = [
    "DEFAULT_SCHEDULE",
    "RetryDecision",
    "RetryPolicy",
    "attempt_offsets",
    "decide",
    "format_duration",
    "parse_duration",
    "sample_jitter",
    "total_window",
]

DEFAULT_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
DEFAULT_JITTER = 0.1

_UNITS: dict[str, Decimal] = {
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_CONFIG_KEYS = ("Schedule", "MaxAttempts", "Jitter")
#: The longest delay a configured schedule may have.
MAX_DELAY = timedelta(days=1000)


def parse_duration(value: object) -> timedelta:
    """Read a duration: a number of seconds, or text like "5s", "5m", "2h", "1h30m", "250ms".

    Raises ValueError (with the offending value in the message) for anything else,
    including negative numbers, booleans, and delays longer than `MAX_DELAY`.
    """
    delay = _parse_duration(value)
    if delay > MAX_DELAY:
        raise ValueError(f"{value!r} is longer than {MAX_DELAY.days} days")
    return delay


def _parse_duration(value: object) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a duration (use seconds or text like '5m')")
    if isinstance(value, int | float):
        if not math.isfinite(value) or not 0 <= value <= MAX_DELAY.total_seconds():
            raise ValueError(
                f"{value!r} is not a number of seconds from 0 to {MAX_DELAY.total_seconds():.0f}"
            )
        return timedelta(seconds=value)
    text = value.strip().lower().replace(" ", "")
    try:
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            return timedelta(seconds=float(Decimal(text)))
        parts = _PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError
        total = sum((Decimal(n) * _UNITS[u] for n, u in parts), Decimal(0))
        # Whole microseconds, as timedelta stores them, so text round-trips exactly.
        return timedelta(microseconds=int(total * 1_000_000))
    except (ValueError, InvalidOperation, OverflowError):
        raise ValueError(
            f"{value!r} is not a duration (use seconds or text like '5s', '5m', '2h', '1h30m')"
        ) from None


def format_duration(delay: timedelta) -> str:
    """Write a duration the way `parse_duration` reads it: "0s", "5s", "5m", "1h30m", "1.5s"."""
    if delay < timedelta(0):
        raise ValueError(f"negative duration {delay!r}")
    micros = delay // timedelta(microseconds=1)
    whole, fraction = divmod(micros, 1_000_000)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    if whole or fraction or not parts:
        text = str(whole) if not fraction else f"{whole}.{fraction:06d}".rstrip("0")
        parts.append(f"{text}s")
    return "".join(parts)


def _human(delay: timedelta) -> str:
    """A duration for `why` texts: "5 min", "2 h 30 min", "4.5 s" (jitter's microseconds
    rounded off: whole seconds from 10 s up, tenths below)."""
    step = timedelta(seconds=1) if delay >= timedelta(seconds=10) else timedelta(seconds=0.1)
    text = format_duration(round(delay / step) * step)
    words = re.sub(r"(\d)([a-z])", r"\1 \2 ", text).replace(" m ", " min ")
    return words.strip()


@dataclass(frozen=True, slots=True, init=False)
class RetryPolicy:
    """How often and how far apart a system's sendings are attempted; see the module doc.

    `schedule`: delays, `schedule[i]` before attempt i + 1 (at least one entry, none
    negative).  `max_attempts`: attempts in all, first included (default: one per
    schedule entry).  `jitter`: fraction in [0, 1) by which delays are spread.
    Invalid values raise ValueError naming the field.
    """

    schedule: tuple[timedelta, ...]
    max_attempts: int
    jitter: float

    def __init__(
        self,
        schedule: Iterable[timedelta] = DEFAULT_SCHEDULE,
        max_attempts: int | None = None,
        jitter: float = DEFAULT_JITTER,
    ) -> None:
        schedule = tuple(schedule)
        object.__setattr__(self, "schedule", schedule)
        object.__setattr__(
            self, "max_attempts", len(schedule) if max_attempts is None else max_attempts
        )
        object.__setattr__(self, "jitter", jitter)
        self.__post_init__()

    def __post_init__(self) -> None:
        if not self.schedule:
            raise ValueError("schedule must have at least one delay (the first attempt's)")
        for i, delay in enumerate(self.schedule):
            if not isinstance(delay, timedelta):
                raise ValueError(f"schedule[{i}] must be a timedelta, got {delay!r}")
            if delay < timedelta(0):
                raise ValueError(f"schedule[{i}] is negative ({delay}); delays must be >= 0")
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ValueError(f"max_attempts must be an integer, got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, int | float):
            raise ValueError(f"jitter must be a number in [0, 1), got {self.jitter!r}")
        if not 0 <= self.jitter < 1:  # NaN fails this too
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter!r}")

    def delay_before(self, attempt: int) -> timedelta:
        """The scheduled delay (without jitter) before attempt number `attempt` (1-based)."""
        if attempt < 1:
            raise ValueError(f"attempts are numbered from 1, got {attempt}")
        return self.schedule[min(attempt, len(self.schedule)) - 1]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RetryPolicy:
        """Read the stored JSON form, e.g. `{"Schedule": ["0s", "5s", "5m"], "MaxAttempts": 3,
        "Jitter": 0.1}`; every key is optional (defaults as in the constructor), delays may be
        numbers of seconds.  Raises ValueError with a message fit for an API client.
        """
        if not isinstance(config, Mapping):
            raise ValueError(f"a retry policy must be an object, got {type(config).__name__}")
        unknown = sorted(set(config) - set(_CONFIG_KEYS))
        if unknown:
            raise ValueError(
                f"unknown key(s) {', '.join(map(str, unknown))}; expected {', '.join(_CONFIG_KEYS)}"
            )
        schedule: tuple[timedelta, ...] = DEFAULT_SCHEDULE
        if "Schedule" in config:
            raw = config["Schedule"]
            if isinstance(raw, str | bytes) or not isinstance(raw, list | tuple):
                raise ValueError("Schedule must be a list of durations, e.g. ['0s', '5s', '5m']")
            items = []
            for i, item in enumerate(raw):
                try:
                    items.append(parse_duration(item))
                except ValueError as exc:
                    raise ValueError(f"Schedule[{i}]: {exc}") from None
            schedule = tuple(items)
        max_attempts = config.get("MaxAttempts")
        jitter = config.get("Jitter", DEFAULT_JITTER)
        try:
            return cls(schedule, max_attempts, jitter)
        except ValueError as exc:
            # Speak the config's names, not the Python field names.
            message = str(exc)
            for field, key in (
                ("schedule", "Schedule"),
                ("max_attempts", "MaxAttempts"),
                ("jitter", "Jitter"),
            ):
                message = message.replace(field, key)
            raise ValueError(message) from None

    def to_config(self) -> dict[str, Any]:
        """The JSON form `from_config` reads back to an equal policy."""
        return {
            "Schedule": [format_duration(d) for d in self.schedule],
            "MaxAttempts": self.max_attempts,
            "Jitter": self.jitter,
        }


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do after a failed attempt.

    `retry` True: attempt again at `next_attempt_at`, `delay` after the failure.
    `retry` False: stop (the sending is aborted); `next_attempt_at` and `delay` are None.
    `why` says which in a few words, e.g. "attempts spent (8 of 8)", "permanent error",
    "attempt 3 of 8 in 5 min".
    """

    retry: bool
    next_attempt_at: datetime | None
    delay: timedelta | None
    why: str


def sample_jitter(rng: random.Random) -> float:
    """A `jitter_sample` for `decide`: uniform in [-1, 1]."""
    return rng.uniform(-1.0, 1.0)


def decide(
    policy: RetryPolicy,
    *,
    attempts_made: int,
    error: Literal["retryable", "permanent"],
    retry_after: timedelta | None,
    now: datetime,
    jitter_sample: float,
) -> RetryDecision:
    """Decide after attempt number `attempts_made` (1-based) failed at `now`.

    A permanent error never retries.  Otherwise the next attempt, if `policy` allows one,
    is due at now + max(jittered scheduled delay, `retry_after`): the receiver's
    Retry-After is a floor, and it never buys an attempt beyond `max_attempts`.
    `jitter_sample` must be in [-1, 1] (see `sample_jitter`).
    """
    if attempts_made < 1:
        raise ValueError(
            f"attempts_made counts the failed attempt, so it is >= 1, got {attempts_made}"
        )
    if not -1.0 <= jitter_sample <= 1.0:
        raise ValueError(f"jitter_sample must be in [-1, 1], got {jitter_sample!r}")
    if error == "permanent":
        return RetryDecision(False, None, None, "permanent error")
    if attempts_made >= policy.max_attempts:
        return RetryDecision(
            False, None, None, f"attempts spent ({attempts_made} of {policy.max_attempts})"
        )
    next_attempt = attempts_made + 1
    delay = policy.delay_before(next_attempt) * (1 + policy.jitter * jitter_sample)
    why = f"attempt {next_attempt} of {policy.max_attempts} in {_human(delay)}"
    if retry_after is not None and retry_after > delay:
        delay = retry_after
        why = f"attempt {next_attempt} of {policy.max_attempts} in {_human(delay)} (Retry-After)"
    return RetryDecision(True, now + delay, delay, why)


def attempt_offsets(policy: RetryPolicy) -> tuple[timedelta, ...]:
    """When each attempt happens, counted from the first one, without jitter, if all fail
    and each takes no time: `(0, 5 s, 5 min 5 s, ...)` for the default policy."""
    offsets = [timedelta(0)]
    for attempt in range(2, policy.max_attempts + 1):
        offsets.append(offsets[-1] + policy.delay_before(attempt))
    return tuple(offsets)


def total_window(policy: RetryPolicy) -> timedelta:
    """The sum of the delays between the first and the last attempt, without jitter.

    An outage shorter than this still ends with the sending delivered automatically
    (its last attempt falls after the outage); 27 h 35 min 5 s for the default policy.
    """
    return attempt_offsets(policy)[-1]
