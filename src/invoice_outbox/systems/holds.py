"""Which systems hold their queue right now, and since when: the "why" behind waiting invoices.

A system that is Down (the circuit opened after consecutive failures) or switched off is not
delivered to; its invoices wait without spending attempts (worker/claims.py).  Practice users
should read that, not "it will be sent shortly".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from invoice_outbox.systems.models import System


@dataclass(frozen=True, slots=True)
class SystemHold:
    """A held system: Down since `down_since`, or switched off (`disabled`)."""

    system: str
    disabled: bool
    down_since: datetime | None


async def held_systems(db: AsyncConnection | AsyncSession) -> dict[str, SystemHold]:
    """Every system that holds its queue now, by name (one query over the small systems table)."""
    rows = await db.execute(
        select(System.name, System.enabled, System.down_since).where(
            or_(System.enabled.is_(False), System.circuit == "Down")
        )
    )
    return {
        row.name: SystemHold(system=row.name, disabled=not row.enabled, down_since=row.down_since)
        for row in rows
    }
