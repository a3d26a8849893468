"""A system's health as deliveries see it: Healthy → Degraded → Down, and back on success.

Only retryable failures (timeouts, refused connections, 5xx, 429) count: they say the system
is unwell.  Any answer that is not one of those (a success, or a 4xx about one invoice) says it
is up.  At `threshold` consecutive failures the system is Down: its queue is held (not claimed)
and probed with one sending at a time, so an outage spends no invoice's attempts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, or_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from invoice_outbox.systems.models import System


async def note_reachable(connection: AsyncConnection, system: str) -> bool:
    """Mark `system` Healthy.  Writes only when something changes (no contention when healthy).

    Returns True when the system was Down or Degraded before (it recovered).
    """
    result = await connection.execute(
        update(System)
        .where(
            System.name == system,
            or_(System.circuit != "Healthy", System.consecutive_failures != 0),
        )
        .values(circuit="Healthy", consecutive_failures=0, down_since=None, next_probe_at=None)
    )
    return bool(result.rowcount)


async def note_failure(
    connection: AsyncConnection,
    system: str,
    *,
    reason: str,
    now: datetime,
    threshold: int,
    probe_interval: timedelta,
) -> bool:
    """Count one more consecutive retryable failure; at `threshold` the system is Down.

    Returns True when this failure took the system Down (it was not Down before)."""
    reaches = System.consecutive_failures + 1 >= threshold
    result = await connection.execute(
        update(System)
        .where(System.name == system)
        .values(
            consecutive_failures=System.consecutive_failures + 1,
            circuit=case((reaches, "Down"), else_="Degraded"),
            down_since=case(
                (System.circuit == "Down", System.down_since), (reaches, now), else_=None
            ),
            next_probe_at=case((reaches, now + probe_interval), else_=None),
            last_failure_reason=reason,
        )
        .returning(System.consecutive_failures)
    )
    failures = result.scalar_one_or_none()
    return failures == threshold
