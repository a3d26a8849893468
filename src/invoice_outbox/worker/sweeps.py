"""What a worker looks for about once a second, besides due work: leases that expired (their
worker died), and down systems whose probe is due.  And, when idle, when to look next.

- A deliverable system's expired lease is *taken over*: the lost attempt is recorded under the
  worker that made it, and the sending is delivered again (same idempotency key).
- A held system's expired lease (disabled or Down) is *released*: recorded the same way and
  given back to the queue without spending the attempt, where it waits, visibly held, instead
  of staying "Sending" for ever and waking workers that may not take it.
- A Down system is probed with one due sending at a time.  Probes rotate: a failed probe's
  sending goes to the back of the system's queue (`outcomes`), so the next probe is another
  sending, and one invoice the receiver refuses cannot keep the system down.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Insert, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from invoice_outbox.sendings import transitions
from invoice_outbox.sendings.models import Attempt, Sending
from invoice_outbox.sendings.queries import AnySelect
from invoice_outbox.sendings.status import CLAIMABLE, Status
from invoice_outbox.systems.models import System
from invoice_outbox.worker import lanes as lane_math
from invoice_outbox.worker.claims import Claim, claim_from_row

LOST_REASON = (
    "The worker delivering this stopped before recording the outcome; it was sent again "
    "(the receiver may see a repeat with the same idempotency key)"
)
LOST_HELD_REASON = (
    "The worker delivering this stopped before recording the outcome; it waits with the rest "
    "of its system's queue (the receiver may see a repeat with the same idempotency key)"
)
_CLAIMABLE = [s.value for s in CLAIMABLE]


def held_names() -> AnySelect:
    """The systems that hold their queue: switched off, or Down."""
    return select(System.name).where(or_(System.enabled.is_(False), System.circuit == "Down"))


def _insert_ignoring_duplicates(connection: AsyncConnection) -> Insert:
    """INSERT INTO attempts that skips a number already recorded (never fails a sweep)."""
    if connection.dialect.name == "postgresql":
        return postgresql_insert(Attempt).on_conflict_do_nothing()
    return sqlite_insert(Attempt).on_conflict_do_nothing()


async def _record_lost(
    connection: AsyncConnection, previous: dict[Any, Any], numbers: dict[Any, int], reason: str
) -> None:
    """The attempts of `previous` rows (lease owner, SendingTime) that were lost, numbered."""
    lost = [
        {
            "sending_id": sending_id,
            "number": number,
            "started_at": previous[sending_id].sending_time,
            "duration_ms": 0,
            "outcome": "Retryable",
            "code": None,
            "reason": reason,
            "worker": previous[sending_id].lease_owner,
        }
        for sending_id, number in numbers.items()
        if number >= 1
    ]
    if lost:
        await connection.execute(_insert_ignoring_duplicates(connection), lost)


def _expired(now: datetime, limit: int, *, held: bool) -> AnySelect:
    of_held = Sending.system.in_(held_names())
    return (
        select(Sending.id, Sending.lease_owner, Sending.sending_time)
        .where(
            Sending.status == Status.SENDING.value,
            Sending.lease_expires_at <= now,
            of_held if held else ~of_held,
        )
        .order_by(Sending.lease_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


async def take_over_expired(
    connection: AsyncConnection, *, worker: str, now: datetime, lease: timedelta, limit: int
) -> list[Claim]:
    """Claim in-flight sendings of deliverable systems whose lease expired (their worker
    died), recording the lost try under the worker that made it and the time it started."""
    if limit <= 0:
        return []
    previous = {row.id: row for row in await connection.execute(_expired(now, limit, held=False))}
    if not previous:
        return []
    ids = select(Sending.id).where(Sending.id.in_(list(previous))).scalar_subquery()
    rows = await transitions.take_over(connection, ids, worker=worker, now=now, lease=lease)
    claims = [claim_from_row(row) for row in rows]
    await _record_lost(
        connection, previous, {c.sending_id: c.attempt - 1 for c in claims}, LOST_REASON
    )
    return claims


async def release_held_expired(connection: AsyncConnection, *, now: datetime) -> int:
    """Give back to the queue the expired leases of held systems; returns how many."""
    previous = {row.id: row for row in await connection.execute(_expired(now, 1000, held=True))}
    if not previous:
        return 0
    rows = await transitions.release_lost(connection, list(previous), now=now)
    numbers = {row.id: row.attempts for row in rows}
    await _record_lost(connection, previous, numbers, LOST_HELD_REASON)
    return len(numbers)


async def claim_probes(
    connection: AsyncConnection,
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
    probe_interval: timedelta,
) -> list[Claim]:
    """For each down system whose probe is due, claim its first due sending as the probe.

    The probe slot is taken with a guarded UPDATE on the system, so only one worker probes.
    "First" is by due time, and a failed probe's sending is due again only after the probe
    interval: each probe tries a different sending while others wait.
    """
    ready = await connection.scalars(
        update(System)
        .where(System.circuit == "Down", System.enabled.is_(True), System.next_probe_at <= now)
        .values(next_probe_at=now + probe_interval)
        .returning(System.name)
    )
    claims: list[Claim] = []
    for name in sorted(ready.all()):
        first = (
            select(Sending.id)
            .where(
                Sending.system == name,
                Sending.status.in_(_CLAIMABLE),
                Sending.next_attempt_at <= now,
            )
            .order_by(Sending.next_attempt_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        taken = await transitions.claim(
            connection, first.scalar_subquery(), worker=worker, now=now, lease=lease
        )
        claims.extend(claim_from_row(row, probe=True) for row in taken)
    return claims


async def next_due_time(connection: AsyncConnection, now: datetime) -> datetime | None:
    """When a claim round next has something to do: a deliverable lane's next due sending
    (once the lane may start it: not full, not paused, a token in its bucket), an expiring
    lease, or a down system's probe.  None when nothing is scheduled.  One statement.

    Held systems' queues are no reason to wake, and neither is a lane full of deliveries in
    flight (one of them finishing wakes the worker that holds it).
    """
    due = (
        select(func.min(Sending.next_attempt_at))
        .where(Sending.system == System.name, Sending.status.in_(_CLAIMABLE))
        .scalar_subquery()
    )
    in_flight = (
        select(func.count())
        .where(Sending.system == System.name, Sending.status == Status.SENDING.value)
        .scalar_subquery()
    )
    lease = (
        select(func.min(Sending.lease_expires_at))
        .where(Sending.status == Status.SENDING.value)
        .scalar_subquery()
    )
    lanes = await connection.execute(
        select(
            System.enabled,
            System.circuit,
            System.next_probe_at,
            System.max_in_flight,
            System.rate_per_second,
            System.next_slot_at,
            System.paused_until,
            due.label("due"),
            in_flight.label("in_flight"),
            lease.label("lease"),
        )
    )
    times: list[datetime] = []
    for lane in lanes:
        if lane.lease is not None:
            times.append(lane.lease)
        if not lane.enabled:
            continue
        if lane.circuit == "Down":
            if lane.next_probe_at is not None:
                times.append(lane.next_probe_at)
            continue
        when = _lane_opens(lane, now)
        if when is not None:
            times.append(when)
    return min(times) if times else None


def _lane_opens(lane: Any, now: datetime) -> datetime | None:
    """When a claim could next take a sending from `lane` (a row of `next_due_time`)."""
    if lane.due is None:
        return None
    when: datetime = lane.due
    if lane.paused_until is not None and lane.paused_until > when:
        when = lane.paused_until
    if lane.rate_per_second is not None and lane.next_slot_at is not None:
        when = max(when, lane_math.reopens_at(lane.rate_per_second, lane.next_slot_at))
    if when <= now and int(lane.in_flight or 0) >= lane.max_in_flight:
        return None
    return when
