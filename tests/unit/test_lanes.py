"""Lane arithmetic: fair picking, the rate limit's token bucket, the worker's book, and the
circuit's rule that one sending failing again and again is that sending's problem."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from invoice_outbox.worker import lanes
from invoice_outbox.worker.circuit import HEALTHY, HealthNotes, after
from invoice_outbox.worker.lanes import LaneBook, LaneRoom, fair_pick

NOW = datetime(2026, 2, 5, 16, 0, tzinfo=UTC)


def test_fair_pick_takes_every_lanes_oldest_first_then_the_next() -> None:
    candidates = {
        "slow": ["s1", "s2", "s3", "s4", "s5"],
        "fast": ["f1", "f2"],
        "mail": ["m1"],
    }
    assert fair_pick(candidates, 4) == ["f1", "m1", "s1", "f2"]
    assert fair_pick(candidates, 100) == ["f1", "m1", "s1", "f2", "s2", "s3", "s4", "s5"]
    assert fair_pick(candidates, 0) == []
    assert fair_pick({}, 5) == []


def test_a_rate_limited_lane_starts_at_most_rate_times_t_plus_its_burst() -> None:
    rate = 10.0  # burst 1: one every 100 ms
    slot: datetime | None = None
    started = 0
    for step in range(50):  # 5 seconds in steps of 100 ms
        now = NOW + timedelta(milliseconds=100 * step)
        n = lanes.tokens(rate, slot, now)
        assert n <= 1
        if n:
            slot = lanes.next_slot(rate, slot, now, n)
            started += n
    assert started == 50

    rate = 100.0  # burst 10
    assert lanes.tokens(rate, None, NOW) == 10
    slot = lanes.next_slot(rate, None, NOW, 10)
    assert lanes.tokens(rate, slot, NOW) == 0
    assert lanes.tokens(rate, slot, NOW + timedelta(milliseconds=50)) == 5
    # An idle lane does not save up more than its burst.
    assert lanes.tokens(rate, slot, NOW + timedelta(hours=1)) == 10
    assert lanes.reopens_at(rate, slot) == NOW + timedelta(milliseconds=10)


def test_the_book_claims_again_once_enough_slots_freed_in_lanes_with_work() -> None:
    book = LaneBook(cap=256)
    book.limits = {"slow": 8, "fast": 8}
    for _ in range(8):
        book.started("slow")
    book.rounded(
        [
            LaneRoom("slow", free=8, picked=8, claimed=8),
            LaneRoom("fast", free=8, picked=3, claimed=3),
        ],
        NOW,
    )
    # "fast" had less due work than slots: it is not waiting, its slots do not count.
    assert book.room == {"slow": 0}
    assert not book.refill_due(in_flight=11)
    book.finished("slow")
    assert book.claimable(in_flight=10) == 1
    assert book.threshold() == 8 // lanes.REFILL_SHARE
    book.finished("slow")
    assert book.claimable(in_flight=9) == 2
    assert book.refill_due(in_flight=9)


def test_a_lane_full_of_another_workers_deliveries_does_not_make_the_book_poll() -> None:
    book = LaneBook(cap=64)
    book.rounded([LaneRoom("shared", free=0, picked=0, claimed=0)], NOW)
    assert book.claimable(in_flight=0) == 0
    assert not book.refill_due(in_flight=0)
    assert book.seconds_to_next(NOW, in_flight=0) is None


def test_a_paused_lane_reopens_by_the_book_and_its_timer_is_dropped_once_past() -> None:
    book = LaneBook(cap=8)
    book.paused("throttled", NOW + timedelta(seconds=30))
    assert book.seconds_to_next(NOW, in_flight=0) == 30
    assert not book.reopened(NOW)
    assert book.reopened(NOW + timedelta(seconds=30))
    book.rounded([], NOW + timedelta(seconds=31))
    assert book.reopen == {}


def _failures(*ids: uuid.UUID) -> HealthNotes:
    notes = HealthNotes()
    for sending in ids:
        notes.failure(sending, "MediSwitch answered HTTP 500 Internal Server Error")
    return notes


def test_one_sending_failing_again_and_again_keeps_its_system_healthy() -> None:
    poison = uuid.uuid4()
    state = HEALTHY
    for _ in range(6):
        state = after(
            state, _failures(poison), now=NOW, threshold=3, probe_interval=timedelta(seconds=30)
        )
    assert state.circuit == "Healthy"
    assert state.consecutive_failures == 6
    assert state.failing_sendings == (str(poison),)


def test_distinct_sendings_failing_in_a_row_degrade_then_open_the_circuit() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    interval = timedelta(seconds=30)
    state = after(HEALTHY, _failures(a, a), now=NOW, threshold=3, probe_interval=interval)
    assert state.circuit == "Healthy"
    state = after(state, _failures(b), now=NOW, threshold=3, probe_interval=interval)
    assert state.circuit == "Degraded"
    later = NOW + timedelta(seconds=5)
    state = after(state, _failures(c), now=later, threshold=3, probe_interval=interval)
    assert (state.circuit, state.down_since, state.next_probe_at) == (
        "Down",
        later,
        later + interval,
    )
    # A failed probe keeps it down, since the same time.
    probe = after(state, _failures(a), now=later + interval, threshold=3, probe_interval=interval)
    assert (probe.circuit, probe.down_since) == ("Down", later)
    # A success in between starts the count again.
    notes = _failures(a)
    notes.success()
    notes.failure(b, "MediSwitch answered HTTP 503 Service Unavailable")
    state = after(state, notes, now=later, threshold=3, probe_interval=interval)
    assert (state.circuit, state.consecutive_failures, state.failing_sendings) == (
        "Healthy",
        1,
        (str(b),),
    )
