"""Each system's lane as admins see it: in flight against its limit, due, held, throttled.

Read with one GROUP BY over the sendings that are queued or in flight (the status index), and
the small systems table; the systems API (`system_view`), the systems page, the overview and
``/metrics`` all read it here, so they agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from invoice_outbox.sendings.holds import SystemHold
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import CLAIMABLE, Status
from invoice_outbox.systems.models import System
from invoice_outbox.systems.service import system_view

_WAITING: Final = [s.value for s in CLAIMABLE]


@dataclass(frozen=True, slots=True)
class LaneStats:
    """A system's sendings now: in flight, queued (due now or later), due now, the oldest
    due, and in flight with an expired lease (their worker is gone)."""

    in_flight: int = 0
    queued: int = 0
    due: int = 0
    oldest_due: datetime | None = None
    stale: int = 0


async def lane_stats(db: AsyncConnection | AsyncSession, now: datetime) -> dict[str, LaneStats]:
    """`LaneStats` of every system with sendings queued or in flight, by name."""
    waiting = Sending.status.in_(_WAITING)
    in_flight = Sending.status == Status.SENDING.value
    is_due = waiting & (Sending.next_attempt_at <= now)
    rows = await db.execute(
        select(
            Sending.system,
            func.sum(case((in_flight, 1), else_=0)),
            func.sum(case((waiting, 1), else_=0)),
            func.sum(case((is_due, 1), else_=0)),
            func.min(case((is_due, Sending.next_attempt_at), else_=None)),
            func.sum(case((in_flight & (Sending.lease_expires_at <= now), 1), else_=0)),
        )
        .where(Sending.status.in_([*_WAITING, Status.SENDING.value]))
        .group_by(Sending.system)
    )
    return {
        system: LaneStats(
            int(flying or 0), int(queued or 0), int(due or 0), oldest, int(stale or 0)
        )
        for system, flying, queued, due, oldest, stale in rows
    }


def hold_of(system: System) -> SystemHold | None:
    """The system's hold (switched off, or Down), if it holds its queue."""
    if system.enabled and system.circuit != "Down":
        return None
    return SystemHold(
        system=system.name,
        disabled=not system.enabled,
        down_since=system.down_since,
        disabled_at=system.disabled_at,
    )


def lane_state(system: System, stats: LaneStats, now: datetime) -> str:
    """One word for the lane: Held (switched off or down), Throttled (the receiver asked us to
    wait), Full (at its in-flight limit with work waiting), Flowing, or Idle."""
    if hold_of(system) is not None:
        return "Held"
    if system.paused_until is not None and system.paused_until > now:
        return "Throttled"
    if stats.in_flight >= system.max_in_flight and stats.due:
        return "Full"
    return "Flowing" if stats.in_flight or stats.due else "Idle"


def lane_view(system: System, stats: LaneStats, *, now: datetime) -> dict[str, Any]:
    """The API's ``Lane`` of a system (see the systems route's description)."""
    hold = hold_of(system)
    held = stats.queued + stats.stale if hold is not None else 0
    age = None
    if stats.oldest_due is not None:
        age = round(max(0.0, (now - stats.oldest_due).total_seconds()), 3)
    paused = system.paused_until if system.paused_until and system.paused_until > now else None
    return {
        "State": lane_state(system, stats, now),
        "InFlight": stats.in_flight,
        "MaxInFlight": system.max_in_flight,
        "RatePerSecond": system.rate_per_second,
        "Due": 0 if hold is not None else stats.due,
        "Queued": stats.queued,
        "Held": held,
        "HeldReason": hold.reason if hold is not None else None,
        "HeldSince": hold.since if hold is not None else None,
        "OldestDueAgeSeconds": age,
        "ThrottledUntil": paused,
    }


def system_with_lane(system: System, stats: LaneStats | None, *, now: datetime) -> dict[str, Any]:
    """`systems.service.system_view` of `system` with its lane (`stats` from `lane_stats`)."""
    return system_view(system, lane_view(system, stats or LaneStats(), now=now))
