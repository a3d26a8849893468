"""Which systems hold their queue right now, and since when: the "why" behind waiting invoices.

A system that is Down (the circuit opened after failures of several invoices in a row) or
switched off is not delivered to; its invoices wait without spending attempts and without
costing the workers anything (worker/claims.py, worker/sweeps.py).  Such a sending is *held*:
every list, page and API of this service says so, why and since when (`held_fields`), while the
legacy ``Status`` stays what the wire format knows (Pending or Failed).  Practice users read
that, not "it will be sent shortly" or "being sent now".
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from invoice_outbox.sendings.status import CLAIMABLE, Status
from invoice_outbox.systems.models import System

_WAITING = frozenset(s.value for s in CLAIMABLE)


@dataclass(frozen=True, slots=True)
class SystemHold:
    """A held system: switched off (`disabled`, since `disabled_at`) or Down since `down_since`."""

    system: str
    disabled: bool
    down_since: datetime | None
    disabled_at: datetime | None = None

    @property
    def reason(self) -> str:
        """Why its sendings wait, in a few words (the API's `HeldReason`)."""
        if self.disabled:
            return f"{self.system} is switched off"
        return f"{self.system} is down: it has not been answering"

    @property
    def kind(self) -> str:
        """``disabled`` or ``down`` (the held gauge's label)."""
        return "disabled" if self.disabled else "down"

    @property
    def since(self) -> datetime | None:
        return self.disabled_at if self.disabled else self.down_since


async def held_systems(db: AsyncConnection | AsyncSession) -> dict[str, SystemHold]:
    """Every system that holds its queue now, by name (one query over the small systems table)."""
    rows = await db.execute(
        select(System.name, System.enabled, System.down_since, System.disabled_at).where(
            or_(System.enabled.is_(False), System.circuit == "Down")
        )
    )
    return {
        row.name: SystemHold(
            system=row.name,
            disabled=not row.enabled,
            down_since=row.down_since,
            disabled_at=row.disabled_at,
        )
        for row in rows
    }


def is_held(
    status: str, lease_expires_at: datetime | None, hold: SystemHold | None, now: datetime
) -> bool:
    """Whether a sending in `status` waits because its system holds its queue: it is due or
    scheduled (Pending, Failed), or its attempt's worker is gone (Sending, lease expired: the
    next sweep gives it back to the queue)."""
    if hold is None:
        return False
    if status in _WAITING:
        return True
    return (
        status == Status.SENDING.value and lease_expires_at is not None and lease_expires_at <= now
    )


def held_fields(
    *,
    status: str,
    lease_expires_at: datetime | None,
    waiting_since: datetime | None,
    hold: SystemHold | None,
    now: datetime,
) -> dict[str, Any]:
    """``Held``, ``HeldReason``, ``HeldSince`` of a sending for the service's own APIs and
    pages: since when *this* sending has waited for its system (the later of the hold's start
    and the sending's own last attempt or submission, `waiting_since`)."""
    if hold is None or not is_held(status, lease_expires_at, hold, now):
        return {"Held": False, "HeldReason": None, "HeldSince": None}
    since = hold.since
    if since is None or (waiting_since is not None and waiting_since > since):
        since = waiting_since
    return {"Held": True, "HeldReason": hold.reason, "HeldSince": since}


async def any_deliverable(db: AsyncConnection | AsyncSession, systems: Collection[str]) -> bool:
    """Whether any of `systems` is delivered to now (not held): new work for them is worth
    waking the workers for; work for held systems waits without waking anyone."""
    if not systems:
        return False
    held = await held_systems(db)
    return any(name not in held for name in systems)
