"""Lanes: each receiving system is a lane with its own limits, filled fairly.

A lane may have at most ``max_in_flight`` deliveries in flight (counted over every worker
sharing the database) and, optionally, start at most ``rate_per_second`` deliveries a second
(a token bucket over the system's ``next_slot_at`` column, so the limit also holds across
workers).  A worker has one global cap on its own deliveries in flight.  A claim round fills
the worker's free slots *round-robin* over the lanes that have due work: the oldest due
sending of every lane first, then the second of every lane, and so on, each lane up to its
own free slots.  So a slow or throttled lane takes only its own slots, and a healthy lane's
invoices are claimed in the next round whatever other lanes hold.

This module is the arithmetic, shared by both engine paths (`fair_pick`, `tokens`) and the
worker's book-keeping between rounds (`LaneBook`); the PostgreSQL statement that does the
same in one round trip is `invoice_outbox.worker.lane_sql`.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, TypeVar

T = TypeVar("T")

#: A lane's default in-flight limit (``MaxInFlight``): gentle on a receiver, yet 8 in flight
#: at 200 ms per answer is 40 deliveries a second for that lane alone.
DEFAULT_MAX_IN_FLIGHT: Final = 8
#: How long a lane waits after an HTTP 429 that named no Retry-After.
DEFAULT_THROTTLE: Final = timedelta(seconds=5)
#: Slots freed in lanes with work waiting are claimed in rounds of at least 1/REFILL_SHARE of
#: those lanes' limits (a round costs about the same for one sending as for twenty: where
#: receivers answer at once, the worker's CPU is the limit and rounds should be large) ...
REFILL_SHARE: Final = 4
#: ... or once the first of them has waited this long (seconds), whichever comes first (where
#: receivers are slow, slots are the limit: one idle for 10 ms of a 200 ms answer is 5 %).
REFILL_DELAY: Final = 0.01


def burst(rate: float) -> int:
    """Deliveries a rate-limited lane may start at once: a tenth of a second's worth, at least
    one.  Over any window of t seconds a lane starts at most ``rate * t + burst(rate)``."""
    return max(1, math.floor(rate / 10))


def tokens(rate: float, next_slot_at: datetime | None, now: datetime) -> int:
    """Deliveries a lane limited to `rate` per second may start at `now`.

    `next_slot_at` is the lane's theoretical next start (GCRA): each delivery moves it on by
    ``1/rate`` from ``max(next_slot_at, now)``, and up to `burst` may start before it.
    """
    base = now if next_slot_at is None or next_slot_at < now else next_slot_at
    available = (now - base).total_seconds() * rate + burst(rate) + 1e-9
    return max(0, math.floor(available))


def next_slot(rate: float, next_slot_at: datetime | None, now: datetime, started: int) -> datetime:
    """The lane's `next_slot_at` after `started` deliveries start at `now`."""
    base = now if next_slot_at is None or next_slot_at < now else next_slot_at
    return base + timedelta(seconds=started / rate)


def reopens_at(rate: float, next_slot_at: datetime) -> datetime:
    """When a lane whose bucket is empty may start its next delivery."""
    return next_slot_at - timedelta(seconds=(burst(rate) - 1) / rate)


def fair_pick(candidates: Mapping[str, Sequence[T]], limit: int) -> list[T]:
    """Up to `limit` of the candidates, round-robin over the lanes: every lane's first
    candidate, then every lane's second, ... (each lane's list is oldest due first; lanes in
    name order within a turn, so the result is reproducible)."""
    picked: list[T] = []
    turn = 0
    lanes = sorted(candidates)
    while len(picked) < limit:
        took = False
        for lane in lanes:
            queue = candidates[lane]
            if turn < len(queue):
                picked.append(queue[turn])
                took = True
                if len(picked) == limit:
                    return picked
        if not took:
            return picked
        turn += 1
    return picked


@dataclass(frozen=True, slots=True)
class LaneRoom:
    """One lane as a claim round saw it (lanes with due work that are not held or paused).

    `free`: deliveries it could start (its in-flight limit less what every worker has in
    flight, or its tokens if fewer); `picked`: due sendings found for it (at most `free`);
    `claimed`: taken by this round (fewer than `picked` when the worker's cap cut the round);
    `reopens_at`: for a rate-limited lane out of tokens, when the next may start.
    """

    name: str
    free: int
    picked: int
    claimed: int
    reopens_at: datetime | None = None

    @property
    def more(self) -> bool:
        """Whether due work probably remains: the lane's slots, not its queue, ran out."""
        return self.picked >= self.free or self.claimed < self.picked


class LaneBook:
    """What one worker knows of the lanes between its claim rounds.

    It decides when freed slots are worth a claim round: only slots in lanes that had work
    left count, so a worker whose lanes are full (of its own deliveries or another worker's)
    does not poll the database; each of its own deliveries that finishes frees one.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        #: This worker's deliveries in flight, by lane.
        self.own: Counter[str] = Counter()
        #: Lanes that had due work left at the last round -> free slots there since.
        self.room: dict[str, int] = {}
        #: Rate-limited (or paused) lanes with work left -> when they may start again.
        self.reopen: dict[str, datetime] = {}
        #: The lanes' in-flight limits (from their configuration).
        self.limits: dict[str, int] = {}
        self._freed_since: float | None = None

    def started(self, lane: str) -> None:
        self.own[lane] += 1

    def finished(self, lane: str) -> None:
        """One of this worker's deliveries in `lane` ended: its slot is free again."""
        self.own[lane] -= 1
        if self.own[lane] <= 0:
            del self.own[lane]
        if lane in self.room:
            self.room[lane] += 1
            if self._freed_since is None:
                self._freed_since = time.monotonic()

    def rounded(self, lanes: Iterable[LaneRoom], now: datetime) -> None:
        """A claim round at `now` saw `lanes`; lanes it did not see have nothing due, or are
        held or paused (a pause's reopen time is kept until it has come)."""
        self.room.clear()
        self._freed_since = None
        self.reopen = {lane: when for lane, when in self.reopen.items() if when > now}
        for lane in lanes:
            self.reopen.pop(lane.name, None)
            if lane.more:
                self.room[lane.name] = max(0, lane.free - lane.claimed)
                if lane.reopens_at is not None and lane.free - lane.claimed <= 0:
                    self.reopen[lane.name] = lane.reopens_at

    def paused(self, lane: str, until: datetime) -> None:
        """The receiver asked this lane to wait until `until`."""
        self.room.pop(lane, None)
        self.reopen[lane] = max(until, self.reopen.get(lane, until))

    def claimable(self, in_flight: int) -> int:
        """Slots worth claiming now: freed in lanes with work left, within the worker's cap."""
        return min(sum(self.room.values()), self.cap - in_flight)

    def threshold(self) -> int:
        limits = sum(self.limits.get(lane, DEFAULT_MAX_IN_FLIGHT) for lane in self.room)
        return max(1, min(self.cap, limits) // REFILL_SHARE)

    def refill_due(self, in_flight: int) -> bool:
        """Whether a claim round is worth it now (see `REFILL_SHARE`, `REFILL_DELAY`)."""
        claimable = self.claimable(in_flight)
        if claimable <= 0:
            return False
        if claimable >= self.threshold():
            return True
        return (
            self._freed_since is not None and time.monotonic() - self._freed_since >= REFILL_DELAY
        )

    def seconds_to_next(self, now: datetime, in_flight: int) -> float | None:
        """Seconds until a timer of the book fires (a lane reopens, or freed slots have waited
        `REFILL_DELAY`); None when none is set."""
        waits = [(when - now).total_seconds() for when in self.reopen.values()]
        if self._freed_since is not None and self.claimable(in_flight) > 0:
            waits.append(REFILL_DELAY - (time.monotonic() - self._freed_since))
        return max(0.0, min(waits)) if waits else None

    def reopened(self, now: datetime) -> bool:
        """Whether a lane's reopen time has come (then a claim round is due)."""
        return any(when <= now for when in self.reopen.values())
