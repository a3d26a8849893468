"""What the overview shows, read with aggregate queries only (fast with 100k+ failures).

Every query is a GROUP BY or a small table read, bounded by index ranges: counts by status
(the status index), failures of the last `DAYS` days by system and local day (the
(status, sending_time) index, one CASE bucket per day, so days are calendar days in the
service's zone on both engines), the largest cause groups (the (status, cause) index) and the
systems that are not healthy.  No sending row is ever loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final

from sqlalchemy import case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from invoice_outbox.sendings.causes import FAILURE_STATUSES, UNKNOWN, describe
from invoice_outbox.sendings.models import Sending
from invoice_outbox.sendings.status import CLAIMABLE, Acceptance, Status
from invoice_outbox.systems.models import System
from invoice_outbox.systems.rejections import Catalogue

#: Days the failures chart covers (today included).
DAYS: Final = 14
#: Systems drawn separately; the rest are summed as `OTHER_SYSTEMS`.
MAX_SERIES: Final = 7
OTHER_SYSTEMS: Final = "Other systems"
TOP_CAUSES: Final = 5
_FAILURES: Final = tuple(s.value for s in FAILURE_STATUSES)
_WAITING: Final = tuple(s.value for s in CLAIMABLE)


@dataclass(frozen=True, slots=True)
class DailyFailures:
    """Failed and Aborted sendings by the local day of their last attempt, per system."""

    days: list[date]
    systems: list[str]
    counts: dict[tuple[str, date], int]


@dataclass(frozen=True, slots=True)
class CauseCount:
    cause: str
    label: str
    count: int


@dataclass(frozen=True, slots=True)
class UnhealthySystem:
    name: str
    circuit: str
    down_since: datetime | None
    consecutive_failures: int
    last_failure_reason: str | None
    enabled: bool = True
    disabled_at: datetime | None = None
    #: Invoices waiting for it (queued while it is switched off or down).
    held: int = 0


def day_bounds(today: date, zone: tzinfo, days: int = DAYS) -> list[datetime]:
    """`days` + 1 instants (UTC): the starts of the local days ``today - days + 1 ... today``,
    and the end of today.  Daylight-saving days are 23 or 25 hours long, as they should be."""
    first = today - timedelta(days=days - 1)
    return [
        datetime.combine(first + timedelta(days=i), time.min, tzinfo=zone).astimezone(UTC)
        for i in range(days + 1)
    ]


async def status_counts(connection: AsyncConnection) -> dict[str, int]:
    """Sendings per status; every status present (0 when none)."""
    rows = await connection.execute(select(Sending.status, func.count()).group_by(Sending.status))
    found = {status: int(count) for status, count in rows}
    return {s.value: int(found.get(s.value, 0)) for s in Status}


async def acceptance_counts(connection: AsyncConnection) -> dict[str, int]:
    """Sendings per recipient's verdict (systems that tell one); every value present.  Read
    over the partial index of sendings that have one (Transport systems' rows are not in it)."""
    rows = await connection.execute(
        select(Sending.acceptance, func.count())
        .where(Sending.acceptance.is_not(None))
        .group_by(Sending.acceptance)
    )
    found = {acceptance: int(count) for acceptance, count in rows}
    return {a.value: int(found.get(a.value, 0)) for a in Acceptance}


async def daily_failures(
    connection: AsyncConnection, *, now: datetime, zone: tzinfo, days: int = DAYS
) -> DailyFailures:
    """Failures of the last `days` local days per system (top `MAX_SERIES`, then the rest)."""
    today = now.astimezone(zone).date()
    bounds = day_bounds(today, zone, days)
    bucket = case(
        *((Sending.sending_time < bounds[i + 1], i) for i in range(days)), else_=days
    ).label("bucket")
    rows = await connection.execute(
        select(Sending.system, bucket, func.count())
        .where(
            Sending.status.in_(_FAILURES),
            Sending.sending_time >= bounds[0],
            Sending.sending_time < bounds[-1],
        )
        .group_by(Sending.system, bucket)
    )
    day_list = [bounds[0].astimezone(zone).date() + timedelta(days=i) for i in range(days)]
    raw: dict[tuple[str, date], int] = {}
    per_system: dict[str, int] = {}
    for system, index, count in rows:
        if 0 <= index < days:
            raw[(system, day_list[index])] = raw.get((system, day_list[index]), 0) + count
            per_system[system] = per_system.get(system, 0) + count
    ranked = sorted(per_system, key=lambda s: (-per_system[s], s))
    shown, rest = ranked[:MAX_SERIES], set(ranked[MAX_SERIES:])
    counts: dict[tuple[str, date], int] = {}
    for (system, day), count in raw.items():
        name = OTHER_SYSTEMS if system in rest else system
        counts[(name, day)] = counts.get((name, day), 0) + count
    return DailyFailures(day_list, shown + ([OTHER_SYSTEMS] if rest else []), counts)


async def top_causes(
    connection: AsyncConnection, limit: int = TOP_CAUSES, catalogue: Catalogue | None = None
) -> list[CauseCount]:
    """The largest cause groups of Failed and Aborted sendings, largest first."""
    rows = await connection.execute(
        select(Sending.cause, func.count().label("n"))
        .where(Sending.status.in_(_FAILURES))
        .group_by(Sending.cause)
        .order_by(func.count().desc(), Sending.cause.is_(None), Sending.cause)
        .limit(limit)
    )
    return [
        CauseCount(cause or UNKNOWN, describe(cause or UNKNOWN, catalogue).label, int(count))
        for cause, count in rows
    ]


async def unhealthy_systems(connection: AsyncConnection) -> Sequence[UnhealthySystem]:
    """Systems that are Down (first) or Degraded, then those switched off that hold invoices,
    by name; each with the invoices it holds."""
    held = (
        select(func.count())
        .where(Sending.system == System.name, Sending.status.in_(_WAITING))
        .scalar_subquery()
    )
    rows = await connection.execute(
        select(
            System.name,
            System.circuit,
            System.down_since,
            System.consecutive_failures,
            System.last_failure_reason,
            System.enabled,
            System.disabled_at,
            held.label("held"),
        )
        .where(or_(System.circuit != "Healthy", System.enabled.is_(False)))
        .order_by(
            case((System.circuit == "Down", 0), (System.circuit == "Degraded", 1), else_=2),
            System.name,
        )
    )
    found = []
    for row in rows:
        holds = not row.enabled or row.circuit == "Down"
        if not row.enabled and row.circuit == "Healthy" and not row.held:
            continue  # switched off and holding nothing: nothing to say on the overview
        found.append(
            UnhealthySystem(
                name=row.name,
                circuit=row.circuit,
                down_since=row.down_since,
                consecutive_failures=row.consecutive_failures,
                last_failure_reason=row.last_failure_reason,
                enabled=bool(row.enabled),
                disabled_at=row.disabled_at,
                held=int(row.held or 0) if holds else 0,
            )
        )
    return found
